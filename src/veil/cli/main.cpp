// veil: private CNN inference (CKKS, or HE + secret sharing). See `veil --help` and README.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "veil/cli/commands.hpp"
#include "veil/cli/plan_cache.hpp"
#include "veil/cli/session.hpp"
#include "veil/common/memory.hpp"
#include "veil/common/thread_pool.hpp"

int main(int argc, char** argv) {
  // Before any thread or ciphertext exists: the allocator policy is the program's choice.
  veil::use_huge_pages(argv);  // re-executes once with glibc's huge-page tunable
  veil::configure_memory_for_he();
  CLI::App app{
      "veil: private neural-network inference. The server never sees the client's image.\n"
      "Two modes (--mode):\n"
      "  latency, throughput  non-interactive (CKKS): the client encrypts the image, the server\n"
      "                       evaluates every layer on the ciphertext, only the client decrypts\n"
      "                       the logits; one image per request or one per slot.\n"
      "  hybrid               HE + secret sharing (Delphi-style): input-independent preprocessing\n"
      "                       under an exact scheme, then an online phase on additive shares;\n"
      "                       the client never sees the weights either.\n\n"
      "Quick start:  veil infer --model models/mnist-cryptonets.onnx --input "
      "models/samples/mnist-0-label7.png\n"
      "Hybrid:       veil infer --model models/mnist-delphi.onnx --mode hybrid --input "
      "models/samples/mnist-0-label7.png\n"
      "Whole test set: veil eval --model models/mnist-cryptonets.onnx --mode throughput\n"
      "Each command explains itself: veil <command> --help"};
  app.require_subcommand(1);
  int threads = 0;
  app.fallthrough();  // global options may follow the subcommand
  app.add_option("--threads", threads, "worker threads (default: VEIL_THREADS or all cores)")
      ->check(CLI::Range(1, 256))
      ->trigger_on_parse()
      ->each([](const std::string& t) { veil::set_num_threads(std::stoi(t)); });
  app.add_option("--plaintext-cache-gib",
                 "memory for the model's encoded weights in latency mode: ready to use (NTT form)\n"
                 "where the budget allows, else as compact coefficients transformed at each use\n"
                 "(an NTT per limb), else encoded again on every image; in hybrid mode, the\n"
                 "server's kernel blocks, ready or made at each use (`veil plan --mode hybrid`\n"
                 "prints what all ready takes) (default:\n"
                 "VEIL_PLAINTEXT_CACHE_GIB, else half the machine's memory and at most a third of\n"
                 "what is free, two thirds in hybrid mode). cifar10-shallow: 3.6 all ready\n"
                 "(1.75-2.15 s an image), 1.9 (2.6-2.9 s, 4.0 GiB peak in a server with a\n"
                 "session), 0.8 (3.2 s)")
      ->check(CLI::Range(0.0, 1048576.0))
      ->trigger_on_parse()
      ->each([](const std::string& g) { veil::cli::set_plaintext_cache_gib(std::stod(g)); });
  app.add_option("--plan-cache",
                 "directory where a latency-mode plan and the hybrid mode's fixed-point choices are\n"
                 "kept, so that the next start on the same model, options, CPU and veil binary skips\n"
                 "the layout search (cifar10-shallow: 1.6 s of set-up) and the hybrid calibration\n"
                 "(~15 s); off: plan afresh every time (default: VEIL_PLAN_CACHE, else\n"
                 "$XDG_CACHE_HOME/veil/plans or ~/.cache/veil/plans)")
      ->trigger_on_parse()
      ->each([](const std::string& d) { veil::cli::set_plan_cache_dir(d); });
  veil::cli::register_plan(app);
  veil::cli::register_key_commands(app);
  veil::cli::register_infer(app);
  veil::cli::register_eval(app);
  veil::cli::register_serve(app);
  veil::cli::register_client(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    // Subcommand callbacks run inside parse(): their errors land here.
    std::fprintf(stderr, "veil: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
