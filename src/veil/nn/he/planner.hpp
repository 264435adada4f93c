// Automatic CKKS parameter selection for a lowered network (latency or throughput mode):
// ring degree, modulus chain, scale, dnum, rotation keys and key levels, at 128-bit
// security (ia.cr/2024/463 bounds, enforced again by CkksParameters::validate).
//
// The depth comes from the packing (a sum pool costs no level, a monic polynomial of
// degree d costs ceil(log2 d)). For each ring degree from small to large the planner
// fits a chain q0 (scale + headroom bits, holds the logits), `depth` primes near the
// scale, and special primes as large as the largest key-switching digit; it keeps the
// largest scale (best precision) up to the target, then the fewest digits that still
// fit (smaller, faster keys).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "veil/ckks/params.hpp"
#include "veil/common/bytes.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/he/packing_mode.hpp"
#include "veil/nn/network.hpp"

namespace veil::nn {

// packing_mode(m).name(), and its inverse (std::invalid_argument naming the modes).
const char* mode_name(Mode m);
Mode parse_mode(const std::string& s);

struct PlanOptions {
  Mode mode = Mode::kLatency;
  // Precision wanted; 0: 30 bits in latency mode, whose diagonal products then run on the
  // sub-31-bit kernel, 31 in throughput mode, whose weighted sums run on the sub-32-bit
  // one (he/mac.hpp).
  int target_scale_bits = 0;
  int min_scale_bits = 24;  // below this, refuse rather than lose accuracy
  int headroom_bits = 12;   // q0 - scale: room for |logits| up to ~2^10
  // Take the smallest ring whose predicted logit precision reaches this (in bits; the
  // prediction is a worst-case bound, several bits below what `veil eval` measures).
  double min_precision_bits = 8;
  int log_n = 0;                // 0: smallest secure ring that fits
  bool allow_insecure = false;  // tests only
  // Latency mode, chains: end a late linear stage in the ring of half the degree when the
  // prediction says the rest runs at least 5% faster there (ckks/ring_switch.hpp).
  bool ring_switch = true;
  // With ring_switch: 0 lets the planner choose the stage; k >= 1 switches after stage k
  // (1-based, as `veil plan` numbers them) whatever the prediction says.
  int ring_switch_after = 0;
  // Latency mode: whether a layout may spend a level where that saves more than it costs
  // the stages above it (kAdaptive; the planner falls back to kAvoid when the extra levels
  // would cost the chain its scale or its ring), or never (kAvoid: the least depth).
  LevelPricing level_pricing = LevelPricing::kAdaptive;
};

struct StagePlan {
  std::string name;
  int level_in = 0, level_out = 0;
  he::TransformCounts counts;  // linear stages
  int dropped_levels = 0;      // Add stages: levels the highest input drops to meet the lowest
  double predicted_seconds = 0;
};

struct Plan {
  Mode mode = Mode::kLatency;
  ckks::CkksParameters params;
  Packing packing;        // modes with layouts (positions only)
  std::size_t slots = 0;  // slots per ciphertext (throughput: images per batch)
  int depth = 0;
  std::vector<StagePlan> stages;
  std::vector<int> rotation_steps;       // normalised to [0, slots)
  std::vector<int> rotation_key_levels;  // parallel to rotation_steps: highest level used
  // Ring switching: the stages after packing.switch_after run in this ring of half the
  // degree (the chain's levels 0..its top), with their own rotation keys (normalised to
  // [0, slots / 2)) and relinearisation key.
  std::optional<ckks::CkksParameters> small_params;
  std::vector<int> small_rotation_steps, small_rotation_key_levels;
  // The conjugation key of each ring, at the highest level a linear stage there takes its
  // input (-1: none): the linear stages pair their diagonals as complex values and take
  // each output's real part with one conjugation (he::LinearTransform, complex pairs).
  int conjugation_key_level = -1, small_conjugation_key_level = -1;
  // Galois keys of the large ring: a rotation key per step, and the conjugation key.
  std::size_t galois_keys() const { return rotation_steps.size() + (conjugation_key_level >= 0 ? 1 : 0); }
  // Sizes in bytes as sent (seed-compressed where possible); the relinearisation and
  // rotation keys of both rings when there are two.
  std::uint64_t relin_key_bytes = 0, galois_key_bytes = 0, ring_switch_key_bytes = 0;
  std::uint64_t input_bytes = 0, output_bytes = 0;
  double predicted_precision_bits = 0;  // of the logits
  double predicted_seconds = 0;         // server evaluation, one thread
  std::string describe() const;
  const PackingMode& packing_mode() const { return nn::packing_mode(mode); }
  int switch_after() const { return packing.switch_after; }
  // Whether stage k runs in the smaller ring, and whether its output is there (the
  // switching stage's output is).
  bool in_small_ring(std::size_t k) const {
    return switch_after() >= 0 && static_cast<int>(k) > switch_after();
  }
  bool output_in_small_ring(std::size_t k) const {
    return switch_after() >= 0 && static_cast<int>(k) >= switch_after();
  }
  // The parameters of the ring the results come in (the smaller one after a switch).
  const ckks::CkksParameters& result_params() const { return small_params ? *small_params : params; }
};

// Throws std::invalid_argument naming the depth needed when no secure ring fits.
Plan make_plan(const Network& net, const PlanOptions& options);

// A latency-mode plan's decisions: the ring degree, the scale and the layouts. The rest
// (the chain's primes and digits, levels, keys, predictions) follows from them by the
// planner's own rules, so plan_from_choice rebuilds the plan make_plan returned for the
// same network and options, packing each stage once instead of searching its layouts
// (a server's plan cache, veil/cli/plan_cache.hpp). The choice cannot make a plan
// insecure or wrong: the chain is fitted again for the packing's depth at 128-bit
// security and every layout is checked against the network (std::invalid_argument).
struct PlanChoice {
  int log_n = 0;
  int scale_bits = 0;
  PackingChoice packing;
  bool operator==(const PlanChoice&) const = default;
};
PlanChoice plan_choice(const Plan& plan);  // modes with layouts
Plan plan_from_choice(const Network& net, const PlanOptions& options, const PlanChoice& choice);
Bytes save_plan_choice(const PlanChoice& choice);
// Throws std::runtime_error on a truncated or malformed encoding.
PlanChoice load_plan_choice(std::span<const std::uint8_t> bytes);

// The most levels (multiplicative depth) a chain of the planner's shape holds at 128-bit
// security without bootstrapping for ring degree 2^log_n, with data primes of exactly
// `scale_bits` (q0 = scale + options.headroom_bits, special primes as large as the
// largest key-switching digit, the best dnum). A linear layer costs one level and a monic
// degree-2 activation one more, so half of it is the number of such layer pairs. 0 when
// even one level does not fit.
int max_depth(int log_n, int scale_bits, const PlanOptions& options);

}  // namespace veil::nn
