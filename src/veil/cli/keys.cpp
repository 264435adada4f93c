// The four steps of non-interactive inference as separate commands, with files between
// them: keygen and encrypt and decrypt run on the client, run on the server (which reads
// only params.bin, relin.key and galois.key, never secret.key).
#include <chrono>
#include <cstdio>
#include <iostream>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/cli/commands.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::cli {

namespace {

struct Common {
  ModelOptions model;
  std::string mode = "latency";
  std::string keys = "veil-keys";
};

CLI::App* add_common(CLI::App& app, const char* name, const char* help, Common& c) {
  auto* cmd = app.add_subcommand(name, help);
  add_model_options(*cmd, c.model, c.mode);
  cmd->add_option("--keys,-k", c.keys, "key directory (default: veil-keys)");
  return cmd;
}

}  // namespace

void print_result(const Model& m, const std::vector<double>& logits, int top) {
  print_result(m.network.classes, logits, top);
}

void print_result(const std::vector<std::string>& classes, const std::vector<double>& logits, int top) {
  auto name = [&](int k) { return k < static_cast<int>(classes.size()) ? classes[k] : std::to_string(k); };
  const int best = argmax(logits);
  std::printf("class: %d (%s)\n", best, name(best).c_str());
  std::printf("top-%d:", top);
  for (int k : top_k(logits, top)) std::printf("  %s %.3f", name(k).c_str(), logits[k]);
  std::printf("\n");
}

void register_key_commands(CLI::App& app) {
  auto kg = std::make_shared<Common>();
  add_common(app, "keygen", "client: make a secret key and the evaluation keys the model's plan needs", *kg)
      ->callback([kg] {
        const auto t = std::chrono::steady_clock::now();
        Model m = open_model(kg->model, kg->mode);
        rlwe::KeyGenerator keygen(m.context);
        const nn::EvaluationKeys keys = nn::make_evaluation_keys(m.plan, keygen);
        std::uint64_t bytes = 0;
        save_keys(kg->keys, m, keygen.secret_key(), keys, &bytes);
        std::printf("keys for %s (%s mode) in %s: evaluation keys %s (%zu rotations), %.2f s\n",
                    m.network.name.c_str(), nn::mode_name(m.plan.mode), kg->keys.c_str(),
                    human_bytes(bytes).c_str(),
                    m.plan.rotation_steps.size() + m.plan.small_rotation_steps.size(), seconds_since(t));
        std::printf("give the server %s/params.bin, relin.key%s and galois.key; secret.key stays here\n",
                    kg->keys.c_str(), m.plan.small_params ? ", ring-switch.key" : "");
      });

  auto en = std::make_shared<Common>();
  auto en_inputs = std::make_shared<std::vector<std::string>>();
  auto en_index = std::make_shared<std::size_t>(0);
  auto en_out = std::make_shared<std::string>("input.ct");
  auto* enc = add_common(app, "encrypt", "client: encrypt an image (or, in throughput mode, several)", *en);
  enc->add_option("--input,-i", *en_inputs, "image (PNG/JPEG/PPM) or IDX / CIFAR-10 binary file")
      ->required()
      ->check(CLI::ExistingFile);
  enc->add_option("--index", *en_index, "record number in an IDX or CIFAR-10 file (default 0)");
  enc->add_option("--out,-o", *en_out, "ciphertext file to write (default input.ct)");
  enc->callback([en, en_inputs, en_index, en_out] {
    Model m = open_model(en->model, en->mode);
    const rlwe::SecretKey sk = load_secret_key(en->keys, m);
    ckks::CkksEncoder encoder(m.context);
    ckks::Encryptor encryptor(m.context, sk);
    std::vector<std::vector<double>> inputs;
    for (const auto& path : *en_inputs) inputs.push_back(load_input(m.network, path, *en_index).values);
    const auto cts = nn::encrypt_inputs(m.plan, encoder, encryptor, inputs);
    const auto bytes = save_ciphertexts(*en_out, *m.context, cts);
    std::printf("%zu ciphertext(s), %s, written to %s\n", cts.size(), human_bytes(bytes).c_str(),
                en_out->c_str());
  });

  auto rn = std::make_shared<Common>();
  auto rn_in = std::make_shared<std::string>("input.ct");
  auto rn_out = std::make_shared<std::string>("result.ct");
  auto* run =
      add_common(app, "run", "server: evaluate the model on a ciphertext file (no secret key needed)", *rn);
  run->add_option("--in", *rn_in, "ciphertext file from veil encrypt")->check(CLI::ExistingFile);
  run->add_option("--out,-o", *rn_out, "result file to write (default result.ct)");
  run->callback([rn, rn_in, rn_out] {
    Model m = open_model(rn->model, rn->mode);
    const nn::EvaluationKeys keys = load_evaluation_keys(rn->keys, m);
    auto in = load_ciphertexts(*rn_in, *m.context);
    nn::EncryptedNetwork server(m.network, m.plan, m.context, plaintext_cache_bytes());
    const auto t = std::chrono::steady_clock::now();
    const auto out = server.evaluate(std::move(in), keys);
    const double s = seconds_since(t);
    const auto bytes = save_ciphertexts(*rn_out, *server.result_context(), out);
    std::printf("evaluated %zu stages in %.3f s; %s written to %s\n", m.network.stages.size(), s,
                human_bytes(bytes).c_str(), rn_out->c_str());
  });

  auto de = std::make_shared<Common>();
  auto de_in = std::make_shared<std::string>("result.ct");
  auto de_count = std::make_shared<std::size_t>(1);
  auto de_top = std::make_shared<int>(5);
  auto* dec = add_common(app, "decrypt", "client: decrypt a result file and print the class", *de);
  dec->add_option("--in", *de_in, "result file from veil run")->check(CLI::ExistingFile);
  dec->add_option("--count", *de_count, "throughput mode: how many images the batch held");
  dec->add_option("--top", *de_top, "how many scores to print (default 5)")->check(CLI::Range(1, 1000));
  dec->callback([de, de_in, de_count, de_top] {
    Model m = open_model(de->model, de->mode);
    const rlwe::SecretKey sk = load_secret_key(de->keys, m);
    const nn::ResultRing ring(m.plan, m.context, sk);
    const auto logits = nn::decrypt_outputs(m.plan, ring, load_ciphertexts(*de_in, *ring.context), *de_count);
    for (std::size_t i = 0; i < logits.size(); ++i) {
      if (logits.size() > 1) std::printf("image %zu: ", i);
      print_result(m, logits[i], *de_top);
    }
  });
}

}  // namespace veil::cli
