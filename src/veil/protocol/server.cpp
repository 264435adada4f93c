#include "veil/protocol/server.hpp"

#include <csignal>
#include <cstdio>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <queue>
#include <thread>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "veil/ckks/serialize.hpp"
#include "veil/common/file.hpp"
#include "veil/common/error.hpp"
#include "veil/common/format.hpp"
#include "veil/net/channel.hpp"
#include "veil/protocol/messages.hpp"
#include "veil/protocol/public_plan.hpp"

namespace veil::protocol {

namespace {

using Clock = std::chrono::steady_clock;
using net::ErrorCode;


std::uint64_t memory_bytes(const rlwe::KeySwitchKey& k) {
  std::uint64_t b = 0;
  for (const auto& v : k.b) b += v.size() * sizeof(math::u64);
  for (const auto& v : k.a) b += v.size() * sizeof(math::u64);
  return b;
}

std::uint64_t memory_bytes(const nn::EvaluationKeys& k) {
  std::uint64_t b = memory_bytes(k.relin.key);
  for (const auto& [g, key] : k.galois.keys) b += memory_bytes(key);
  return b;
}

// Evaluation keys of all sessions, keyed by (hash, mode), capped in bytes held in memory.
class KeyCache {
 public:
  explicit KeyCache(std::uint64_t cap) : cap_(cap) {}

  std::shared_ptr<const nn::EvaluationKeys> find(const KeyHash& h, std::size_t mode) {
    std::lock_guard lk(m_);
    auto it = entries_.find({h, mode});
    if (it == entries_.end()) return nullptr;
    it->second.last_used = ++tick_;
    return it->second.keys;
  }

  // Evicts unreferenced entries, least recently used first, until `bytes` fit; refuses
  // (server busy) when keys held by live sessions leave no room.
  std::shared_ptr<const nn::EvaluationKeys> insert(const KeyHash& h, std::size_t mode, nn::EvaluationKeys keys,
                                                   std::uint64_t bytes) {
    std::lock_guard lk(m_);
    if (auto it = entries_.find({h, mode}); it != entries_.end()) return it->second.keys;
    while (used_ + bytes > cap_) {
      auto victim = entries_.end();
      for (auto it = entries_.begin(); it != entries_.end(); ++it)
        if (it->second.keys.use_count() == 1 && (victim == entries_.end() || it->second.last_used < victim->second.last_used))
          victim = it;
      if (victim == entries_.end())
        throw net::Error(ErrorCode::kBusy, "the key cache is full (" + human_bytes(used_) + " of " +
                                               human_bytes(cap_) +
                                               " held by active sessions; these keys need " + human_bytes(bytes) +
                                               "); try again later");
      used_ -= victim->second.bytes;
      entries_.erase(victim);
    }
    auto ptr = std::make_shared<const nn::EvaluationKeys>(std::move(keys));
    entries_[{h, mode}] = Entry{ptr, bytes, ++tick_};
    used_ += bytes;
    return ptr;
  }

 private:
  struct Entry {
    std::shared_ptr<const nn::EvaluationKeys> keys;
    std::uint64_t bytes = 0, last_used = 0;
  };
  std::mutex m_;
  std::map<std::pair<KeyHash, std::size_t>, Entry> entries_;
  std::uint64_t cap_, used_ = 0, tick_ = 0;
};

// A fixed set of evaluation threads fed by a FIFO queue; the destructor finishes every
// queued job before joining.
class Workers {
 public:
  explicit Workers(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
  }
  ~Workers() {
    {
      std::lock_guard lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void submit(std::function<void()> job) {
    {
      std::lock_guard lk(m_);
      jobs_.push(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lk(m_);
        cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop();
      }
      job();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::queue<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stop_ = false;
};

// One planned mode: the evaluator, and the ServerInfo frame sent to every client.
struct ModeState {
  ServedModel model;
  std::unique_ptr<nn::EncryptedNetwork> evaluator;
  net::Frame info;
  int relin_level = 0;  // highest level a relinearisation runs at
};

struct Session {
  std::uint64_t id = 0;
  std::unique_ptr<net::Channel> channel;
  std::thread thread;
  bool done = false;  // guarded by State::m
};

// Errors a session answers and survives: the stream is still in sync.
bool recoverable(ErrorCode c) {
  return c == ErrorCode::kBadMessage || c == ErrorCode::kBadKeys || c == ErrorCode::kBadCiphertexts ||
         c == ErrorCode::kNoKeys || c == ErrorCode::kBusy || c == ErrorCode::kUnexpectedMessage;
}

}  // namespace

struct Server::State {
  ServerOptions opt;
  std::vector<std::unique_ptr<ModeState>> modes;
  std::uint64_t max_frame = 0;
  KeyCache cache;
  Workers workers;
  net::Listener listener;
  Clock::time_point start = Clock::now();

  std::mutex m;  // sessions, next_id, stopping
  std::list<std::unique_ptr<Session>> sessions;
  std::uint64_t next_id = 1;
  bool stopping = false;
  std::mutex log_m;

  State(ServerOptions o)
      : opt(std::move(o)), cache(opt.max_key_cache_bytes), workers(opt.workers), listener(opt.host, opt.port) {}

  void log(const std::string& line) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "[%9.3f] ", seconds_since(start));
    std::lock_guard lk(log_m);
    if (opt.log) {
      opt.log(stamp + line);
    } else {
      std::printf("%s%s\n", stamp, line.c_str());
      std::fflush(stdout);
    }
  }

  net::ChannelOptions channel_options() const {
    net::ChannelOptions c;
    c.max_frame_bytes = max_frame;
    c.io_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(opt.timeout_s * 1000));
    c.idle_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(opt.idle_timeout_s * 1000));
    return c;
  }

