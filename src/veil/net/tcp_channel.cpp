#include "veil/net/tcp_channel.hpp"

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <optional>

namespace veil::net {

namespace {

using asio::ip::tcp;
// Payload bytes are read at most this many at a time, so memory grows with what actually
// arrives, not with what the header claims.
constexpr std::size_t kChunk = std::size_t{1} << 20;

std::string endpoint_string(const tcp::endpoint& e) {
  const auto a = e.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}

}  // namespace

struct TcpChannel::Impl {
  asio::io_context io;
  tcp::socket socket{io};
  std::atomic<bool> interrupted{false};
  std::atomic<bool> aborted{false};
  bool idle_wait = false;  // only touched on the thread running `io`

  // Runs one asynchronous operation until it completes or `timeout` passes; returns its
  // byte count. `start` receives the completion handler.
  template <class Start>
  std::size_t run(std::chrono::milliseconds timeout, const char* what, Start&& start) {
    if (aborted)
      throw Error(ErrorCode::kShuttingDown, std::string(what) + ": the connection was closed by this side");
    std::error_code ec = asio::error::would_block;
    std::size_t n = 0;
    start([&](const std::error_code& e, std::size_t k) {
      ec = e;
      n = k;
    });
    io.restart();
    io.run_for(timeout);
    if (ec == asio::error::would_block) {
      // Deadline passed: cancel, and let the handler run so nothing refers to our locals.
      std::error_code ignored;
      socket.cancel(ignored);
      io.restart();
      io.run();
      throw Error(ErrorCode::kTimeout, std::string(what) + ": nothing for " +
                                           std::to_string(timeout.count() / 1000.0).substr(0, 5) + " s");
    }
    if (aborted)
      throw Error(ErrorCode::kShuttingDown, std::string(what) + ": the connection was closed by this side");
    if (ec == asio::error::operation_aborted && interrupted)
      throw Error(ErrorCode::kShuttingDown, "interrupted while waiting for the next message");
    if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
        ec == asio::error::connection_aborted)
      throw Error(ErrorCode::kClosed, std::string(what) + ": the peer closed the connection");
    if (ec) throw Error(ErrorCode::kIo, std::string(what) + ": " + ec.message());
    return n;
  }

  std::size_t read_some(std::uint8_t* p, std::size_t n, std::chrono::milliseconds timeout, bool idle) {
    if (idle && interrupted)
      throw Error(ErrorCode::kShuttingDown, "interrupted while waiting for the next message");
    idle_wait = idle;
    struct Reset {
      bool& flag;
      ~Reset() { flag = false; }
    } reset{idle_wait};
    return run(timeout, idle ? "waiting for a message" : "reading a frame",
               [&](auto handler) { socket.async_read_some(asio::buffer(p, n), handler); });
  }

  void write_all(const std::uint8_t* p, std::size_t n, std::chrono::milliseconds timeout,
                 ChannelStats& stats) {
    while (n > 0) {
      const std::size_t k = run(timeout, "writing a frame", [&](auto handler) {
        socket.async_write_some(asio::buffer(p, std::min(n, kChunk)), handler);
      });
      p += k;
      n -= k;
      stats.bytes_sent += k;
    }
  }
};

TcpChannel::TcpChannel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  std::error_code ec;
  const auto remote = impl_->socket.remote_endpoint(ec);
  peer_ = ec ? "?" : endpoint_string(remote);
  impl_->socket.set_option(tcp::no_delay(true), ec);  // small messages (Hello, KeyQuery) go out at once
}

TcpChannel::~TcpChannel() { close(); }

