// What the `veil` subcommands share: loading a model (import + merging passes + plan),
// turning an image or a data-set record into the model's input, the key directory, and
// files holding several ciphertexts.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "veil/ckks/context.hpp"
#include "veil/common/format.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/nn/graph.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/network.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::cli {

struct ModelOptions {
  std::string path;
  std::vector<std::string> approximate;  // e.g. relu:deg4:range8
  std::string calibration;               // hybrid mode: images that choose the scales
  std::string share_ring = "auto";       // hybrid mode: auto, one or two (primes)
  nn::PlanOptions plan;
};

struct Model {
  nn::Graph graph;
  nn::Network network;  // after the merging passes
  nn::Plan plan;
  bool plan_kept = false;  // rebuilt from the plan cache (plan_cache.hpp), no layout search
  ckks::ContextPtr context;
};

Model load_model(const ModelOptions& options);

// The server's budget for encoded weight diagonals (latency mode), passed down to every
// nn::EncryptedNetwork: `veil --plaintext-cache-gib`, else VEIL_PLAINTEXT_CACHE_GIB, else
// nn::default_plaintext_cache_bytes(). Throws, naming the variable, on a bad value.
std::size_t plaintext_cache_bytes();
void set_plaintext_cache_gib(double gib);
// The same budget for the hybrid server's kernel blocks (hybrid::ServerModel); by default
// half the machine's memory and at most two thirds of what is available when called:
// unlike the latency mode's, a hybrid server needs little beside its blocks (no keys to
// speak of, a session's ciphertexts are tens of MB).
std::size_t hybrid_cache_bytes();
// "1.9 GiB: 0.8 GiB ready, 1.1 GiB as coefficients (an NTT per limb at each use); all ready
// needs --plaintext-cache-gib 3.6": the set-up reports' account of the budget.
std::string describe_weight_forms(const nn::WeightForms& forms);
// The same for the hybrid server's kernel blocks (the same budget).
std::string describe_hybrid_weights(const hybrid::ServerModel& model);

// An image file (PNG/JPEG/PPM, resized/converted to the model's input) or record `index`
// of an IDX / CIFAR-10 binary file, normalised as the model expects.
struct Input {
  std::string label;  // file name (and record index)
  std::vector<double> values;
  int true_class = -1;  // known for data-set records
};
Input load_input(const nn::Network& net, const std::string& path, std::size_t index);

// Key directory: params.bin, secret.key (mode 0600, client only), relin.key, galois.key.
void save_keys(const std::string& dir, const Model& m, const rlwe::SecretKey& sk,
               const nn::EvaluationKeys& keys, std::uint64_t* evaluation_key_bytes = nullptr);
rlwe::SecretKey load_secret_key(const std::string& dir, const Model& m);
nn::EvaluationKeys load_evaluation_keys(const std::string& dir, const Model& m);

// Several ciphertexts in one file: "VEILCTS1", u32 count, then (u64 length, object).
std::uint64_t save_ciphertexts(const std::string& path, const ckks::CkksContext& ctx,
                               const std::vector<ckks::Ciphertext>& cts);
std::vector<ckks::Ciphertext> load_ciphertexts(const std::string& path, const ckks::CkksContext& ctx);
// Bytes of the ciphertexts as sent (seed-compressed where possible).
std::uint64_t wire_bytes(const ckks::CkksContext& ctx, const std::vector<ckks::Ciphertext>& cts);

using Clock = std::chrono::steady_clock;
using veil::human_bytes;
using veil::seconds_since;

// Encrypted evaluation that disagrees with the plaintext model beyond the planned precision
// (nn::agreement_tolerance) is an error, never a silently wrong answer: this throws,
// naming the first stage whose decrypted outputs leave their tolerance, found by running
// `input` again with every stage decrypted. `plain` and `logits`: that input's answers.
void require_agreement(const Model& m, const nn::EncryptedNetwork& server, const nn::EvaluationKeys& keys,
                       const rlwe::SecretKey& sk, const std::vector<double>& input,
                       const std::vector<double>& plain, const std::vector<double>& logits);

std::vector<int> top_k(const std::vector<double>& logits, int k);
int argmax(const std::vector<double>& v);

}  // namespace veil::cli
