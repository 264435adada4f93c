// A raw socket for the host's tests: the hostile peer that sends what it likes, when it
// likes, from a loopback address of its choice (127.0.0.2, ...: Linux routes all of 127/8
// to lo), so that a legitimate client on 127.0.0.1 counts as another address.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "veil/net/frame.hpp"
#include "veil/protocol/hello.hpp"

namespace veil::test {

inline double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A raw socket from `source` (a loopback address) to the server: the hostile peer.
class RawPeer {
 public:
  RawPeer(const char* source, std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &a.sin_addr);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << "bind " << source;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << "connect from " << source;
  }
  ~RawPeer() { ::close(fd_); }
  bool send(const std::vector<std::uint8_t>& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  void hello(const std::string& name = "echo", std::uint16_t version = 1, const Bytes& body = {}) {
    send(net::encode_frame(protocol::encode(protocol::Hello{name, version, "raw", body})));
  }
  // The next frame within `timeout_s`: its type and (for an Error) its code; type 0 when
  // the connection closed or nothing came.
  std::pair<std::uint16_t, std::uint16_t> next(double timeout_s) {
    std::vector<std::uint8_t> bytes;
    const auto t = std::chrono::steady_clock::now();
    while (since(t) < timeout_s) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      std::uint8_t buf[4096];
      const ssize_t k = ::recv(fd_, buf, sizeof buf, 0);
      if (k <= 0) break;
      bytes.insert(bytes.end(), buf, buf + k);
      if (bytes.size() >= net::kFrameHeaderSize) {
        const auto h = net::decode_header({bytes.data(), net::kFrameHeaderSize}, 1 << 20);
        if (bytes.size() >= net::kFrameHeaderSize + h.length) {
          bytes.resize(net::kFrameHeaderSize + h.length);
          const net::Frame f = net::parse_frame(bytes, 1 << 20);
          if (f.type != static_cast<std::uint16_t>(protocol::HostMessage::kError)) return {f.type, 0};
          return {f.type, protocol::decode_error(f).code};
        }
      }
    }
    return {0, 0};
  }
  // Whether the server has sent something (a refusal) or closed: a trickler stops there, so
  // that its next byte does not reset the connection under the refusal.
  bool readable() {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  // Whether the server has closed the connection (within `timeout_s`).
  bool closed(double timeout_s) {
    const auto t = std::chrono::steady_clock::now();
    while (since(t) < timeout_s) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      std::uint8_t buf[4096];
      if (::recv(fd_, buf, sizeof buf, 0) <= 0) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
};

// Resident memory of this process, in KiB (Linux).
inline long rss_kib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  if (f) std::fclose(f);
  return kib;
}

}  // namespace veil::test