std::unique_ptr<TcpChannel> TcpChannel::connect(const std::string& host, std::uint16_t port,
                                                const ChannelOptions& options) {
  auto impl = std::make_unique<Impl>();
  tcp::resolver resolver(impl->io);
  tcp::resolver::results_type endpoints;
  std::error_code ec = asio::error::would_block;
  resolver.async_resolve(host, std::to_string(port),
                         [&](const std::error_code& e, tcp::resolver::results_type r) {
                           ec = e;
                           endpoints = std::move(r);
                         });
  impl->io.run_for(options.io_timeout);
  if (ec == asio::error::would_block) {
    resolver.cancel();
    impl->io.restart();
    impl->io.run();
    throw Error(ErrorCode::kTimeout, "resolving " + host);
  }
  if (ec) throw Error(ErrorCode::kIo, "cannot resolve '" + host + "': " + ec.message());
  try {
    impl->run(options.io_timeout, "connecting", [&](auto handler) {
      asio::async_connect(impl->socket, endpoints,
                          [handler](const std::error_code& e, const tcp::endpoint&) { handler(e, 0); });
    });
  } catch (const Error& e) {
    throw Error(e.is(ErrorCode::kClosed) ? ErrorCode::kIo : static_cast<ErrorCode>(e.code()),
                "cannot connect to " + host + ":" + std::to_string(port) + " (" + e.what() + ")");
  }
  auto ch = std::make_unique<TcpChannel>(std::move(impl));
  ch->set_options(options);
  return ch;
}

void TcpChannel::send(std::uint16_t type, std::span<const std::uint8_t> payload) {
  const auto header = encode_header(type, payload.size());
  impl_->write_all(header.data(), header.size(), options_.io_timeout, stats_);
  impl_->write_all(payload.data(), payload.size(), options_.io_timeout, stats_);
  end_send();
}

Frame TcpChannel::receive(const ReceiveLimits& limits) {
  using Clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  begin_receive();
  Clock::time_point first{};   // when the frame's first byte arrived
  std::uint64_t received = 0;  // the frame's bytes so far, header included
  // Reads some bytes of the frame, waiting at most the idle or I/O timeout, less when the
  // frame's deadline or the minimum rate comes first (and then saying so).
  const auto read = [&](std::uint8_t* p, std::size_t n) {
    const bool idle = received == 0;
    milliseconds wait = idle ? limits.idle_timeout : limits.io_timeout;
    std::string bound;
    const auto now = Clock::now();
    if (!idle && limits.min_bytes_per_s > 0) {
      const auto need_by =
          first + limits.io_timeout +
          std::chrono::duration_cast<milliseconds>(std::chrono::duration<double>(
              static_cast<double>(received + 1) / static_cast<double>(limits.min_bytes_per_s)));
      if (need_by - now < wait) {
        wait = std::chrono::duration_cast<milliseconds>(need_by - now);
        bound = "slower than the minimum rate of " + std::to_string(limits.min_bytes_per_s) + " B/s (" +
                std::to_string(received) + " bytes in " +
                std::to_string(std::chrono::duration<double>(now - first).count()).substr(0, 5) + " s)";
      }
    }
    if (limits.deadline && *limits.deadline - now < wait) {
      wait = std::chrono::duration_cast<milliseconds>(*limits.deadline - now);
      bound = "the message did not arrive within its deadline";
    }
    try {
      if (wait.count() <= 0) throw Error(ErrorCode::kTimeout, "");
      const std::size_t k = impl_->read_some(p, n, wait, idle);
      if (idle) first = Clock::now();
      received += k;
      return k;
    } catch (const Error& e) {
      if (!e.is(ErrorCode::kTimeout) || bound.empty()) throw;
      throw Error(ErrorCode::kTimeout,
                  std::string(idle ? "waiting for a message" : "reading a frame") + ": " + bound);
    }
  };
  std::uint8_t header[kFrameHeaderSize];
  std::size_t got = 0;
  while (got < sizeof header) got += read(header + got, sizeof header - got);
  stats_.bytes_received += sizeof header;
  const FrameHeader h = decode_header(header, limits.max_frame_bytes);
  if (limits.on_header) limits.on_header(h.type, h.length);
  Frame f;
  f.type = h.type;
  // The whole declared length as address space (the header passed the limits above), its
  // pages touched only as chunks arrive: grown by the vector's doubling instead, a
  // 595 MiB key upload took 1 GiB, and both buffers during the last copy.
  f.payload.reserve(h.length);
  std::size_t off = 0;
  while (off < h.length) {
    if (f.payload.size() == off) f.payload.resize(off + std::min<std::uint64_t>(h.length - off, kChunk));
    const std::size_t k = read(f.payload.data() + off, f.payload.size() - off);
    off += k;
    stats_.bytes_received += k;
  }
  ++stats_.frames_received;
  return f;
}

