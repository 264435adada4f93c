// The host's admission rules over loopback TCP, with a toy protocol ("echo") so that they
// are tested apart from any model: the Hello deadline, the per-address session cap, the
// minimum transfer rate, per-message frame limits from the session, the in-flight memory
// budget and the shutdown grace period. Hostile peers are raw sockets bound to other
// loopback addresses (127.0.0.2, ...: Linux routes all of 127/8 to lo), so that the
// legitimate client on 127.0.0.1 is a different address.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "protocol/raw_peer.hpp"
#include "veil/net/tcp_channel.hpp"
#include "veil/protocol/host.hpp"

namespace veil {
namespace {

using test::RawPeer;
using Clock = std::chrono::steady_clock;
constexpr std::uint16_t kEcho = 2;  // the toy protocol's one message, answered with itself
constexpr std::uint64_t kEchoLimit = 4096;

using test::since;

class EchoSession final : public protocol::ProtocolSession {
 public:
  void on_message(const net::Frame& f, net::Channel& ch) override { ch.send(f); }
  std::uint64_t max_frame_bytes(std::uint16_t type) const override { return type == kEcho ? kEchoLimit : 0; }
};

class EchoHandler final : public protocol::Handler {
 public:
  std::string protocol() const override { return "echo"; }
  std::uint16_t version() const override { return 1; }
  std::string offers() const override { return "echo v1"; }
  std::uint64_t max_frame_bytes() const override { return std::uint64_t{1} << 30; }
  const char* message_name(std::uint16_t type) const override { return type == kEcho ? "Echo" : "?"; }
  std::unique_ptr<protocol::ProtocolSession> open(const protocol::Hello&, net::Channel& ch,
                                                  protocol::SessionContext&) override {
    ch.send(kEcho, {});  // the greeting
    return std::make_unique<EchoSession>();
  }
};

// A host serving "echo" on a free loopback port, on a thread of its own; its log kept.
struct Server {
  std::unique_ptr<protocol::Host> host;
  std::thread thread;
  std::mutex m;
  std::vector<std::string> log;
  std::atomic<bool> returned{false};

