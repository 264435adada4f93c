// The in-memory channel pair: the same frames, counters, limits, timeouts and interruption
// as TCP, so tests that run both protocol roles in one process cannot hang.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "veil/net/memory_channel.hpp"

namespace veil {
namespace {

using net::ErrorCode;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

ErrorCode code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const net::Error& e) {
    return static_cast<ErrorCode>(e.code());
  }
  return ErrorCode{0};
}

net::ChannelOptions quick(int idle_ms) {
  net::ChannelOptions o;
  o.idle_timeout = std::chrono::milliseconds(idle_ms);
  return o;
}

TEST(MemoryChannel, FramesCountersAndRounds) {
  auto [a, b] = net::make_memory_pair(quick(5000));
  std::thread echo([&, &b = b] {
    for (int i = 0; i < 3; ++i) {
      net::Frame f = b->receive();
      f.payload.push_back(static_cast<std::uint8_t>(i));
      b->send(f);
    }
  });
  std::uint64_t sent = 0;
  for (int i = 0; i < 3; ++i) {
    const Bytes payload(1000 * i, 5);
    a->send(7, payload);
    sent += net::kFrameHeaderSize + payload.size();
    const net::Frame f = a->receive();
    EXPECT_EQ(f.type, 7);
    ASSERT_EQ(f.payload.size(), payload.size() + 1);
    EXPECT_EQ(f.payload.back(), i);
  }
  echo.join();
  // The same counts TCP gives (tests/net/frame_test.cpp), and each end mirrors the other.
  EXPECT_EQ(a->bytes_sent(), sent);
  EXPECT_EQ(a->bytes_received(), sent + 3);
  EXPECT_EQ(b->bytes_received(), a->bytes_sent());
  EXPECT_EQ(b->bytes_sent(), a->bytes_received());
  EXPECT_EQ(a->stats().frames_sent, 3u);
  EXPECT_EQ(a->rounds(), 3u);
  EXPECT_EQ(b->rounds(), 2u);  // its first receive followed no send
}

TEST(MemoryChannel, IdleTimeout) {
  auto [a, b] = net::make_memory_pair(quick(150));
  const auto t = Clock::now();
  EXPECT_EQ(code_of([&, &a = a] { a->receive(); }), ErrorCode::kTimeout);
  const double s = std::chrono::duration<double>(Clock::now() - t).count();
  EXPECT_GE(s, 0.14);
  EXPECT_LT(s, 5.0);
  // Per-call limits override the channel's defaults.
  net::ReceiveLimits l = quick(20);
  EXPECT_EQ(code_of([&, &b = b] { b->receive(l); }), ErrorCode::kTimeout);
}

TEST(MemoryChannel, InterruptStopsAWaitButNotAnArrivedFrame) {
  auto [a, b] = net::make_memory_pair(quick(60000));
  auto waiting = std::async(std::launch::async, [&, &a = a] { return code_of([&] { a->receive(); }); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto t = Clock::now();
  a->interrupt();
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "interrupt did not wake the receive";
  EXPECT_EQ(waiting.get(), ErrorCode::kShuttingDown);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t).count(), 5.0);
  // A frame that has already arrived is still read; the next wait fails at once.
  auto [c, d] = net::make_memory_pair(quick(60000));
  d->send(3, Bytes{1, 2});
  c->interrupt();
  EXPECT_EQ(c->receive().payload, (Bytes{1, 2}));
  EXPECT_EQ(code_of([&, &c = c] { c->receive(); }), ErrorCode::kShuttingDown);
}

TEST(MemoryChannel, LimitsAndClose) {
  auto [a, b] = net::make_memory_pair(quick(1000));
  net::ReceiveLimits small = quick(1000);
  small.max_frame_bytes = 10;
  a->send(1, Bytes(11, 0));
  EXPECT_EQ(code_of([&, &b = b] { b->receive(small); }), ErrorCode::kFrameTooLarge);
  a->send(1, Bytes(10, 0));
  EXPECT_EQ(b->receive(small).payload.size(), 10u);
  // Frames sent before a close are delivered, then the closed connection is reported.
  a->send_final(net::Frame{2, {9}});
  EXPECT_EQ(b->receive().type, 2);
  EXPECT_EQ(code_of([&, &b = b] { b->receive(); }), ErrorCode::kClosed);
  EXPECT_EQ(code_of([&, &b = b] { b->send(1, Bytes{}); }), ErrorCode::kClosed);
  // Destroying an end closes it: a peer blocked in receive wakes up.
  auto [c, d] = net::make_memory_pair(quick(60000));
  auto waiting = std::async(std::launch::async, [&, &d = d] { return code_of([&] { d->receive(); }); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  c.reset();
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(waiting.get(), ErrorCode::kClosed);
}

}  // namespace
}  // namespace veil
