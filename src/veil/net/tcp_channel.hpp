// The Channel over a TCP socket (Asio), and the listener that accepts them.
//
// Each operation runs the channel's own io_context until it completes or its deadline
// passes, then cancels the socket: the timeout idiom of Asio's blocking_tcp_client example
// (asio/src/examples/cpp11/timeouts). Payloads are read in chunks, so a peer that declares
// a large frame and sends little costs little memory. Asio stays inside tcp_channel.cpp
// (pimpl): users include only this header.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>

#include "veil/net/channel.hpp"

namespace veil::net {

class TcpChannel final : public Channel {
 public:
  struct Impl;
  explicit TcpChannel(std::unique_ptr<Impl> impl);
  ~TcpChannel() override;

  // Resolves and connects (bounded by the I/O timeout).
  static std::unique_ptr<TcpChannel> connect(const std::string& host, std::uint16_t port,
                                             const ChannelOptions& options);

  using Channel::receive;
  using Channel::send;
  void send(std::uint16_t type, std::span<const std::uint8_t> payload) override;
  Frame receive(const ReceiveLimits& limits) override;
  void interrupt() override;
  void abort() override;
  // Also discards what the peer had already sent, so closing does not reset the
  // connection under the frame.
  void send_final(const Frame& frame) noexcept override;
  void close() noexcept override;

 private:
  std::unique_ptr<Impl> impl_;
};

// A listening TCP socket. run() accepts connections until stop() (thread-safe) or one of
// the watched signals arrives; each connection becomes a channel handed to on_accept on
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
