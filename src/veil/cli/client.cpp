// `veil client`: the client's side of private inference over TCP. It learns the model's
// public plan from the server, generates (or reuses) its keys, makes sure the server holds
// its evaluation keys, and sends encrypted images; the secret key, the images and the
// logits never leave this process. With --concurrency it is a load generator instead.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/cli/commands.hpp"
#include "veil/common/error.hpp"
#include "veil/common/file.hpp"
#include "veil/protocol/backoff.hpp"
#include "veil/protocol/hybrid/client.hpp"
#include "veil/protocol/ni/client.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::cli {

namespace {

namespace fs = std::filesystem;

struct ClientCliOptions {
  std::string server;
  std::vector<std::string> inputs;
  std::size_t index = 0;
  std::string keys;
  std::string mode = "latency";
  int repeat = 1;
  int top = 5;
  double timeout_s = 60;
  int concurrency = 0;
  double duration_s = 60;
};

// The client's view of the model, in the shape the other commands' helpers take.
Model to_model(const nn::PublicModel& pm) {
  Model m;
  m.network = pm.network;
  m.plan = pm.plan;
  m.context = pm.context;
  return m;
}

struct KeySet {
  rlwe::SecretKey secret;
  protocol::ni::Bytes relin, galois;  // serialised seed-compressed, as uploaded
  protocol::ni::Bytes ring;           // the smaller ring's keys (a plan with a ring switch)
  protocol::ni::KeyHash hash{};
};

// Keys from `dir` when they were made for these parameters and this plan's rotations;
// otherwise new ones (saved to `dir` when given).
KeySet obtain_keys(const Model& m, const std::string& dir) {
  KeySet k;
  const auto t = Clock::now();
  if (!dir.empty() && fs::exists(fs::path(dir) / "params.bin")) {
    try {
      k.secret = load_secret_key(dir, m);
      // Checks the parameters and that every planned rotation has a key; the server also
      // refuses keys it does not need (they would only cost its memory).
      const std::size_t held = load_evaluation_keys(dir, m).galois.keys.size();
      VEIL_REQUIRE(held == m.plan.galois_keys(),
                   "they hold " << held << " Galois keys, the plan uses " << m.plan.galois_keys());
      k.relin = veil::read_file((fs::path(dir) / "relin.key").string());
      k.galois = veil::read_file((fs::path(dir) / "galois.key").string());
      if (m.plan.small_params) k.ring = veil::read_file((fs::path(dir) / "ring-switch.key").string());
      k.hash = protocol::ni::hash_keys(k.relin, k.galois, k.ring);
      std::printf("keys: loaded from %s in %.2f s\n", dir.c_str(), seconds_since(t));
      return k;
    } catch (const std::exception& e) {
      std::printf("keys in %s do not fit this server's plan (%s); making new ones\n", dir.c_str(), e.what());
    }
  }
  rlwe::KeyGenerator keygen(m.context);
  const nn::EvaluationKeys keys = nn::make_evaluation_keys(m.plan, keygen);
  k.secret = keygen.secret_key();
  k.relin = rlwe::save_relin_keys(*m.context, keys.relin, true);
  k.galois = rlwe::save_galois_keys(*m.context, keys.galois, true);
  k.ring = nn::save_small_ring_keys(m.plan, keys);
  k.hash = protocol::ni::hash_keys(k.relin, k.galois, k.ring);
  std::printf("keys: generated in %.2f s (%zu rotation keys)", seconds_since(t),
              m.plan.rotation_steps.size());
  if (!dir.empty()) {
    save_keys(dir, m, k.secret, keys);
    std::printf(", saved to %s", dir.c_str());
  }
  std::printf("\n");
  return k;
}

// Sends the evaluation keys unless the server already holds them; returns bytes sent.
std::uint64_t ensure_keys(protocol::ni::Client& c, const KeySet& k, bool verbose) {
  const auto t = Clock::now();
  const auto before = c.stats().bytes_sent;
  if (c.query_keys(k.hash)) {
    if (verbose)
      std::printf("keys: the server already holds them (hash %s): nothing uploaded\n",
                  protocol::ni::hex(k.hash, 8).c_str());
  } else {
    c.upload_keys(k.relin, k.galois, k.ring);
    if (verbose)
      std::printf("keys: uploaded %s in %.2f s (hash %s)\n",
                  human_bytes(k.relin.size() + k.galois.size() + k.ring.size()).c_str(), seconds_since(t),
                  protocol::ni::hex(k.hash, 8).c_str());
  }
  return c.stats().bytes_sent - before;
}

// Encryption and decryption with the client's secret key, shared by threads (const).
struct Crypto {
  ckks::CkksEncoder encoder;
  ckks::Encryptor encryptor;
  nn::ResultRing result;  // decrypts in the ring results come in
  Crypto(const Model& m, const rlwe::SecretKey& sk)
      : encoder(m.context), encryptor(m.context, sk), result(m.plan, m.context, sk) {}
};

struct Outcome {
  std::vector<std::vector<double>> logits;
  std::size_t ciphertexts = 0;
  double encrypt_s = 0, round_trip_s = 0, queue_s = 0, eval_s = 0, decrypt_s = 0, total_s = 0;
  std::uint64_t up = 0, down = 0;
};

Outcome request(protocol::ni::Client& c, const Model& m, const Crypto& cr,
                const std::vector<const Input*>& batch, bool announce) {
  Outcome o;
  const auto t0 = Clock::now();
  std::vector<std::vector<double>> values;
  for (const Input* in : batch) values.push_back(in->values);
  const auto cts = nn::encrypt_inputs(m.plan, cr.encoder, cr.encryptor, values);
  o.encrypt_s = seconds_since(t0);
  o.ciphertexts = cts.size();
  const auto sent = c.stats().bytes_sent, received = c.stats().bytes_received;
  if (announce) {
    std::printf("request: %zu image(s), %zu ciphertext(s) sent\n", batch.size(), cts.size());
    std::fflush(stdout);
  }
  const auto t1 = Clock::now();
  auto reply = c.infer(cts, batch.size());
  o.round_trip_s = seconds_since(t1);
  o.up = c.stats().bytes_sent - sent;
  o.down = c.stats().bytes_received - received;
  o.queue_s = reply.queue_seconds;
  o.eval_s = reply.eval_seconds;
  const auto t2 = Clock::now();
  o.logits = nn::decrypt_outputs(m.plan, cr.result, reply.outputs, batch.size());
  o.decrypt_s = seconds_since(t2);
  o.total_s = seconds_since(t0);
  return o;
}

// Batches the inputs: one image per request (latency), or up to max_batch (throughput).
std::vector<std::vector<const Input*>> batches(const std::vector<Input>& inputs, std::size_t max_batch) {
  std::vector<std::vector<const Input*>> out;
  for (std::size_t i = 0; i < inputs.size(); i += max_batch) {
    out.emplace_back();
    for (std::size_t j = i; j < std::min(inputs.size(), i + max_batch); ++j) out.back().push_back(&inputs[j]);
  }
  return out;
}

constexpr char kClientName[] = "veil client";

std::unique_ptr<net::Channel> connect(const std::string& host, std::uint16_t port,
                                      const ClientCliOptions& o) {
  protocol::ni::ClientOptions co;
  co.timeout_s = o.timeout_s;
  return protocol::ni::connect(host, port, co);
}

double percentile(std::vector<double> v, double p) {  // nearest rank
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t rank = static_cast<std::size_t>(std::ceil(p / 100.0 * v.size()));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

void run_load(const ClientCliOptions& o, const std::string& host, std::uint16_t port, const Model& m,
              const KeySet& keys, const Crypto& cr, const std::vector<Input>& inputs);

// The hybrid protocol: keys once, then per input a preprocessing run (input-independent;
// it could run ahead of time) and the online stage. The client never receives a weight.
void run_hybrid_client(const ClientCliOptions& o, const std::string& host, std::uint16_t port) {
  VEIL_REQUIRE(o.concurrency == 0, "--concurrency (load test) is offered for latency and throughput modes");
  auto t = Clock::now();
  protocol::hybrid::Client client(connect(host, port, o), kClientName);
  const auto& info = client.info();
  const auto& prog = client.program();
  std::printf("server %s: model %s (%s), hybrid mode, %zu ops, %d online rounds; connected in %.3f s\n",
              o.server.c_str(), info.model.c_str(), info.dataset.c_str(), prog.ops.size(),
              hybrid::cost(prog).rounds, seconds_since(t));
  client.send_keys();
  // A network with the public input geometry and classes, for reading and printing inputs.
  Model shown;
  shown.network.name = info.model;
  shown.network.input = info.input;
  shown.network.mean = info.mean;
  shown.network.std = info.std;
  shown.network.classes = info.classes;
  std::vector<Input> inputs;
  for (const auto& path : o.inputs) inputs.push_back(load_input(shown.network, path, o.index));
  for (int rep = 0; rep < o.repeat; ++rep) {
    for (const Input& in : inputs) {
      const auto before = client.stats();
      client.preprocess();
      const auto logits = client.infer(in.values);
      const auto& st = client.stats();
      std::printf("\n%s%s\n", in.label.c_str(),
                  in.true_class >= 0 ? (" (label " + std::to_string(in.true_class) + ")").c_str() : "");
      print_result(shown, logits, o.top);
      std::printf("time: preprocessing %.3f s + online %.4f s\n",
                  st.preprocess.seconds - before.preprocess.seconds,
                  st.online.seconds - before.online.seconds);
      std::printf("bytes: preprocessing up %s, down %s; online up %s, down %s, %llu rounds\n",
                  human_bytes(st.preprocess.bytes_sent - before.preprocess.bytes_sent).c_str(),
                  human_bytes(st.preprocess.bytes_received - before.preprocess.bytes_received).c_str(),
                  human_bytes(st.online.bytes_sent - before.online.bytes_sent).c_str(),
                  human_bytes(st.online.bytes_received - before.online.bytes_received).c_str(),
                  static_cast<unsigned long long>(st.online.rounds - before.online.rounds));
    }
  }
  client.bye();
  const auto& st = client.stats();
  std::printf(
      "\nsession: keys up %s; in all up %s, down %s\n", human_bytes(st.keys.bytes_sent).c_str(),
      human_bytes(st.keys.bytes_sent + st.preprocess.bytes_sent + st.online.bytes_sent).c_str(),
      human_bytes(st.keys.bytes_received + st.preprocess.bytes_received + st.online.bytes_received).c_str());
}

void run_client(ClientCliOptions& o) {
  const auto [host, port] = protocol::ni::parse_address(o.server);
  if (o.mode == "hybrid") return run_hybrid_client(o, host, port);
  const nn::Mode mode = nn::parse_mode(o.mode);
  auto t = Clock::now();
  protocol::ni::Client client(connect(host, port, o), mode, kClientName);
  const double t_connect = seconds_since(t);
  const Model m = to_model(client.model());
  const auto& plan = m.plan;
  std::printf(
      "server %s: model %s (%s), %s mode, N = 2^%d, %zu slots, %zu rotation keys, up to %u image(s) per "
      "request; connected in %.3f s\n",
      o.server.c_str(), m.network.name.c_str(), m.network.dataset.c_str(), nn::mode_name(plan.mode),
      plan.params.log_n, plan.slots, plan.rotation_steps.size(), client.info().max_batch, t_connect);

  const KeySet keys = obtain_keys(m, o.keys);
  const std::uint64_t key_up = ensure_keys(client, keys, true);
  const Crypto cr(m, keys.secret);

  std::vector<Input> inputs;
  for (const auto& path : o.inputs) inputs.push_back(load_input(m.network, path, o.index));

  if (o.concurrency > 0) {
    client.bye();
    run_load(o, host, port, m, keys, cr, inputs);
    return;
  }

  std::uint64_t req_up = 0, req_down = 0;
  int requests = 0;
  for (int rep = 0; rep < o.repeat; ++rep) {
    for (const auto& batch : batches(inputs, client.info().max_batch)) {
      const Outcome r = request(client, m, cr, batch, true);
      ++requests;
      req_up += r.up;
      req_down += r.down;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const Input& in = *batch[i];
        std::printf("\n%s%s\n", in.label.c_str(),
                    in.true_class >= 0 ? (" (label " + std::to_string(in.true_class) + ")").c_str() : "");
        print_result(m, r.logits[i], o.top);
      }
      std::printf(
          "time: encrypt %.3f s, round trip %.3f s (server queue %.3f s + evaluation %.3f s), decrypt %.3f "
          "s%s\n",
          r.encrypt_s, r.round_trip_s, r.queue_s, r.eval_s, r.decrypt_s,
          batch.size() > 1 ? (" for " + std::to_string(batch.size()) + " images").c_str() : "");
      std::printf("bytes: up %s (%zu ciphertexts), down %s\n", human_bytes(r.up).c_str(), r.ciphertexts,
                  human_bytes(r.down).c_str());
    }
  }
  client.bye();
  const auto& st = client.stats();
  std::printf(
      "\nsession: keys up %s; %d request(s) up %s, down %s; in all up %s, down %s, %llu round trips\n",
      human_bytes(key_up).c_str(), requests, human_bytes(req_up).c_str(), human_bytes(req_down).c_str(),
      human_bytes(st.bytes_sent).c_str(), human_bytes(st.bytes_received).c_str(),
      static_cast<unsigned long long>(st.rounds));
}

void run_load(const ClientCliOptions& o, const std::string& host, std::uint16_t port, const Model& m,
              const KeySet& keys, const Crypto& cr, const std::vector<Input>& inputs) {
  // Reference answers: the first encrypted answer for each image (the client has no
  // model to compute the plaintext class), checked against the true label when known.
  std::vector<int> reference(inputs.size());
  {
    protocol::ni::Client c(connect(host, port, o), m.plan.mode, kClientName);
    ensure_keys(c, keys, false);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      reference[i] = argmax(request(c, m, cr, {&inputs[i]}, false).logits[0]);
      std::printf("reference: %s -> class %d%s\n", inputs[i].label.c_str(), reference[i],
                  inputs[i].true_class >= 0 && inputs[i].true_class != reference[i]
                      ? " (differs from the label)"
                      : "");
    }
    c.bye();
  }
  std::mutex mu;
  std::vector<double> latencies, evals;
  std::size_t errors = 0, wrong = 0;
  std::string first_error;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(static_cast<std::int64_t>(o.duration_s * 1000));
  std::vector<std::thread> threads;
  std::atomic<bool> fatal{false};  // an error no retry can fix: every session stops
  std::size_t attempts = 0;        // connections and requests tried, for the summary
  for (int t = 0; t < o.concurrency; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<protocol::ni::Client> c;
      // After a failure, wait (exponential back-off, capped) before reconnecting: a server
      // that went away or is busy must not see a busy loop of connection attempts.
      protocol::Backoff backoff(0.05, 2.0, static_cast<std::uint64_t>(t) + 1);
      for (std::size_t k = 0; Clock::now() < deadline && !fatal; ++k) {
        const std::size_t i = (t + k) % inputs.size();
        try {
          {
            std::lock_guard lk(mu);
            ++attempts;
          }
          if (!c) {
            c = std::make_unique<protocol::ni::Client>(connect(host, port, o), m.plan.mode, kClientName);
            ensure_keys(*c, keys, false);
          }
          const Outcome r = request(*c, m, cr, {&inputs[i]}, false);
          backoff.reset();
          std::lock_guard lk(mu);
          latencies.push_back(r.total_s);
          evals.push_back(r.eval_s);
          if (argmax(r.logits[0]) != reference[i]) ++wrong;
        } catch (const std::exception& e) {
          {
            std::lock_guard lk(mu);
            if (errors++ == 0) first_error = e.what();
          }
          c.reset();  // reconnect for the next request
          if (!protocol::retryable(e)) {
            fatal = true;
            break;
          }
          const auto wait =
              std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff.next()));
          std::this_thread::sleep_until(std::min(deadline, Clock::now() + wait));
        }
      }
      if (c) c->bye();
    });
  }
  for (auto& th : threads) th.join();
  const double wall = seconds_since(start);
  double eval_sum = 0;
  for (double e : evals) eval_sum += e;
  std::printf(
      "load: %d clients for %.1f s: %zu requests, %.2f requests/s, latency p50 %.3f s, p90 %.3f s, p99 %.3f "
      "s "
      "(encrypt + round trip + decrypt; mean server evaluation %.3f s); %zu wrong, %zu errors in %zu "
      "attempts%s\n",
      o.concurrency, wall, latencies.size(), latencies.size() / wall, percentile(latencies, 50),
      percentile(latencies, 90), percentile(latencies, 99), evals.empty() ? 0.0 : eval_sum / evals.size(),
      wrong, errors, attempts, fatal ? " (stopped on a fatal error)" : "");
  if (errors) std::printf("first error: %s\n", first_error.c_str());
  VEIL_REQUIRE(wrong == 0 && errors == 0 && !latencies.empty(),
               "load test failed: " << wrong << " wrong answers, " << errors << " errors");
}

}  // namespace

