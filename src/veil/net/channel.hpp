// A framed, bidirectional connection between two parties, whatever carries it: the
// interface every protocol role is written against (emp-toolkit's NetIO, EzPC-SCI's
// IOPack), so the same client and server code runs over TCP (tcp_channel.hpp) and over
// an in-memory pair in one process (memory_channel.hpp) for tests.
//
// The API is blocking from the caller's side (one thread drives one channel), which keeps
// request/response and multi-round protocols straightforward; every receive is bounded in
// time (idle timeout before the first byte of a frame, I/O timeout within it) and in size
// (the receiver's frame limit, checked before the payload is allocated).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "veil/net/frame.hpp"

namespace veil::net {

// Bounds of one receive. A host may tighten them per phase (a small frame limit and a short
// deadline for the first message, larger ones once the peer has said who it is).
struct ReceiveLimits {
  std::uint64_t max_frame_bytes = std::uint64_t{1} << 30;  // payload bound
  std::chrono::milliseconds io_timeout{30000};             // no progress within a frame (and writes)
  std::chrono::milliseconds idle_timeout{300000};          // waiting for the first byte of a frame
  // The whole frame, first byte to last, must have arrived by then (the host's hello
  // deadline): a peer cannot stretch one frame by sending a byte just before each timeout.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // Within a frame, after a grace of io_timeout from its first byte: at least this many
  // bytes per second on average since that byte (0: no minimum). A sender that trickles
  // (one byte every few seconds, each within io_timeout) is dropped; a slow but steady
  // upload is not (Apache's mod_reqtimeout MinRate, the same idea).
  std::uint64_t min_bytes_per_s = 0;
  // Called with the header's type and length once the header has arrived and passed
  // max_frame_bytes, before a payload byte is read or allocated; may throw net::Error to
  // refuse the frame (a per-message limit, a memory budget). The stream is then out of
  // sync: the caller ends the connection.
  std::function<void(std::uint16_t type, std::uint64_t length)> on_header;
};
using ChannelOptions = ReceiveLimits;  // the channel's defaults for receive() and send()

struct ChannelStats {
  std::uint64_t bytes_sent = 0, bytes_received = 0;  // frame headers included
  std::uint64_t frames_sent = 0, frames_received = 0;
  // Rounds: times this side started receiving after having sent (a request/response
  // exchange is one round; multi-round protocols count their interaction rounds).
  std::uint64_t rounds = 0;
};

class Channel {
 public:
  virtual ~Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Throws Error (kTimeout, kClosed, kIo) when the frame cannot be delivered.
  virtual void send(std::uint16_t type, std::span<const std::uint8_t> payload) = 0;
  void send(const Frame& frame) { send(frame.type, frame.payload); }
  // Throws Error: kTimeout, kClosed, kIo, the header's refusal (kBadFrame, kBadVersion,
  // kFrameTooLarge), or kShuttingDown when interrupted while waiting for a frame.
  virtual Frame receive(const ReceiveLimits& limits) = 0;
  Frame receive() { return receive(options_); }

  // Thread-safe. Makes a receive that is still waiting for the first byte of a frame (now
  // or later) fail with kShuttingDown; a frame already arriving is read normally.
  virtual void interrupt() = 0;
  // Thread-safe. Ends the connection now, whatever the channel's thread is doing: its
  // current or next operation fails with kShuttingDown (a host's shutdown after its grace
  // period, for sessions that did not end by themselves).
  virtual void abort() = 0;
  // Best effort, never throws: sends one last frame and closes, so that the peer reads the
  // frame (a refusal, a shutdown notice) before it sees the connection end.
  virtual void send_final(const Frame& frame) noexcept = 0;
  virtual void close() noexcept = 0;

  const ChannelStats& stats() const { return stats_; }
  std::uint64_t bytes_sent() const { return stats_.bytes_sent; }
  std::uint64_t bytes_received() const { return stats_.bytes_received; }
  std::uint64_t rounds() const { return stats_.rounds; }
  const ChannelOptions& options() const { return options_; }
  void set_options(const ChannelOptions& o) { options_ = o; }
  // Who is at the other end, for logs ("127.0.0.1:51234", "memory").
  const std::string& peer() const { return peer_; }

 protected:
  Channel() = default;
  // Implementations call this when a receive starts: it counts a round after a send.
  void begin_receive() {
    if (last_was_send_) ++stats_.rounds;
    last_was_send_ = false;
  }
  void end_send() {
    ++stats_.frames_sent;
    last_was_send_ = true;
  }

  ChannelOptions options_;
  ChannelStats stats_;
  std::string peer_;

 private:
  bool last_was_send_ = false;
};

}  // namespace veil::net
