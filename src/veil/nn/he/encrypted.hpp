// Encrypted inference on a planned network: the client's side (keys, encryption of an
// image or a batch, decryption of the logits) and the server's (every stage evaluated
// on ciphertexts; it never holds a secret key).
//
// Latency mode: one image, packed by the plan's layouts; linear stages are diagonal-
// method transforms (he::LinearTransform), activations slot-wise polynomials.
// Throughput mode (CryptoNets, Gilad-Bachrach et al. 2016): slot b of every ciphertext
// belongs to image b, one ciphertext per tensor element; a linear stage is a weighted
// sum of ciphertexts with no rotation at all, so up to N/2 images cost one evaluation.
// Residual networks (Add stages) run in both modes: a stage's output is kept until its last
// reader ran, an Add adds ciphertexts (the higher input's levels dropped), and the linear
// stages land exactly on the scales the joins need (set_exact_scales).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/ckks/ring_switch.hpp"
#include "veil/common/bytes.hpp"
#include "veil/he/linear_transform.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::nn {

struct EvaluationKeys {
  rlwe::RelinKeys relin;
  rlwe::GaloisKeys galois;
  // Plans with a ring switch (Plan::small_params): the smaller ring's keys, and the key
  // switching the large secret to the small one's image (ckks/ring_switch.hpp).
  rlwe::RelinKeys small_relin;
  rlwe::GaloisKeys small_galois;
  std::optional<rlwe::KeySwitchKey> ring_switch;
  // Bytes the keys take in memory (rlwe::KeyPoly's words), as opposed to the bytes they
  // take on the wire (evaluation_key_bytes: bit-packed, seed-compressed).
  std::uint64_t memory_bytes() const;
};

// Everything the server needs besides the network and the keys. With a ring switch the
// smaller ring's secret is derived from keygen's (rlwe::derive_subring_secret).
EvaluationKeys make_evaluation_keys(const Plan& plan, const rlwe::KeyGenerator& keygen);

// The smaller ring's part of a plan's evaluation keys as one blob (empty without a ring
// switch): its relinearisation and rotation keys and the ring-switching key, each in the
// rlwe serialisation (the switching key as a relinearisation key of the switching
// parameters), framed by lengths. Loading checks each against the plan: parameters,
// levels, and every rotation the smaller ring's stages use.
Bytes save_small_ring_keys(const Plan& plan, const EvaluationKeys& keys, bool compress = true);
void load_small_ring_keys(const Plan& plan, std::span<const std::uint8_t> blob, EvaluationKeys& keys);
// The blob's three parts, by their lengths only (all empty for an empty blob).
struct SmallRingKeyParts {
  std::span<const std::uint8_t> relin, galois, ring_switch;
};
SmallRingKeyParts split_small_ring_keys(std::span<const std::uint8_t> blob);
// The smaller ring's relinearisation and ring-switching keys, loaded and checked against
// the plan (both empty when it runs in one ring); its Galois keys are the caller's (the
// ni server loads them piece by piece).
void load_small_ring_switching_keys(const Plan& plan, std::span<const std::uint8_t> relin,
                                    std::span<const std::uint8_t> ring_switch, EvaluationKeys& keys);
// Evaluation keys in bytes as sent (seed-compressed), both rings and the switching key.
std::uint64_t evaluation_key_bytes(const Plan& plan, const ckks::CkksContext& ctx,
                                   const EvaluationKeys& keys);

// The context of the ring a plan's results come in: `ctx`, or the smaller ring's.
ckks::ContextPtr result_context(const Plan& plan, const ckks::ContextPtr& ctx);

// The client's side of the ring a plan's results come in: `ctx` and `sk` themselves, or
// after a ring switch the smaller ring and the secret derived from `sk`. Decrypt results
// with these (decrypt_outputs).
struct ResultRing {
  ckks::ContextPtr context;
  std::unique_ptr<ckks::CkksEncoder> encoder;
  std::unique_ptr<ckks::Decryptor> decryptor;
  ResultRing(const Plan& plan, const ckks::ContextPtr& ctx, const rlwe::SecretKey& sk);
};
std::vector<std::vector<double>> decrypt_outputs(const Plan& plan, const ResultRing& ring,
                                                 const std::vector<ckks::Ciphertext>& outputs,
                                                 std::size_t images);

