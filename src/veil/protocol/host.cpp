#include "veil/protocol/host.hpp"

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <list>
#include <mutex>
#include <thread>

#include "veil/common/error.hpp"
#include "veil/common/format.hpp"
#include "veil/common/memory.hpp"
#include "veil/net/tcp_channel.hpp"

namespace veil::protocol {

namespace {

using Clock = std::chrono::steady_clock;

struct Session {
  std::uint64_t id = 0;
  std::string address;  // the peer without its port: the per-address cap's key
  std::unique_ptr<net::Channel> channel;
  std::thread thread;
  bool done = false;  // guarded by Host::State::m
};

// Errors a session answers and survives: a protocol's verdict on one message's content,
// with the stream still in sync. Transport errors, internal errors and refusals of the
// session as a whole end it.
bool recoverable(const net::Error& e) {
  return !net::error_code_name(e.code()) && !e.is(ErrorCode::kInternal) && !e.is(ErrorCode::kUnavailable);
}

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

// "127.0.0.1:51234" -> "127.0.0.1", "[::1]:51234" -> "[::1]"; a peer without a port as is.
std::string address_of(const std::string& peer) {
  const auto colon = peer.rfind(':');
  if (colon == std::string::npos || peer.find_first_not_of("0123456789", colon + 1) != std::string::npos)
    return peer;
  return peer.substr(0, colon);
}

}  // namespace

struct Host::State {
  HostOptions opt;
  std::vector<std::unique_ptr<Handler>> handlers;
  std::uint64_t max_frame = 0;
  std::uint64_t max_inflight = 0;
  KeyCache cache;
  net::Listener listener;
  Clock::time_point start = Clock::now();

  std::mutex m;  // sessions, next_id, stopping, inflight
  std::condition_variable session_ended;
  std::list<std::unique_ptr<Session>> sessions;
  std::uint64_t next_id = 1;
  bool stopping = false;
  std::uint64_t inflight = 0;  // bytes of frames being received or handled
  // Refusals at admission are logged at most once a second (a client reconnecting in a
  // loop would otherwise cost a log line, and its I/O, per connection); the line says how
  // many were not logged since the last one.
  Clock::time_point last_refusal_log{};
  std::uint64_t refusals_not_logged = 0;
  std::mutex log_m;

  explicit State(HostOptions o)
      : opt(std::move(o)), cache(opt.max_key_cache_bytes), listener(opt.host, opt.port) {}

