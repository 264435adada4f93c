// `veil serve`: the model on a server, planned once per mode, answering encrypted
// requests from many clients over TCP (protocol in docs/protocol.md).
#include <cstdio>

#include "veil/cli/commands.hpp"
#include "veil/common/error.hpp"
#include "veil/common/memory.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/protocol/host.hpp"
#include "veil/protocol/hybrid/handler.hpp"
#include "veil/protocol/ni/handler.hpp"

namespace veil::cli {

namespace {

struct ServeOptions {
  ModelOptions model;
  std::string mode_unused;  // add_model_options' --mode; serve takes --modes
  std::vector<std::string> modes = mode_names();
  protocol::hybrid::HandlerOptions hybrid;
  protocol::HostOptions server;
  int workers = 2;  // evaluations at once: veil::set_max_jobs
};

void run_serve(ServeOptions& o) {
  const auto start = Clock::now();  // set-up in all: planning every mode, then the weights
  std::vector<protocol::ni::ServedModel> served;
  std::unique_ptr<protocol::Handler> hybrid_handler;
  std::string name;
  for (const auto& mode : o.modes) {
    if (mode != "hybrid") continue;
    const auto t = Clock::now();
    HybridModel m = load_hybrid_model(o.model);
    m.network.drop_linear_weights();  // the server's kernel blocks take their memory
    release_free_memory();
    auto model = std::make_shared<const hybrid::ServerModel>(m.program, hybrid::he_parameters(*m.program),
                                                             hybrid_cache_bytes());
    const hybrid::ProgramCost c = hybrid::cost(*m.program);
    std::printf(
        "hybrid mode: %d online rounds, %lld squares, weights prepared for preprocessing %s, ready in %.2f "
        "s%s\n",
        c.rounds, static_cast<long long>(c.squares), describe_hybrid_weights(*model).c_str(),
        seconds_since(t), m.program_kept ? " (scales kept from an earlier start)" : "");
    o.hybrid.dataset = m.network.dataset;
    name = m.network.name;
    hybrid_handler = std::make_unique<protocol::hybrid::Handler>(std::move(model), o.hybrid);
  }
  for (const auto& mode : o.modes) {
    if (mode == "hybrid") continue;
    const auto t = Clock::now();
    try {
      Model m = open_model(o.model, mode);
      std::printf("%s mode: N = 2^%d, %zu slots, depth %d, keys %s, request %s, planned in %.2f s%s\n",
                  mode.c_str(), m.plan.params.log_n, m.plan.slots, m.plan.depth,
                  human_bytes(m.plan.relin_key_bytes + m.plan.galois_key_bytes).c_str(),
                  human_bytes(m.plan.input_bytes).c_str(), seconds_since(t),
                  m.plan_kept ? " (kept from an earlier start)" : "");
      served.push_back(
          {std::move(m.network), std::move(m.plan), std::move(m.context), plaintext_cache_bytes()});
    } catch (const std::invalid_argument& e) {
      // A model too deep for one mode may still be served in the other.
      std::printf("%s mode skipped: %s\n", mode.c_str(), e.what());
    }
  }
  VEIL_REQUIRE(!served.empty() || hybrid_handler, "no mode of this model could be planned");
  if (!served.empty()) name = served[0].network.name;
  const auto t = Clock::now();
  set_max_jobs(o.workers);
  std::vector<std::unique_ptr<protocol::Handler>> handlers;
  if (!served.empty()) {
    auto ni = std::make_unique<protocol::ni::Handler>(std::move(served));
    const nn::WeightForms forms = ni->weight_forms();
    if (forms.all_ntt_bytes > 0)
      std::printf("latency mode weights: %s\n", describe_weight_forms(forms).c_str());
    handlers.push_back(std::move(ni));
  }
  if (hybrid_handler) handlers.push_back(std::move(hybrid_handler));
  protocol::Host server(std::move(handlers), o.server);
  const auto& limits = o.server.limits;
  // What the server holds before its first session (weights, plans, the pre-faulted heap);
  // each session adds its evaluation keys, up to --max-key-cache-bytes in all.
  const ResidentMemory mem = resident_memory();
  std::printf(
      "model %s ready in %.2f s (set-up %.2f s in all), resident %s (peak %s); %d worker(s) x %d threads, "
      "max "
      "%zu sessions (%zu per address), key cache %s, "
      "max frame %s, timeout %.0f s (idle %.0f s, hello %.0f s, min rate %s/s), shutdown grace %.0f s\n",
      name.c_str(), seconds_since(t), seconds_since(start), human_bytes(mem.now).c_str(),
      human_bytes(mem.peak).c_str(), max_jobs(), num_threads(), limits.max_sessions,
      limits.max_sessions_per_address, human_bytes(o.server.max_key_cache_bytes).c_str(),
      human_bytes(server.max_frame_bytes()).c_str(), limits.timeout_s, limits.idle_timeout_s,
      limits.hello_timeout_s, human_bytes(limits.min_bytes_per_s).c_str(), limits.shutdown_grace_s);
  // Tests start the server with --port 0 and read the port from this line.
  std::printf("listening on %s\n", server.address().c_str());
  std::fflush(stdout);
  server.run();
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd =
      app.add_subcommand("serve", "server: evaluate the model on encrypted requests from clients over TCP");
  add_model_options(*cmd, o->model, o->mode_unused);
  cmd->remove_option(cmd->get_option("--mode"));
  auto& s = o->server;
  cmd->add_option("--modes", o->modes,
                  "modes to offer, comma-separated (default latency,throughput,hybrid; a mode the model\n"
                  "does not fit is skipped)")
      ->delimiter(',')
      ->check(CLI::IsMember(mode_names()));
  cmd->add_option("--max-materials", o->hybrid.max_materials,
                  "hybrid mode: unused preprocessing runs kept per session (default 8)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--max-material-age-s", o->hybrid.max_material_age_s,
                  "hybrid mode: seconds a preprocessing run may wait for its input (default 3600)")
      ->check(CLI::Range(1.0, 7.0 * 86400));
  cmd->add_option("--host", s.host, "address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)");
  cmd->add_option("--port,-p", s.port, "TCP port (default 7470; 0: any free port)");
  cmd->add_option("--workers", o->workers, "evaluations run at once (default 2); each uses --threads threads")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--max-sessions", s.limits.max_sessions,
                  "connections served at once; more are told the server is busy "
                  "(default 16)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--max-key-cache-bytes", s.max_key_cache_bytes,
                  "evaluation keys held in memory, all sessions together (default 4 GiB)");
  cmd->add_option("--max-frame-bytes", s.limits.max_frame_bytes,
                  "largest message accepted (default: twice the largest the plans need, + 1 MiB)");
  cmd->add_option("--timeout-s", s.limits.timeout_s,
                  "seconds without progress within a message, reading or writing "
                  "(default 30)")
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_option("--idle-timeout-s", s.limits.idle_timeout_s,
                  "seconds a session may wait between messages (default 300)")
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_option("--hello-timeout-s", s.limits.hello_timeout_s,
                  "seconds a new connection may take to send all of its first message (default 10)")
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_option("--max-sessions-per-address", s.limits.max_sessions_per_address,
                  "sessions from one client address at once (default 4)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--min-rate", s.limits.min_bytes_per_s,
                  "bytes per second a message must average once --timeout-s has passed since its first "
                  "byte; slower senders are dropped (default 16384; 0: no minimum)");
  cmd->add_option("--max-inflight-bytes", s.limits.max_inflight_bytes,
                  "bytes of messages being received or handled, all sessions together; more are told the "
                  "server is busy (default: the larger of 1 GiB and the largest message)");
  cmd->add_option("--shutdown-grace-s", s.limits.shutdown_grace_s,
                  "on SIGINT/SIGTERM, seconds to let sessions finish before closing them (default 5)")
      ->check(CLI::Range(0.0, 86400.0));
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace veil::cli