// Client side. Latency: `inputs` holds one normalised image (C x H x W). Throughput: up
// to plan.slots images.
std::vector<ckks::Ciphertext> encrypt_inputs(const Plan& plan, const ckks::CkksEncoder& encoder,
                                             const ckks::Encryptor& encryptor,
                                             const std::vector<std::vector<double>>& inputs);
// Throws std::invalid_argument naming the mismatch unless `outputs` look like this plan's
// result: their count (latency mode), 2 polynomials each, the level, slots and scale the
// model leaves. A ciphertext that never went through the model (an encrypted input) fails.
void check_result(const Plan& plan, const std::vector<ckks::Ciphertext>& outputs);
// The largest |encrypted - plaintext| difference the plan allows for values whose plaintext
// reference is `reference` (a stage's outputs or the logits): its precision target (the
// plan's prediction, at most PlanOptions' default 8 bits, less 2 bits: the prediction is
// that much optimistic) relative to max(1, max |reference|). A wrap-around, a key or
// packing fault gives errors of the range itself, far beyond it.
double agreement_tolerance(const Plan& plan, const std::vector<double>& reference);
// Logits per image (latency: one image), after check_result.
std::vector<std::vector<double>> decrypt_outputs(const Plan& plan, const ckks::CkksEncoder& encoder,
                                                 const ckks::Decryptor& decryptor,
                                                 const std::vector<ckks::Ciphertext>& outputs,
                                                 std::size_t images);

// Default bytes of latency-mode plaintext diagonals an EncryptedNetwork keeps encoded
// (the rest are encoded on every use, about one NTT per limb each): half the machine's
// physical memory, at most a third of the memory available when called. Programs pass
// their own budget (`veil --plaintext-cache-gib`) to the constructor; nothing here reads
// the environment.
std::size_t default_plaintext_cache_bytes();

// How a latency-mode EncryptedNetwork keeps its weight diagonals under its budget, for
// the set-up reports of `veil serve` and `veil infer`: what a user needs to choose
// --plaintext-cache-gib (the NTT form is fastest; coefficients cost an NTT per limb at
// every use; a stage with neither is encoded afresh at every use).
struct WeightForms {
  std::size_t ntt_bytes = 0;          // kept in the NTT form
  std::size_t coefficient_bytes = 0;  // kept as coefficients
  std::size_t all_ntt_bytes = 0;      // the budget that keeps every diagonal in the NTT form
  int encoded_per_use = 0;            // linear stages with diagonals but nothing kept
};

// Server side: plaintext diagonals or weights prepared once, then any number of
// evaluations (thread-safe: evaluate() is const).
class EncryptedNetwork {
 public:
  // Latency-mode diagonals are cached up to `cache_bytes`, then encoded on the fly.
  // `prefault`: fault in the evaluation's working set now (see encrypted.cpp), for
  // callers whose keys are already in memory; a server whose sessions bring their keys
  // later passes false, since the keys would take that memory first.
  // Latency mode frees each stage's weights in its copy of `net` once the stage's
  // diagonals are encoded: a caller done with the weights moves the network in, so that
  // they are never held twice (cifar10-shallow: 31.8 million entries, 380 MB).
  EncryptedNetwork(Network net, const Plan& plan, ckks::ContextPtr ctx,
                   std::size_t cache_bytes = default_plaintext_cache_bytes(), bool prefault = true);
  ~EncryptedNetwork();

  // Called after each stage with its output (reports decrypt these to measure the
  // precision per layer when client and server share a process).
  using StageObserver = std::function<void(std::size_t stage, const std::vector<ckks::Ciphertext>&)>;