void TcpChannel::interrupt() {
  impl_->interrupted = true;
  // Runs on the channel's own thread (inside its next or current operation): cancel a
  // wait for a new frame, unless bytes of one have already arrived.
  asio::post(impl_->io, [m = impl_.get()] {
    std::error_code ec;
    if (m->idle_wait && m->socket.available(ec) == 0) m->socket.cancel(ec);
  });
}

void TcpChannel::abort() {
  impl_->aborted = true;
  asio::post(impl_->io, [m = impl_.get()] {
    std::error_code ec;
    m->socket.shutdown(tcp::socket::shutdown_both, ec);
    m->socket.cancel(ec);
  });
}

void TcpChannel::send_final(const Frame& frame) noexcept {
  try {
    options_.io_timeout = std::min(options_.io_timeout, std::chrono::milliseconds(1000));
    send(frame);
    // Unread input makes close() send a reset, which may destroy the frame just sent
    // before the peer reads it; discard what has arrived (bounded).
    std::error_code ec;
    std::uint8_t sink[4096];
    for (int i = 0; i < 256; ++i) {
      const std::size_t a = impl_->socket.available(ec);
      if (ec || a == 0) break;
      impl_->socket.read_some(asio::buffer(sink, std::min(a, sizeof sink)), ec);
      if (ec) break;
    }
    impl_->socket.shutdown(tcp::socket::shutdown_send, ec);
  } catch (...) {
  }
  close();
}

void TcpChannel::close() noexcept {
  if (!impl_) return;
  std::error_code ec;
  impl_->socket.close(ec);
}

struct Listener::State {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::optional<asio::signal_set> signals;
  asio::steady_timer retry{io};
};

Listener::Listener(const std::string& host, std::uint16_t port) : state_(std::make_unique<State>()) {
  tcp::resolver resolver(state_->io);
  std::error_code ec;
  const auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || results.empty()) throw Error(ErrorCode::kIo, "cannot resolve '" + host + "': " + ec.message());
  const tcp::endpoint ep = results.begin()->endpoint();
  auto& a = state_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw Error(ErrorCode::kIo,
                "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
}

Listener::~Listener() = default;

std::uint16_t Listener::port() const { return state_->acceptor.local_endpoint().port(); }
std::string Listener::address() const { return endpoint_string(state_->acceptor.local_endpoint()); }

void Listener::run(const std::function<void(std::unique_ptr<Channel>)>& on_accept,
                   const ChannelOptions& options, std::initializer_list<int> signals,
                   const std::function<void(int)>& on_signal) {
  State& s = *state_;
  if (signals.size() > 0) {
    s.signals.emplace(s.io);
    for (int sig : signals) s.signals->add(sig);
    s.signals->async_wait([&](const std::error_code& ec, int sig) {
      if (!ec && on_signal) on_signal(sig);
    });
  }
  std::function<void()> accept_next = [&] {
    // Each connection gets its own io_context, driven by the session's thread.
    auto impl = std::make_shared<std::unique_ptr<TcpChannel::Impl>>(std::make_unique<TcpChannel::Impl>());
    s.acceptor.async_accept((*impl)->io, [&, impl](const std::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !s.acceptor.is_open()) return;
      if (ec) {  // e.g. out of file descriptors: try again shortly instead of spinning
        s.retry.expires_after(std::chrono::milliseconds(100));
        s.retry.async_wait([&](const std::error_code& e) {
          if (!e) accept_next();
        });
        return;
      }
      (*impl)->socket = std::move(socket);
      auto ch = std::make_unique<TcpChannel>(std::move(*impl));
      ch->set_options(options);
      on_accept(std::move(ch));
      accept_next();
    });
  };
  accept_next();
  s.io.run();
}

void Listener::stop() {
  asio::post(state_->io, [s = state_.get()] {
    std::error_code ec;
    s->acceptor.close(ec);
    s->retry.cancel();
    if (s->signals) s->signals->cancel(ec);
  });
}

}  // namespace veil::net
