// `veil infer`: key generation, encryption, encrypted evaluation and decryption in one
// process, with the time of each step and stage and the bytes that would travel.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/cli/commands.hpp"
#include "veil/common/file.hpp"
#include "veil/common/memory.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/nn/plain_eval.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::cli {

namespace {

struct InferOptions {
  ModelOptions model;
  std::string mode = "latency";
  std::vector<std::string> inputs;
  std::size_t index = 0;
  int top = 5;
  bool stages = false;
};

void run_infer(InferOptions& o) {
  auto t = Clock::now();
  Model m = open_model(o.model, o.mode);
  const double t_plan = seconds_since(t);
  const auto& plan = m.plan;
  std::printf(
      "model %s: %s mode, N = 2^%d, depth %d, log2(QP) %.0f (128-bit bound %d), %d threads, plan %.2f s%s\n",
      m.network.name.c_str(), nn::mode_name(plan.mode), plan.params.log_n, plan.depth, plan.params.log_qp(),
      rlwe::max_log_qp_128(plan.params.log_n).value_or(0), num_threads(), t_plan,
      m.plan_kept ? " (kept from an earlier run)" : "");

  t = Clock::now();
  rlwe::KeyGenerator keygen(m.context);
  const nn::EvaluationKeys keys = nn::make_evaluation_keys(plan, keygen);
  const double t_keys = seconds_since(t);
  const std::uint64_t key_bytes = nn::evaluation_key_bytes(plan, *m.context, keys);
  std::printf(
      "keys: %.2f s, evaluation keys %s (relinearisation + %zu rotations%s), sent once per session, %s in "
      "memory\n",
      t_keys, human_bytes(key_bytes).c_str(), plan.rotation_steps.size() + plan.small_rotation_steps.size(),
      plan.small_params ? ", both rings, + ring switch" : "", human_bytes(keys.memory_bytes()).c_str());
  if (plan.small_params)
    std::printf("ring switch after stage %d: the last stages run at N = 2^%d\n", plan.switch_after() + 1,
                plan.small_params->log_n);

  t = Clock::now();
  nn::EncryptedNetwork server(m.network, plan, m.context, plaintext_cache_bytes());
  const ResidentMemory mem = resident_memory();  // client and server together, in this command
  std::printf("server setup (plaintext weights encoded): %.2f s, %s; process resident %s (peak %s)\n",
              seconds_since(t), describe_weight_forms(server.weight_forms()).c_str(),
              human_bytes(mem.now).c_str(), human_bytes(mem.peak).c_str());

  ckks::CkksEncoder encoder(m.context);
  ckks::Encryptor encryptor(m.context, keygen.secret_key());
  const nn::ResultRing result(plan, m.context, keygen.secret_key());

  std::vector<Input> inputs;
  for (const auto& path : o.inputs) inputs.push_back(load_input(m.network, path, o.index));
  // Latency mode: one image per evaluation. Throughput: one batch.
  const std::size_t per_batch = plan.packing_mode().batch_size(plan);
  for (std::size_t first = 0; first < inputs.size(); first += per_batch) {
    const std::size_t count = std::min(per_batch, inputs.size() - first);
    std::vector<std::vector<double>> batch;
    for (std::size_t i = 0; i < count; ++i) batch.push_back(inputs[first + i].values);
    const auto t0 = Clock::now();
    auto cts = nn::encrypt_inputs(plan, encoder, encryptor, batch);
    const double t_enc = seconds_since(t0);
    const std::size_t upload = wire_bytes(*m.context, cts), uploaded_cts = cts.size();
    std::vector<double> stage_seconds;
    const auto t1 = Clock::now();
    const auto out = server.evaluate(std::move(cts), keys, &stage_seconds);
    const double t_eval = seconds_since(t1);
    const auto t2 = Clock::now();
    const auto logits = nn::decrypt_outputs(plan, result, out, count);
    const double t_dec = seconds_since(t2);
    for (std::size_t i = 0; i < count; ++i) {
      const Input& in = inputs[first + i];
      const auto plain = nn::evaluate(m.network, in.values);
      double err = 0;
      for (std::size_t k = 0; k < plain.size(); ++k) err = std::max(err, std::abs(plain[k] - logits[i][k]));
      std::printf("\n%s%s\n", in.label.c_str(),
                  in.true_class >= 0 ? (" (label " + std::to_string(in.true_class) + ")").c_str() : "");
      print_result(m, logits[i], o.top);
      std::printf("plaintext model: class %d, max |encrypted - plaintext| logit %.2e\n", argmax(plain), err);
      std::fflush(stdout);
      require_agreement(m, server, keys, keygen.secret_key(), in.values, plain, logits[i]);
    }
    std::printf("time: encrypt %.3f s + evaluate %.3f s + decrypt %.3f s = %.3f s%s\n", t_enc, t_eval, t_dec,
                t_enc + t_eval + t_dec,
                count > 1 ? (" for " + std::to_string(count) + " images").c_str() : "");
    std::printf("bytes: upload %s (%zu ciphertexts, seed-compressed), download %s\n",
                human_bytes(upload).c_str(), uploaded_cts,
                human_bytes(wire_bytes(*result.context, out)).c_str());
    if (o.stages) {
      std::printf("stages:\n");
      for (std::size_t k = 0; k < stage_seconds.size(); ++k)
        std::printf("  %-48s level %2d -> %2d  %8.3f s\n", plan.stages[k].name.substr(0, 48).c_str(),
                    plan.stages[k].level_in, plan.stages[k].level_out, stage_seconds[k]);
    }
  }
}

}  // namespace

void register_infer(CLI::App& app) {
  auto o = std::make_shared<InferOptions>();
  auto* cmd = app.add_subcommand(
      "infer", "both parties in one process: keygen, encrypt, evaluate, decrypt (hybrid: both stages)");
  add_model_options(*cmd, o->model, o->mode);
  cmd->add_option("--input,-i", o->inputs, "images (PNG/JPEG/PPM) or IDX / CIFAR-10 binary files")
      ->required()
      ->check(CLI::ExistingFile);  // before minutes of set-up, not after
  cmd->add_option("--index", o->index, "record number in IDX / CIFAR-10 files (default 0)");
  cmd->add_option("--top", o->top, "how many scores to print (default 5)")->check(CLI::Range(1, 1000));
  cmd->add_flag("--stages", o->stages, "print the time of every stage");
  cmd->callback([o] {
    if (o->mode == "hybrid") return run_hybrid_infer(o->model, o->inputs, o->index, o->top);
    run_infer(*o);
  });
}

}  // namespace veil::cli