void register_client(CLI::App& app) {
  auto o = std::make_shared<ClientCliOptions>();
  auto* cmd =
      app.add_subcommand("client", "client: private inference on a veil server (keys and images stay here)");
  cmd->add_option("--server,-s", o->server, "server address HOST:PORT")->required();
  cmd->add_option("--input,-i", o->inputs, "images (PNG/JPEG/PPM) or IDX / CIFAR-10 binary files")
      ->required()
      ->check(CLI::ExistingFile);  // before minutes of set-up, not after
  cmd->add_option("--index", o->index, "record number in IDX / CIFAR-10 files (default 0)");
  cmd->add_option(
      "--keys,-k", o->keys,
      "key directory: reused when it holds keys for the server's plan, else written (default: none, "
      "fresh keys every run)");
  cmd->add_option("--mode", o->mode,
                  "latency (one image per request), throughput (all inputs in one batch), or hybrid\n"
                  "(preprocessing + online stage on secret shares; the model stays on the server)")
      ->check(CLI::IsMember(mode_names()));
  cmd->add_option("--repeat", o->repeat, "send the inputs this many times in the session (default 1)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--top", o->top, "how many scores to print (default 5)")->check(CLI::Range(1, 1000));
  cmd->add_option("--timeout-s", o->timeout_s, "connect / no-progress timeout in seconds (default 60)")
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_option(
         "--concurrency", o->concurrency,
         "load test: this many concurrent sessions sending the inputs for --duration seconds, every answer "
         "checked against the first")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--duration", o->duration_s, "load test length in seconds (default 60)")
      ->check(CLI::Range(0.1, 1e6));
  cmd->callback([o] { run_client(*o); });
}

}  // namespace veil::cli