  void log(const std::string& line) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "[%9.3f] ", seconds_since(start));
    std::lock_guard lk(log_m);
    if (opt.log) {
      opt.log(stamp + line);
    } else {
      std::printf("%s%s\n", stamp, line.c_str());
      std::fflush(stdout);
    }
  }

  net::ChannelOptions channel_options() const {
    net::ChannelOptions c;
    c.max_frame_bytes = max_frame;
    c.io_timeout = millis(opt.limits.timeout_s);
    c.idle_timeout = millis(opt.limits.idle_timeout_s);
    return c;
  }

  // The first message: small, and all of it within the hello deadline.
  net::ReceiveLimits hello_limits() const {
    net::ReceiveLimits l = channel_options();
    l.max_frame_bytes = std::min<std::uint64_t>(l.max_frame_bytes, kMaxHelloBytes);
    if (opt.limits.hello_timeout_s > 0) {
      l.idle_timeout = millis(opt.limits.hello_timeout_s);
      l.deadline = Clock::now() + l.idle_timeout;
    }
    return l;
  }

  // Memory of one frame, from its header until it has been handled: counted against
  // max_inflight (so many sessions each sending a large frame at once are refused, not
  // buffered), released when the reservation ends.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() { release(); }
    void take(State& s, std::uint64_t bytes) {
      release();
      std::lock_guard lk(s.m);
      if (s.inflight + bytes > s.max_inflight)
        throw error(ErrorCode::kBusy, "messages in flight hold " + human_bytes(s.inflight) + " of " +
                                          human_bytes(s.max_inflight) + " and this one needs " +
                                          human_bytes(bytes) + "; try again later");
      s.inflight += bytes;
      state_ = &s;
      bytes_ = bytes;
    }
    void release() {
      if (!state_) return;
      std::lock_guard lk(state_->m);
      state_->inflight -= bytes_;
      state_ = nullptr;
    }

   private:
    State* state_ = nullptr;
    std::uint64_t bytes_ = 0;
  };

  // A message after the Hello: the session's own limit for its type (from its plan), the
  // minimum rate, and room in the in-flight budget, all checked from the header.
  net::ReceiveLimits message_limits(const Handler& handler, const ProtocolSession& session,
                                    Reservation& reservation) {
    net::ReceiveLimits l = channel_options();
    l.min_bytes_per_s = opt.limits.min_bytes_per_s;
    l.on_header = [this, &handler, &session, &reservation](std::uint16_t type, std::uint64_t length) {
      const bool host_message = type == static_cast<std::uint16_t>(HostMessage::kBye) ||
                                type == static_cast<std::uint16_t>(HostMessage::kError);
      const std::uint64_t limit = host_message ? kMaxErrorText + 64 : session.max_frame_bytes(type);
      if (length > limit) {
        const char* name = handler.message_name(type);
        throw net::Error(net::ErrorCode::kFrameTooLarge,
                         std::string(name ? name : "message") + " of " + std::to_string(length) +
                             " bytes exceeds this session's limit of " + std::to_string(limit) +
                             " bytes for it (what its plan needs)");
      }
      reservation.take(*this, net::kFrameHeaderSize + length);
    };
    return l;
  }

  bool is_stopping() {
    std::lock_guard lk(m);
    return stopping;
  }

  void begin_stop() {
    std::lock_guard lk(m);
    if (stopping) return;
    stopping = true;
    listener.stop();
    for (auto& s : sessions)
      if (s->channel) s->channel->interrupt();
  }

  // Joins sessions that have ended (all of them when `all`).
  void reap(bool all) {
    std::list<std::unique_ptr<Session>> finished;
    {
      std::unique_lock lk(m);
      for (auto it = sessions.begin(); it != sessions.end();) {
        if ((*it)->done || all) {
          finished.push_back(std::move(*it));
          it = sessions.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& s : finished) s->thread.join();
  }

  // After a stop: waits up to the grace period for sessions to end by themselves, then
  // closes those still open (one log line each) and joins them all.
  void finish_sessions() {
    {
      std::unique_lock lk(m);
      session_ended.wait_for(lk, millis(opt.limits.shutdown_grace_s), [&] {
        for (auto& s : sessions)
          if (!s->done) return false;
        return true;
      });
      for (auto& s : sessions) {
        if (s->done || !s->channel) continue;
        log("session " + std::to_string(s->id) + " " + s->channel->peer() +
            ": closed at shutdown (still open after " + "the grace period of " +
            std::to_string(opt.limits.shutdown_grace_s).substr(0, 4) + " s)");
        s->channel->abort();
      }
    }
    reap(true);
  }

  // Called with `m` held.
  void log_refusal(const std::string& line) {
    const auto now = Clock::now();
    if (now - last_refusal_log < std::chrono::seconds(1)) {
      ++refusals_not_logged;
      return;
    }
    log(line + (refusals_not_logged
                    ? " (" + std::to_string(refusals_not_logged) + " more refused since the last line)"
                    : ""));
    last_refusal_log = now;
    refusals_not_logged = 0;
  }

  // Admission: every policy on who may open a session goes here.
  void accept(std::unique_ptr<net::Channel> ch) {
    reap(false);
    std::lock_guard lk(m);
    if (stopping) {
      ch->send_final(encode_error(net::Error(net::ErrorCode::kShuttingDown, "the server is shutting down")));
      return;
    }
    if (sessions.size() >= opt.limits.max_sessions) {
      log_refusal("refused " + ch->peer() + ": server busy (" + std::to_string(sessions.size()) +
                  " sessions)");
      ch->send_final(
          encode_error(error(ErrorCode::kBusy, std::to_string(sessions.size()) +
                                                   " sessions already open (the limit); try again later")));
      return;
    }
    const std::string address = address_of(ch->peer());
    std::size_t same = 0;
    for (const auto& s : sessions) same += !s->done && s->address == address;
    if (same >= opt.limits.max_sessions_per_address) {
      log_refusal("refused " + ch->peer() + ": " + std::to_string(same) + " sessions from " + address +
                  " already");
      ch->send_final(encode_error(error(ErrorCode::kBusy, std::to_string(same) + " sessions from " + address +
                                                              " already open (the limit per address); try "
                                                              "again later")));
      return;
    }
    auto s = std::make_unique<Session>();
    s->id = next_id++;
    s->address = address;
    s->channel = std::move(ch);
    Session* raw = s.get();
    sessions.push_back(std::move(s));
    raw->thread = std::thread([this, raw] {
      serve(*raw->channel, raw->id);
      std::lock_guard lk(m);
      raw->channel.reset();
      raw->done = true;
      session_ended.notify_all();
    });
  }

  Handler& find_handler(const Hello& hello) {
    std::string offered;
    for (auto& h : handlers) {
      if (h->protocol() == hello.protocol) {
        if (h->version() != hello.version)
          throw net::Error(net::ErrorCode::kBadVersion, "the client speaks " + hello.protocol + " version " +
                                                            std::to_string(hello.version) + ", this server " +
                                                            std::to_string(h->version()));
        return *h;
      }
      offered += (offered.empty() ? "" : ", ") + h->offers();
    }
    throw error(ErrorCode::kUnavailable,
                "this server does not offer protocol '" + hello.protocol + "' (it offers " + offered + ")");
  }

  void serve(net::Channel& ch, std::uint64_t id);

  class Context final : public SessionContext {
   public:
    Context(State& s, std::string prefix) : s_(s), prefix_(std::move(prefix)) {}
    void log(const std::string& line) override { s_.log(prefix_ + line); }
    KeyCache& key_cache() override { return s_.cache; }
    std::uint64_t max_frame_bytes() override { return s_.max_frame; }

   private:
    State& s_;
    std::string prefix_;
  };
};

// The message loop of one session, whatever its protocol.
void Host::State::serve(net::Channel& ch, std::uint64_t id) {
  Context ctx(*this, "session " + std::to_string(id) + " " + ch.peer() + ": ");
  try {
    const Hello hello = decode_hello(ch.receive(hello_limits()));
    Handler& handler = find_handler(hello);
    auto session = handler.open(hello, ch, ctx);
    ctx.log("hello from '" + hello.client + "', " + hello.protocol + " v" + std::to_string(hello.version));
    for (;;) {
      if (is_stopping()) throw net::Error(net::ErrorCode::kShuttingDown, "the server is shutting down");
      Reservation reservation;
      const net::Frame f = ch.receive(message_limits(handler, *session, reservation));
      if (f.type == static_cast<std::uint16_t>(HostMessage::kBye)) break;
      try {
        session->on_message(f, ch);
      } catch (const net::Error& e) {
        if (!recoverable(e)) throw;
        ctx.log(std::string(handler.message_name(f.type)) + " refused: " + e.what());
        ch.send(encode_error(e));
      }
    }
    // The process's peak so far: what a session (its keys, its evaluations) took at most.
    const ResidentMemory mem = resident_memory();
    ctx.log("bye (up " + human_bytes(ch.bytes_received()) + ", down " + human_bytes(ch.bytes_sent()) +
            "; server resident " + human_bytes(mem.now) + ", peak " + human_bytes(mem.peak) + ")");
  } catch (const net::Error& e) {
    ctx.log(std::string("ended: ") + e.what());
    if (!e.is(net::ErrorCode::kClosed)) ch.send_final(encode_error(e));
  } catch (const std::exception& e) {
    ctx.log(std::string("ended: internal error: ") + e.what());
    ch.send_final(encode_error(error(ErrorCode::kInternal, e.what())));
  }
  // No malloc_trim here: it would hand back the working set the session's evaluations
  // faulted in, and the next session's first image would page-fault it in again
  // (mnist-delphi: ~8,000 faults and ~0.15 s more per later session). Freed blocks stay
  // in the heap for the next session.
}

Host::Host(std::vector<std::unique_ptr<Handler>> handlers, HostOptions options)
    : state_(std::make_unique<State>(std::move(options))) {
  VEIL_REQUIRE(!handlers.empty(), "a host serves at least one protocol");
  VEIL_REQUIRE(state_->opt.limits.max_sessions >= 1, "need at least one session");
  std::uint64_t largest = 0;
  for (const auto& h : handlers) largest = std::max(largest, h->max_frame_bytes());
  state_->handlers = std::move(handlers);
  state_->max_frame = state_->opt.limits.max_frame_bytes ? state_->opt.limits.max_frame_bytes : largest;
  const auto& l = state_->opt.limits;
  state_->max_inflight = l.max_inflight_bytes
                             ? l.max_inflight_bytes
                             : std::max<std::uint64_t>(std::uint64_t{1} << 30, state_->max_frame);
}

Host::~Host() = default;

std::uint16_t Host::port() const { return state_->listener.port(); }
std::string Host::address() const { return state_->listener.address(); }
std::uint64_t Host::max_frame_bytes() const { return state_->max_frame; }

void Host::run() {
  State& s = *state_;
  s.listener.run([&](std::unique_ptr<net::Channel> ch) { s.accept(std::move(ch)); }, s.channel_options(),
                 {SIGINT, SIGTERM},
                 [&](int sig) {
                   s.log(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
                         ": refusing new requests, finishing those in flight (grace " +
                         std::to_string(s.opt.limits.shutdown_grace_s).substr(0, 4) + " s)");
                   s.begin_stop();
                 });
  s.begin_stop();  // stop() called directly, or the listener failed
  s.finish_sessions();
  s.log("stopped");
}

void Host::stop() { state_->begin_stop(); }

void Host::serve(net::Channel& ch) {
  ch.set_options(state_->channel_options());
  state_->serve(ch, 0);
}

}  // namespace veil::protocol