  // `stage_seconds` (optional) receives the wall time of each stage. The inputs are taken
  // by value: pass them with std::move when the caller is done with them (a throughput
  // batch is hundreds of MB).
  std::vector<ckks::Ciphertext> evaluate(std::vector<ckks::Ciphertext> inputs, const EvaluationKeys& keys,
                                         std::vector<double>* stage_seconds = nullptr,
                                         const StageObserver& observer = {}) const;
  const Plan& plan() const { return plan_; }
  // The ring the results leave in (the smaller one after a ring switch).
  const ckks::ContextPtr& result_context() const { return small_ctx_ ? small_ctx_ : ctx_; }
  std::size_t plaintext_bytes() const;
  // Latency mode (all zero otherwise).
  const WeightForms& weight_forms() const { return forms_; }

 private:
  std::vector<ckks::Ciphertext> linear_batch(std::size_t stage, const std::vector<ckks::Ciphertext>& in,
                                             const rlwe::RelinKeys* relin) const;
  // Throughput mode: a sum-pool row (additions only; weighted rows run in
  // he::WeightedSum, which owns the weight residues).
  ckks::Ciphertext sum_row(const LinearStage& st, std::size_t o,
                           const std::vector<ckks::Ciphertext>& in) const;
  // Rescale (relinearising lazy inputs first) and add the bias of output `o`.
  void finish_output(const LinearStage& st, std::size_t o, ckks::Ciphertext& acc,
                     const rlwe::RelinKeys* relin) const;
  // Whether polynomial stage k may leave its products unrelinearised (throughput mode).
  bool lazy_relin(std::size_t k) const;
  // Residual networks: every stage's output scale and each weighted linear stage's target
  // (scales_, targets_; both empty for chains, which keep the default encodings).
  void set_exact_scales();
  // Throughput mode: the weight scale that lands linear stage `stage`'s rescaled output on
  // its target (0, the default q_level, for chains).
  double weight_scale(std::size_t stage, const ckks::Ciphertext& in) const;
  // Whether stage k reads stage k - 1 alone and is its only reader (a chain link).
  bool reads_only_previous(std::size_t k) const;
  // Throughput mode: linear -> polynomial -> sum pool, one pool output at a time, so the
  // (large) pre-pool tensor is never held in memory at once. Returns false when the
  // three stages starting at `stage` do not have that shape.
  bool fusable(std::size_t stage) const;
  std::vector<ckks::Ciphertext> fused_batch(std::size_t stage, const std::vector<ckks::Ciphertext>& in,
                                            const EvaluationKeys& keys, double seconds[3]) const;
  void check_inputs(const std::vector<ckks::Ciphertext>& inputs) const;

  // The evaluator of the ring stage k runs in (the smaller one after a ring switch).
  const ckks::Evaluator& eval_of(std::size_t k) const;
  bool after_switch(std::size_t k) const { return plan_.in_small_ring(k); }
  // Whether the plan's conjugation key of stage k's ring reaches `level` (its linear map
  // then pairs its diagonals, he::LinearTransform).
  bool conjugation_covers(std::size_t k, int level) const {
    return (after_switch(k) ? plan_.small_conjugation_key_level : plan_.conjugation_key_level) >= level;
  }

  Network net_;
  Plan plan_;
  ckks::ContextPtr ctx_;
  ckks::CkksEncoder encoder_;
  ckks::Evaluator eval_;
  // Ring switching: the smaller ring, its encoder and evaluator, and the switch.
  ckks::ContextPtr small_ctx_;
  std::unique_ptr<ckks::CkksEncoder> small_encoder_;
  std::unique_ptr<ckks::Evaluator> small_eval_;
  std::unique_ptr<ckks::RingSwitcher> switcher_;
  std::vector<std::unique_ptr<he::LinearTransform>> transforms_;  // latency, per stage
  std::vector<int> readers_;  // [k + 1]: stages reading stage k's output ([0]: the input)
  std::vector<double> scales_, targets_;
  WeightForms forms_;
};

}  // namespace veil::nn
