// The server role: serves one model (planned once per mode) to many clients at once.
//
// Threads: one accepts connections (and watches SIGINT/SIGTERM); each session runs on its
// own thread, blocking on its Channel with timeouts, so a slow or stalled client holds
// only its own thread; evaluations run on a fixed pool of `workers` threads (each
// evaluation itself uses veil's data-parallel pool), so at most `workers` ciphertext
// batches are in memory at once however many sessions wait.
//
// Evaluation keys live in a cache shared by all sessions, keyed by the hash of their
// serialised bytes; a session holds a reference to its keys, and unreferenced entries
// are evicted least recently used when the byte cap needs room. A repeat session whose
// keys are still cached sends only the hash.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "veil/ckks/context.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/nn/network.hpp"
#include "veil/nn/he/planner.hpp"

namespace veil::protocol {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7470;           // 0: any free port
  int workers = 2;                     // concurrent evaluations
  std::size_t max_sessions = 16;       // connections served at once; more get "server busy"
  std::uint64_t max_key_cache_bytes = std::uint64_t{4} << 30;  // evaluation keys in memory
  std::uint64_t max_frame_bytes = 0;   // 0: twice the largest message the plans imply, + 1 MiB
  double timeout_s = 30;               // no progress within a frame (read or write)
  double idle_timeout_s = 300;         // between messages (client key generation, encryption)
  // One line per request and session; default: stdout, flushed.
  std::function<void(const std::string&)> log;
};

// A planned model the server evaluates: one per mode it offers.
struct ServedModel {
  nn::Network network;
  nn::Plan plan;
  ckks::ContextPtr context;
};

class Server {
 public:
  Server(std::vector<ServedModel> models, ServerOptions options);
  ~Server();
  std::uint16_t port() const;
  std::string address() const;
  std::uint64_t max_frame_bytes() const;
  // Serves until SIGINT/SIGTERM or stop(): then refuses new connections and new
  // requests, lets requests in flight finish, and returns.
  void run();
  void stop();  // thread-safe

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace veil::protocol
