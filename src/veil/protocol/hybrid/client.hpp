// The client role of the hybrid protocol, over any net::Channel (TCP: ni::connect, or a
// memory pair in tests): says Hello, learns the public program and checks it (the
// parameter sets must be those the public program implies), sends its public keys, runs
// preprocessing ahead of time (each run leaves one inference's material here and the
// server's under the same id) and infers with the oldest unused material. The secret keys
// and the masks never leave this class; the weights never reach it.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "veil/hybrid/online.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/net/channel.hpp"
#include "veil/protocol/hybrid/messages.hpp"

namespace veil::protocol::hybrid {

// What one stage cost, as this client saw it (frame headers included).
struct StageStats {
  int runs = 0;
  double seconds = 0;
  std::uint64_t bytes_sent = 0, bytes_received = 0, rounds = 0;
};

struct ClientStats {
  StageStats keys, preprocess, online;
};

class Client {
 public:
  // Sends Hello, receives and validates ServerInfo, makes the session's keys. Throws
  // net::Error (the server's own Error carries its code; a ServerInfo that does not
  // validate is kBadMessage naming the problem). The first form drives a channel the
  // caller owns (and keeps alive), the second owns its channel.
  explicit Client(net::Channel& channel, const std::string& name = "veil-client");
  explicit Client(std::unique_ptr<net::Channel> channel, const std::string& name = "veil-client");
  ~Client();

  const ServerInfo& info() const { return info_; }
  // The public program (no weights) and the parameter sets it implies.
  const veil::hybrid::Program& program() const { return program_; }
  const veil::hybrid::HeParameters& params() const { return params_; }

  void send_keys();
  // One inference's preprocessing; returns its id. Throws kMaterialLimit when the server
  // (and so this client) holds info().max_materials unused materials already.
  MaterialId preprocess();
  std::size_t materials() const { return materials_.size(); }
  // Logits of one normalised input (C x H x W), with the oldest unused material, which is
  // consumed whatever happens. Throws kNoKeys-like refusals from the server as net::Error.
  std::vector<double> infer(const std::vector<double>& input);

  const ClientStats& stats() const { return stats_; }
  void bye() noexcept;

 private:
  net::Frame exchange(const net::Frame& request);
  [[noreturn]] void send_failed(const net::Error& e);
  struct Held {
    MaterialId id;
    veil::hybrid::Material material;
    double made = 0;  // seconds since construction: the server drops materials by age
  };
  double now() const;

  std::unique_ptr<net::Channel> owned_;
  net::Channel* channel_;
  ServerInfo info_;
  veil::hybrid::Program program_;
  veil::hybrid::HeParameters params_;
  std::unique_ptr<veil::hybrid::PreprocessClient> pre_;
  std::deque<Held> materials_;  // oldest first
  ClientStats stats_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace veil::protocol::hybrid
