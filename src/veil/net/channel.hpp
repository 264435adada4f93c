// A framed, bidirectional connection with timeouts and counters, over a TCP socket
// (Asio). The API is blocking from the caller's side (one thread drives one channel),
// which keeps request/response and multi-round protocols (the later secret-sharing
// phase) straightforward; every operation is bounded in time:
//   - idle timeout: waiting for the first byte of the next frame;
//   - I/O timeout: no progress while the rest of a frame is read, or while writing.
// Each operation runs the channel's own io_context until it completes or its deadline
// passes, then cancels the socket: the timeout idiom of Asio's blocking_tcp_client
// example (asio/src/examples/cpp11/timeouts). Payloads are read in chunks, so a peer
// that declares a large frame and sends little costs little memory.
//
// Asio stays inside channel.cpp (pimpl): users include only this header.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "veil/net/frame.hpp"

namespace veil::net {

struct ChannelOptions {
  std::uint64_t max_frame_bytes = std::uint64_t{1} << 30;  // payload bound for received frames
  std::chrono::milliseconds io_timeout{30000};
  std::chrono::milliseconds idle_timeout{300000};
};

struct ChannelStats {
  std::uint64_t bytes_sent = 0, bytes_received = 0;  // headers included
  std::uint64_t frames_sent = 0, frames_received = 0;
  // Round trips: times this side started receiving after having sent (a request/response
  // exchange is one round; multi-round protocols count their interaction rounds).
  std::uint64_t rounds = 0;
};

class Channel {
 public:
  struct Impl;
  explicit Channel(std::unique_ptr<Impl> impl);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Resolves and connects (bounded by the I/O timeout).
  static std::unique_ptr<Channel> connect(const std::string& host, std::uint16_t port, const ChannelOptions& options);

  void send(std::uint16_t type, std::span<const std::uint8_t> payload);
  void send(const Frame& frame) { send(frame.type, frame.payload); }
  // Throws Error: kTimeout, kClosed, kIo, or the header's refusal (kBadFrame, kBadVersion,
  // kFrameTooLarge); kShuttingDown when interrupted while idle.
  Frame recv();

  // Thread-safe. Makes a receive that is still waiting for the first byte of a frame
  // (now or later) fail with kShuttingDown; a frame already arriving is read normally.
  void interrupt();
  // Best effort, never throws: sends one last frame, discards what the peer had already
  // sent (so closing does not reset the connection under the frame) and closes.
  void send_final(const Frame& frame) noexcept;
  void close() noexcept;

  const ChannelStats& stats() const { return stats_; }
  const ChannelOptions& options() const { return options_; }
  void set_options(const ChannelOptions& o) { options_ = o; }
  const std::string& peer() const { return peer_; }

 private:
  std::unique_ptr<Impl> impl_;
  ChannelOptions options_;
  ChannelStats stats_;
  std::string peer_;
  bool last_was_send_ = false;
};

// A listening TCP socket. run() accepts connections until stop() (thread-safe) or one of
// the watched signals arrives; each connection becomes a Channel handed to on_accept on
// the listener's thread (which must return quickly: hand the channel to a session).
class Listener {
 public:
  Listener(const std::string& host, std::uint16_t port);  // port 0: any free port
  ~Listener();
  std::uint16_t port() const;
  std::string address() const;  // HOST:PORT
  void run(const std::function<void(std::unique_ptr<Channel>)>& on_accept, const ChannelOptions& options,
           std::initializer_list<int> signals = {}, const std::function<void(int)>& on_signal = {});
  void stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace veil::net
