// The client role of the non-interactive protocol, over any net::Channel (TCP, or a memory
// pair in tests): says Hello, learns the model's public plan, makes sure the server holds
// this client's evaluation keys, and runs encrypted requests. Key generation, encryption
// and decryption stay with the caller (the secret key never enters this class).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/net/channel.hpp"
#include "veil/nn/he/public_plan.hpp"
#include "veil/protocol/ni/messages.hpp"

namespace veil::protocol::ni {

struct ClientOptions {
  double timeout_s = 60;          // connect, and no progress within a frame
  double reply_timeout_s = 3600;  // waiting for a reply (server evaluation, queueing)
  std::uint64_t max_frame_bytes = std::uint64_t{4} << 30;
};

// "HOST:PORT" (IPv6 as [::1]:PORT).
std::pair<std::string, std::uint16_t> parse_address(const std::string& address);

// A TCP channel to a server with the options' timeouts and frame limit.
std::unique_ptr<net::Channel> connect(const std::string& host, std::uint16_t port,
                                      const ClientOptions& options = {});

// The client's network and plan from the server's public plan (nn::public_model), with
// every inconsistency reported as net::Error(kBadMessage) naming it.
nn::PublicModel public_model(const ServerInfo& info);

class Client {
 public:
  // Sends Hello, receives and validates ServerInfo. Throws net::Error (the server's own
  // Error, e.g. busy or mode unavailable, carries its code). The first form drives a
  // channel the caller owns (and keeps alive), the second owns its channel.
  Client(net::Channel& channel, nn::Mode mode, const std::string& name = "veil-client");
  Client(std::unique_ptr<net::Channel> channel, nn::Mode mode, const std::string& name = "veil-client");
  ~Client();

  const ServerInfo& info() const { return info_; }
  const nn::PublicModel& model() const { return model_; }

  // Whether the server already holds keys with this hash (they then serve this session).
  bool query_keys(const KeyHash& hash);
  // `ring`: the smaller ring's keys (nn::save_small_ring_keys) when the plan switches rings.
  void upload_keys(const Bytes& relin, const Bytes& galois, const Bytes& ring = {});

  struct Reply {
    std::vector<ckks::Ciphertext> outputs;
    double queue_seconds = 0, eval_seconds = 0;
  };
  Reply infer(const std::vector<ckks::Ciphertext>& inputs, std::size_t images);

  void bye() noexcept;
  const net::ChannelStats& stats() const { return channel_->stats(); }

 private:
  // Sends a request and returns the reply frame. When the server has closed the
  // connection (it refuses further requests while shutting down), the reason it sent
  // before closing is thrown rather than the broken pipe.
  // Sends `request` (a closed connection: the server's Error, when it sent one, thrown).
  void send(const net::Frame& request);
  net::Frame exchange(const net::Frame& request);

  std::unique_ptr<net::Channel> owned_;
  net::Channel* channel_;
  ServerInfo info_;
  nn::PublicModel model_;
};

}  // namespace veil::protocol::ni
