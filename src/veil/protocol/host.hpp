// The server's host: listens, admits sessions, reads each client's Hello and hands the
// session to the handler of the protocol it names, runs the message loop, and shuts down
// gracefully. It knows no protocol: adding one (the hybrid protocol) is adding a Handler.
//
// Threads: one accepts connections (and watches SIGINT/SIGTERM); each session runs on its
// own thread, blocking on its channel with timeouts, so a slow or stalled client holds only
// its own thread. Heavy work inside a handler (an evaluation) runs through veil::run_job
// (common/thread_pool.hpp), which admits a few jobs at a time onto the process's one pool.
//
// Policies that apply to every session whatever its protocol live here (HostLimits), never
// in a handler: admission (session cap, per-address cap) in Host::State::accept; the first
// message's size and deadline, the minimum transfer rate, per-message frame limits (each
// session reports them from its plan) and the in-flight memory budget in the receive
// limits the message loop passes to the channel; the shutdown grace period in run().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "veil/net/channel.hpp"
#include "veil/protocol/hello.hpp"
#include "veil/protocol/key_cache.hpp"

namespace veil::protocol {

// Every limit has a default that serves a legitimate client on a slow link and bounds
// what a hostile one costs; docs/protocol.md lists them.
struct HostLimits {
  std::size_t max_sessions = 16;             // connections served at once; more get "server busy"
  std::size_t max_sessions_per_address = 4;  // of those, from one client address (IP, any port)
  std::uint64_t max_frame_bytes = 0;         // 0: the largest any handler needs (Handler::max_frame_bytes)
  double timeout_s = 30;                     // no progress within a frame (read or write)
  double idle_timeout_s = 300;               // between messages (client key generation, encryption)
  // The Hello: a small frame (kMaxHelloBytes), all of it within this many seconds of the
  // connection (0: the idle timeout).
  double hello_timeout_s = 10;
  // Within a frame, after the first timeout_s: at least this average rate since its first
  // byte (0: none). Drops senders that trickle a byte just within each timeout.
  std::uint64_t min_bytes_per_s = 16 << 10;
  // Bytes of frames being received or handled, all sessions together; a frame whose header
  // would exceed it is refused (server busy) before its body is read. 0: the larger of
  // 1 GiB and the largest frame.
  std::uint64_t max_inflight_bytes = 0;
  // After SIGINT/SIGTERM or stop(): sessions still open after this many seconds (a request
  // being evaluated, a client trickling a frame) are closed, each with a log line.
  double shutdown_grace_s = 5;
};

struct HostOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 7470;  // 0: any free port
  HostLimits limits;
  std::uint64_t max_key_cache_bytes = std::uint64_t{4} << 30;  // evaluation keys, all protocols
  // One line per request and session; default: stdout, flushed.
  std::function<void(const std::string&)> log;
};

// What the host lends a handler's session.
class SessionContext {
 public:
  virtual ~SessionContext() = default;
  virtual void log(const std::string& line) = 0;  // prefixed with the session's id and peer
  virtual KeyCache& key_cache() = 0;
  virtual std::uint64_t max_frame_bytes() = 0;  // the host's limit on received frames
};

// One client's session of one protocol, after its Hello.
class ProtocolSession {
 public:
  virtual ~ProtocolSession() = default;
  // Handles one client message (never Hello or Bye); may send and receive any number of
  // frames on `ch` (multi-round protocols). A net::Error with a protocol's code (not the
  // transport's, not kInternal or kUnavailable) leaves the stream in sync: the host answers
  // it with an Error message and the session goes on; any other ends the session.
  virtual void on_message(const net::Frame& f, net::Channel& ch) = 0;
  // The largest payload of a message of this type the session accepts now (what its plan
  // implies), checked by the host from the frame's header before the body is read; the
  // host's own frame limit applies as well.
  virtual std::uint64_t max_frame_bytes(std::uint16_t type) const = 0;
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual std::string protocol() const = 0;  // the name clients put in their Hello
  virtual std::uint16_t version() const = 0;
  virtual std::string offers() const = 0;             // for logs and refusals: "ni v3 (latency, throughput)"
  virtual std::uint64_t max_frame_bytes() const = 0;  // the largest message it receives
  virtual const char* message_name(std::uint16_t type) const = 0;  // for the host's log
  // Opens a session for a client's Hello: sends the protocol's greeting on `ch`, or throws
  // net::Error (e.g. kUnavailable for a mode it does not offer).
  virtual std::unique_ptr<ProtocolSession> open(const Hello& hello, net::Channel& ch,
                                                SessionContext& ctx) = 0;
};

class Host {
 public:
  Host(std::vector<std::unique_ptr<Handler>> handlers, HostOptions options);
  ~Host();
  std::uint16_t port() const;
  std::string address() const;
  std::uint64_t max_frame_bytes() const;
  // Serves until SIGINT/SIGTERM or stop(): then refuses new connections and new
  // requests, lets requests in flight finish, and returns.
  void run();
  void stop();  // thread-safe

  // Runs one session on the calling thread over any channel (the in-process tests' server
  // role over a memory pair); returns when it ends. Not counted against max_sessions.
  void serve(net::Channel& ch);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace veil::protocol