  explicit Server(protocol::HostLimits limits) {
    std::vector<std::unique_ptr<protocol::Handler>> handlers;
    handlers.push_back(std::make_unique<EchoHandler>());
    protocol::HostOptions o;
    o.port = 0;
    o.limits = limits;
    o.log = [this](const std::string& line) {
      std::lock_guard lk(m);
      log.push_back(line);
      std::printf("  server %s\n", line.c_str());
    };
    host = std::make_unique<protocol::Host>(std::move(handlers), o);
    thread = std::thread([this] {
      host->run();
      returned = true;
    });
  }
  ~Server() {
    host->stop();
    thread.join();
  }
  bool logged(const std::string& text) {
    std::lock_guard lk(m);
    for (const auto& l : log)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
};

constexpr auto kError = static_cast<std::uint16_t>(protocol::HostMessage::kError);
constexpr auto kBusy = static_cast<std::uint16_t>(protocol::ErrorCode::kBusy);
constexpr auto kTimeout = static_cast<std::uint16_t>(net::ErrorCode::kTimeout);
constexpr auto kTooLarge = static_cast<std::uint16_t>(net::ErrorCode::kFrameTooLarge);

// A legitimate client from 127.0.0.1: Hello, one echo; returns the round trip in seconds.
double legitimate_echo(std::uint16_t port) {
  net::ChannelOptions o;
  o.io_timeout = std::chrono::seconds(5);
  o.idle_timeout = std::chrono::seconds(5);
  const auto t = Clock::now();
  auto ch = net::TcpChannel::connect("127.0.0.1", port, o);
  ch->send(protocol::encode(protocol::Hello{"echo", 1, "legit", {}}));
  EXPECT_EQ(ch->receive().type, kEcho);
  const std::vector<std::uint8_t> body(100, 7);
  ch->send(kEcho, body);
  const net::Frame f = ch->receive();
  EXPECT_EQ(f.type, kEcho);
  EXPECT_EQ(f.payload, body);
  ch->send(protocol::encode(protocol::Bye{}));
  return since(t);
}

std::vector<std::uint8_t> header(std::uint16_t type, std::uint64_t length) {
  return net::encode_header(type, length);
}

// A Hello trickled one byte at a time, each byte well within the I/O timeout, is dropped
// at the Hello deadline (before: every byte restarted the timeout).
TEST(HostAdmission, TrickledHelloDroppedAtTheDeadline) {
  protocol::HostLimits l;
  l.timeout_s = 5;
  l.hello_timeout_s = 0.5;
  Server server(l);
  RawPeer p("127.0.0.2", server.host->port());
  const auto hello = net::encode_frame(protocol::encode(protocol::Hello{"echo", 1, "trickler", {}}));
  const auto t = Clock::now();
  bool cut = false;
  for (std::size_t i = 0; i < hello.size() && !cut; ++i) {
    cut = p.readable() || !p.send({hello[i]});
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (since(t) > 1.5) break;
  }
  EXPECT_EQ(p.next(1.0), std::make_pair(kError, kTimeout));
  EXPECT_LT(since(t), 2.5);
  EXPECT_TRUE(server.logged("did not arrive within its deadline"));
}

// Idle and trickling sockets from two addresses fill their per-address share of the
// session cap; more from them are refused at once, and a client from a third address is
// still served within its normal latency.
TEST(HostAdmission, PerAddressCapLeavesRoomForOthers) {
  protocol::HostLimits l;
  l.max_sessions = 5;
  l.max_sessions_per_address = 2;
  l.hello_timeout_s = 30;
  Server server(l);
  const auto port = server.host->port();
  const double baseline = legitimate_echo(port);
  std::vector<std::unique_ptr<RawPeer>> idle, trickling;
  for (int i = 0; i < 2; ++i) idle.push_back(std::make_unique<RawPeer>("127.0.0.2", port));
  for (int i = 0; i < 2; ++i) {
    trickling.push_back(std::make_unique<RawPeer>("127.0.0.3", port));
    trickling.back()->send({'V'});
  }
  // Let the host admit them before the next connections from the same addresses.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  RawPeer third_idle("127.0.0.2", port), third_trickler("127.0.0.3", port);
  const auto t = Clock::now();
  EXPECT_EQ(third_idle.next(2.0), std::make_pair(kError, kBusy));
  EXPECT_EQ(third_trickler.next(2.0), std::make_pair(kError, kBusy));
  EXPECT_LT(since(t), 1.0);
  const double loaded = legitimate_echo(port);
  std::printf("  legitimate round trip: %.4f s alone, %.4f s beside 4 hostile sessions\n", baseline, loaded);
  EXPECT_LT(loaded, baseline + 0.5);
  EXPECT_TRUE(server.logged("sessions from 127.0.0.2 already"));
}

// Within a frame: a sender trickling one byte per 0.2 s (each within the 1 s I/O timeout)
// is dropped once it falls below the minimum rate, a slow but steady one is served.
TEST(HostAdmission, TricklerDroppedSteadySlowSenderServed) {
  protocol::HostLimits l;
  l.timeout_s = 1;
  l.min_bytes_per_s = 1000;
  Server server(l);
  const auto port = server.host->port();
  RawPeer trickler("127.0.0.2", port), steady("127.0.0.3", port);
  trickler.hello();
  steady.hello();
  EXPECT_EQ(trickler.next(2.0).first, kEcho);
  EXPECT_EQ(steady.next(2.0).first, kEcho);
  const std::uint64_t n = 3000;  // 2.0 s at 1,500 B/s, 150 bytes every 0.1 s
  trickler.send(header(kEcho, n));
  steady.send(header(kEcho, n));
  const auto t = Clock::now();
  double dropped_after = -1;
  for (std::uint64_t sent = 0; sent < n; sent += 150) {
    steady.send(std::vector<std::uint8_t>(150, 1));
    if (dropped_after < 0 && (trickler.readable() || !trickler.send({1}))) dropped_after = since(t);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::printf("  trickler dropped after %.2f s of its frame\n", dropped_after);
  EXPECT_GT(dropped_after, 0.9);
  EXPECT_LT(dropped_after, 1.8);
  EXPECT_EQ(steady.next(2.0).first, kEcho) << "the steady sender was not served";
  EXPECT_EQ(trickler.next(2.0), std::make_pair(kError, kTimeout));
  EXPECT_TRUE(server.logged("slower than the minimum rate"));
}

// A frame larger than the session allows for its type is refused from its header: no body
// is sent, the refusal comes at once, though the host-wide frame limit is 1 GiB.
TEST(HostAdmission, PerMessageLimitFromTheSession) {
  Server server({});
  RawPeer p("127.0.0.2", server.host->port());
  p.hello();
  EXPECT_EQ(p.next(2.0).first, kEcho);
  const auto t = Clock::now();
  p.send(header(kEcho, std::uint64_t{512} << 20));
  EXPECT_EQ(p.next(2.0), std::make_pair(kError, kTooLarge));
  EXPECT_LT(since(t), 1.0);
  EXPECT_TRUE(server.logged("exceeds this session's limit of 4096 bytes"));
}

// Frames being received count against the in-flight budget: a second large frame while the
// first is still arriving is refused (server busy) from its header.
TEST(HostAdmission, InFlightBudget) {
  protocol::HostLimits l;
  l.max_inflight_bytes = 6000;
  Server server(l);
  const auto port = server.host->port();
  RawPeer a("127.0.0.2", port), b("127.0.0.3", port);
  a.hello();
  b.hello();
  EXPECT_EQ(a.next(2.0).first, kEcho);
  EXPECT_EQ(b.next(2.0).first, kEcho);
  a.send(header(kEcho, 4000));
  a.send(std::vector<std::uint8_t>(100, 1));  // still arriving
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  b.send(header(kEcho, 4000));
  EXPECT_EQ(b.next(2.0), std::make_pair(kError, kBusy));
  a.send(std::vector<std::uint8_t>(3900, 1));
  EXPECT_EQ(a.next(2.0).first, kEcho);  // the first completes; its reservation is released
  a.send(header(kEcho, 4000));
  a.send(std::vector<std::uint8_t>(4000, 2));
  EXPECT_EQ(a.next(2.0).first, kEcho);
}

// Shutdown under a trickling client: the host returns within the grace period (plus a
// margin), closing the session with a log line, instead of waiting for the trickle to end.
TEST(HostAdmission, ShutdownGraceUnderTrickling) {
  protocol::HostLimits l;
  l.timeout_s = 2;
  l.min_bytes_per_s = 0;  // only the grace period ends this trickle
  l.shutdown_grace_s = 0.5;
  Server server(l);
  RawPeer p("127.0.0.2", server.host->port());
  p.hello();
  EXPECT_EQ(p.next(2.0).first, kEcho);
  p.send(header(kEcho, 1000));
  std::atomic<bool> stop_trickle{false};
  std::thread trickle([&] {
    while (!stop_trickle && !p.readable() && p.send({1}))
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t = Clock::now();
  server.host->stop();
  while (!server.returned && since(t) < 10) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const double took = since(t);
  stop_trickle = true;
  trickle.join();
  EXPECT_TRUE(server.returned);
  EXPECT_GE(took, 0.4);
  EXPECT_LT(took, 2.0);
  EXPECT_TRUE(server.logged("closed at shutdown"));
}

}  // namespace
}  // namespace veil
