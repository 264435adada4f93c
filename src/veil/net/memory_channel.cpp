#include "veil/net/memory_channel.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>

namespace veil::net {

namespace {

// What the two ends share: one queue per direction under one lock.
struct Link {
  std::mutex m;
  std::condition_variable cv;
  std::deque<Frame> queue[2];  // queue[i]: frames waiting for end i
  bool closed[2] = {false, false};
  bool interrupted[2] = {false, false};
};

class MemoryChannel final : public Channel {
 public:
  MemoryChannel(std::shared_ptr<Link> link, int side, const ChannelOptions& options)
      : link_(std::move(link)), side_(side) {
    options_ = options;
    peer_ = side == 0 ? "memory (end 1)" : "memory (end 0)";
  }
  ~MemoryChannel() override { close(); }

  using Channel::receive;
  using Channel::send;

  void send(std::uint16_t type, std::span<const std::uint8_t> payload) override {
    Frame f{type, {payload.begin(), payload.end()}};
    {
      std::lock_guard lk(link_->m);
      if (link_->closed[side_]) throw Error(ErrorCode::kClosed, "writing a frame: this end is closed");
      if (link_->closed[1 - side_])
        throw Error(ErrorCode::kClosed, "writing a frame: the peer closed the connection");
      link_->queue[1 - side_].push_back(std::move(f));
    }
    link_->cv.notify_all();
    stats_.bytes_sent += kFrameHeaderSize + payload.size();
    end_send();
  }

  Frame receive(const ReceiveLimits& limits) override {
    begin_receive();
    std::unique_lock lk(link_->m);
    auto& q = link_->queue[side_];
    auto wait = limits.idle_timeout;
    if (limits.deadline)
      wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                *limits.deadline - std::chrono::steady_clock::now()));
    const bool ready = link_->cv.wait_for(lk, std::max(wait, std::chrono::milliseconds(0)), [&] {
      return !q.empty() || link_->interrupted[side_] || link_->closed[0] || link_->closed[1];
    });
    // As over TCP: a frame that has arrived is read even when interrupted or closed.
    if (q.empty()) {
      if (!ready) throw Error(ErrorCode::kTimeout, "waiting for a message: nothing for " + seconds(wait));
      if (link_->closed[side_]) throw Error(ErrorCode::kClosed, "waiting for a message: this end is closed");
      if (link_->interrupted[side_])
        throw Error(ErrorCode::kShuttingDown, "interrupted while waiting for the next message");
      throw Error(ErrorCode::kClosed, "waiting for a message: the peer closed the connection");
    }
    Frame f = std::move(q.front());
    q.pop_front();
    lk.unlock();
    stats_.bytes_received += kFrameHeaderSize;
    if (f.payload.size() > limits.max_frame_bytes)
      throw Error(ErrorCode::kFrameTooLarge, "frame of " + std::to_string(f.payload.size()) +
                                                 " bytes exceeds the limit of " +
                                                 std::to_string(limits.max_frame_bytes) + " bytes");
    if (limits.on_header) limits.on_header(f.type, f.payload.size());
    stats_.bytes_received += f.payload.size();
    ++stats_.frames_received;
    return f;
  }

  void interrupt() override {
    {
      std::lock_guard lk(link_->m);
      link_->interrupted[side_] = true;
    }
    link_->cv.notify_all();
  }

  void abort() override { close(); }

  void send_final(const Frame& frame) noexcept override {
    try {
      send(frame);
    } catch (...) {
    }
    close();
  }

  void close() noexcept override {
    {
      std::lock_guard lk(link_->m);
      link_->closed[side_] = true;
    }
    link_->cv.notify_all();
  }

 private:
  static std::string seconds(std::chrono::milliseconds t) {
    return std::to_string(t.count() / 1000.0).substr(0, 5) + " s";
  }

  std::shared_ptr<Link> link_;
  int side_;
};

}  // namespace

std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> make_memory_pair(
    const ChannelOptions& options) {
  auto link = std::make_shared<Link>();
  return {std::make_unique<MemoryChannel>(link, 0, options),
          std::make_unique<MemoryChannel>(link, 1, options)};
}

}  // namespace veil::net