  void begin_stop() {
    std::lock_guard lk(m);
    if (stopping) return;
    stopping = true;
    listener.stop();
    for (auto& s : sessions)
      if (s->channel) s->channel->interrupt();
  }

  // Joins sessions that have ended (all of them when `all`).
  void reap(bool all) {
    std::list<std::unique_ptr<Session>> finished;
    {
      std::unique_lock lk(m);
      for (auto it = sessions.begin(); it != sessions.end();) {
        if ((*it)->done || all) {
          finished.push_back(std::move(*it));
          it = sessions.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& s : finished) s->thread.join();
  }

  void accept(std::unique_ptr<net::Channel> ch) {
    reap(false);
    std::lock_guard lk(m);
    if (stopping) {
      ch->send_final(encode(ErrorMessage{ErrorCode::kShuttingDown, "the server is shutting down"}));
      return;
    }
    if (sessions.size() >= opt.max_sessions) {
      log("refused " + ch->peer() + ": server busy (" + std::to_string(sessions.size()) + " sessions)");
      ch->send_final(encode(ErrorMessage{ErrorCode::kBusy, std::to_string(sessions.size()) +
                                                               " sessions already open (the limit); try again later"}));
      return;
    }
    auto s = std::make_unique<Session>();
    s->id = next_id++;
    s->channel = std::move(ch);
    Session* raw = s.get();
    sessions.push_back(std::move(s));
    raw->thread = std::thread([this, raw] { serve(*raw); });
  }

  void serve(Session& s);
  void handle(Session& s, const ModeState& mode, const net::Frame& f,
              std::shared_ptr<const nn::EvaluationKeys>& keys, std::string& prefix);
};

void Server::State::serve(Session& s) {
  net::Channel& ch = *s.channel;
  std::string prefix = "session " + std::to_string(s.id) + " " + ch.peer() + ": ";
  std::shared_ptr<const nn::EvaluationKeys> keys;
  try {
    const Hello hello = decode<Hello>(ch.recv());
    const ModeState* mode = nullptr;
    std::string offered;
    for (const auto& m : modes) {
      if (m->model.plan.mode == hello.mode) mode = m.get();
      offered += std::string(offered.empty() ? "" : ", ") + nn::mode_name(m->model.plan.mode);
    }
    if (!mode)
      throw net::Error(ErrorCode::kModeUnavailable, std::string("this server does not offer ") +
                                                        nn::mode_name(hello.mode) + " mode (it offers " + offered + ")");
    ch.send(mode->info);
    log(prefix + "hello from '" + hello.client + "', " + nn::mode_name(hello.mode) + " mode");
    for (;;) {
      {
        std::lock_guard lk(m);
        if (stopping) throw net::Error(ErrorCode::kShuttingDown, "the server is shutting down");
      }
      const net::Frame f = ch.recv();
      if (f.type == static_cast<std::uint16_t>(MessageType::kBye)) break;
      try {
        handle(s, *mode, f, keys, prefix);
      } catch (const net::Error& e) {
        if (!recoverable(e.code())) throw;
        log(prefix + message_name(f.type) + " refused: " + e.what());
        ch.send(encode(ErrorMessage{e.code(), e.message()}));
      }
    }
    log(prefix + "bye (up " + human_bytes(ch.stats().bytes_received) + ", down " +
        human_bytes(ch.stats().bytes_sent) + ")");
  } catch (const net::Error& e) {
    log(prefix + "ended: " + e.what());
    if (e.code() != ErrorCode::kClosed) ch.send_final(encode(ErrorMessage{e.code(), e.message()}));
  } catch (const std::exception& e) {
    log(prefix + "ended: internal error: " + e.what());
    ch.send_final(encode(ErrorMessage{ErrorCode::kInternal, e.what()}));
  }
  keys.reset();
  {
    std::lock_guard lk(m);
    s.channel.reset();
    s.done = true;
  }
#if defined(__GLIBC__)
  // Hand the session's freed buffers (frames, ciphertexts) back to the OS, so the
  // server's footprint returns to its baseline between clients.
  malloc_trim(0);
#endif
}

void Server::State::handle(Session& s, const ModeState& mode, const net::Frame& f,
                           std::shared_ptr<const nn::EvaluationKeys>& keys, std::string& prefix) {
  net::Channel& ch = *s.channel;
  const std::size_t mode_index = &mode == modes[0].get() ? 0 : 1;
  const auto& plan = mode.model.plan;
  const auto& ctx = *mode.model.context;
  switch (static_cast<MessageType>(f.type)) {
    case MessageType::kKeyQuery: {
      const KeyQuery q = decode<KeyQuery>(f);
      auto found = cache.find(q.hash, mode_index);
      const bool hit = found != nullptr;
      if (hit) keys = std::move(found);
      ch.send(encode(KeyStatus{hit, q.hash}));
      log(prefix + "keys " + hex(q.hash, 8) + (hit ? " cached" : " not cached"));
      return;
    }
    case MessageType::kUploadKeys: {
      const auto t = Clock::now();
      const UploadKeys u = decode<UploadKeys>(f);
      const KeyHash h = hash_keys(u.relin, u.galois);
      auto found = cache.find(h, mode_index);
      if (!found) {
        nn::EvaluationKeys k;
        try {
          k.relin = rlwe::load_relin_keys(ctx, u.relin);
          k.galois = rlwe::load_galois_keys(ctx, u.galois);
        } catch (const std::exception& e) {
          throw net::Error(ErrorCode::kBadKeys, std::string("keys do not load for this model's parameters: ") + e.what());
        }
        if (k.relin.key.level < mode.relin_level)
          throw net::Error(ErrorCode::kBadKeys, "relinearisation key covers levels up to " +
                                                    std::to_string(k.relin.key.level) + ", the plan needs " +
                                                    std::to_string(mode.relin_level));
        // Exactly the plan's rotations: extra keys would only cost server memory.
        if (k.galois.keys.size() != plan.rotation_steps.size())
          throw net::Error(ErrorCode::kBadKeys, std::to_string(k.galois.keys.size()) + " rotation keys, the plan uses " +
                                                    std::to_string(plan.rotation_steps.size()));
        for (std::size_t i = 0; i < plan.rotation_steps.size(); ++i) {
          auto it = k.galois.keys.find(ctx.galois_element(plan.rotation_steps[i]));
          if (it == k.galois.keys.end() || it->second.level < plan.rotation_key_levels[i])
            throw net::Error(ErrorCode::kBadKeys, "no rotation key for step " + std::to_string(plan.rotation_steps[i]) +
                                                      " at level " + std::to_string(plan.rotation_key_levels[i]));
        }
        const std::uint64_t bytes = memory_bytes(k);
        found = cache.insert(h, mode_index, std::move(k), bytes);
      }
      keys = std::move(found);
      ch.send(encode(KeyStatus{true, h}));
      log(prefix + "keys " + hex(h, 8) + " uploaded (" + human_bytes(f.payload.size()) + ", " +
          std::to_string(seconds_since(t)).substr(0, 5) + " s)");
      return;
    }
    case MessageType::kInfer: {
      if (!keys)
        throw net::Error(ErrorCode::kNoKeys, "no evaluation keys in this session: upload them (or query a cached "
                                             "hash) before inference");
      Infer req = decode<Infer>(f);
      const std::size_t want = input_ciphertexts(mode.model.network, plan);
      const std::uint32_t max_batch = plan.mode == nn::Mode::kLatency ? 1 : static_cast<std::uint32_t>(plan.slots);
      if (req.images > max_batch)
        throw net::Error(ErrorCode::kBadCiphertexts, std::to_string(req.images) + " images in one request; the limit is " +
                                                         std::to_string(max_batch));
      if (req.ciphertexts.size() != want)
        throw net::Error(ErrorCode::kBadCiphertexts, "the model takes " + std::to_string(want) +
                                                         " input ciphertexts, got " +
                                                         std::to_string(req.ciphertexts.size()));
      const std::uint64_t up = f.payload.size();
      std::vector<ckks::Ciphertext> in(req.ciphertexts.size());
      for (std::size_t i = 0; i < in.size(); ++i) {
        try {
          in[i] = ckks::load_ciphertext(ctx, req.ciphertexts[i]);
        } catch (const std::exception& e) {
          throw net::Error(ErrorCode::kBadCiphertexts, "ciphertext " + std::to_string(i) + ": " + e.what());
        }
        Bytes().swap(req.ciphertexts[i]);
      }
      // Evaluate on the worker pool; this session's thread waits.
      const auto queued = Clock::now();
      double queue_s = 0, eval_s = 0;
      std::vector<ckks::Ciphertext> out;
      std::promise<void> done;
      auto fut = done.get_future();
      workers.submit([&] {
        try {
          queue_s = seconds_since(queued);
          const auto t = Clock::now();
          out = mode.evaluator->evaluate(std::move(in), *keys);
          eval_s = seconds_since(t);
          done.set_value();
        } catch (...) {
          done.set_exception(std::current_exception());
        }
      });
      try {
        fut.get();
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        throw net::Error(ErrorCode::kBadCiphertexts, std::string("evaluation refused the request: ") + e.what());
      }
      Result res;
      res.queue_seconds = queue_s;
      res.eval_seconds = eval_s;
      for (const auto& c : out) res.ciphertexts.push_back(ckks::save_ciphertext(ctx, c, true));
      out.clear();
      const net::Frame reply = encode(res);
      res.ciphertexts.clear();
      ch.send(reply);
      char line[160];
      std::snprintf(line, sizeof line, "infer %u image(s): up %s, down %s, queue %.3f s, eval %.3f s", req.images,
                    human_bytes(up).c_str(), human_bytes(reply.payload.size()).c_str(), queue_s, eval_s);
      log(prefix + line);
      return;
    }
    default:
      throw net::Error(ErrorCode::kUnexpectedMessage,
                       std::string("a client does not send ") + message_name(f.type) + " (type " + std::to_string(f.type) + ")");
  }
}

Server::Server(std::vector<ServedModel> models, ServerOptions options)
    : state_(std::make_unique<State>(std::move(options))) {
  VEIL_REQUIRE(!models.empty() && models.size() <= 2, "a server offers one or two modes");
  VEIL_REQUIRE(state_->opt.workers >= 1 && state_->opt.max_sessions >= 1, "need at least one worker and one session");
  std::uint64_t largest = 0;
  for (auto& m : models) {
    auto ms = std::make_unique<ModeState>();
    for (std::size_t k = 0; k < m.network.stages.size(); ++k)
      if (m.network.stages[k].kind == nn::Stage::Kind::kPoly)
        ms->relin_level = std::max(ms->relin_level, m.plan.stages[k].level_in);
    ms->evaluator = std::make_unique<nn::EncryptedNetwork>(m.network, m.plan, m.context);
    largest = std::max({largest, m.plan.relin_key_bytes + m.plan.galois_key_bytes, m.plan.input_bytes});
    ms->model = std::move(m);
    state_->modes.push_back(std::move(ms));
  }
  state_->max_frame = state_->opt.max_frame_bytes ? state_->opt.max_frame_bytes : 2 * largest + (1 << 20);
  for (auto& ms : state_->modes)
    ms->info = encode(make_server_info(ms->model.network, ms->model.plan, state_->max_frame));
}

Server::~Server() = default;

std::uint16_t Server::port() const { return state_->listener.port(); }
std::string Server::address() const { return state_->listener.address(); }
std::uint64_t Server::max_frame_bytes() const { return state_->max_frame; }

void Server::run() {
  State& s = *state_;
  s.listener.run([&](std::unique_ptr<net::Channel> ch) { s.accept(std::move(ch)); }, s.channel_options(),
                 {SIGINT, SIGTERM}, [&](int sig) {
                   s.log(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") +
                         ": refusing new requests, finishing those in flight");
                   s.begin_stop();
                 });
  s.begin_stop();  // stop() called directly, or the listener failed
  s.reap(true);
  s.log("stopped");
}

void Server::stop() { state_->begin_stop(); }

}  // namespace veil::protocol
