// How a planned network's values sit in CKKS slots, as one object per packing mode that
// the planner, the encrypted evaluator, the protocol and the CLI ask instead of testing
// the mode: adding a mode is one more PackingMode implementation (packing_mode.cpp) and
// one more Mode value.
//
// Latency: one image, packed by the plan's layouts (nn/he/packing.hpp); linear stages are
// diagonal-method transforms with rotations (Halevi-Shoup, baby-step/giant-step).
// Throughput (CryptoNets, Gilad-Bachrach et al. 2016): slot b of every ciphertext belongs
// to image b, one ciphertext per tensor element; a linear stage is a weighted sum of whole
// ciphertexts with no rotation, so up to N/2 images cost one evaluation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "veil/he/bsgs_plan.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/network.hpp"

namespace veil::nn {

// The mode's identity: what options, messages (one byte on the wire: the value) and tests name.
enum class Mode { kLatency, kThroughput };
// How many Mode values there are (header-only, for code that must not link nn: the message
// decoders of the fuzz build); packing_modes() checks that it holds one object per value.
inline constexpr std::size_t kPackingModeCount = 2;

struct Plan;

// A linear stage's cost for the planner's time prediction: key switches (hoisted baby
// steps weighted by their relative cost) and multiply-accumulates per limb and coefficient.
struct LinearCost {
  he::TransformCounts counts;
  std::vector<int> rotation_steps;
  double keyswitches = 0;
  std::int64_t macs = 0;
};

class PackingMode {
 public:
  virtual ~PackingMode() = default;
  virtual Mode id() const = 0;
  // "latency" / "throughput": option values and printed names.
  virtual const char* name() const = 0;
  // What one evaluation processes, for reports: "image" / "batch".
  virtual const char* unit() const = 0;
  // Printed after the slot count by Plan::describe ("" or " (images per batch)").
  virtual const char* slots_note() const = 0;
  // PlanOptions::target_scale_bits when 0 (throughput: 31, whose weighted sums then run on
  // the faster sub-32-bit kernel, he/mac.hpp).
  virtual int default_scale_bits() const = 0;
  // The default instead where the planner's worst-case error bound at the first exceeds
  // the logits themselves (at the first ring that holds the network); 0: none.
  virtual int precise_scale_bits() const { return 0; }
  // Images per evaluation of a plan.
  virtual std::size_t batch_size(const Plan& plan) const = 0;
  // Whether the plan carries slot layouts (Plan::packing) for every stage.
  virtual bool has_layouts() const = 0;
  // Whether linear stages are weighted sums of whole ciphertexts (which lets a quadratic
  // before one stay unrelinearised and a conv -> square -> sum pool run fused).
  virtual bool weighted_sums() const = 0;

  // Planner. The packing for `slots` slots (left empty when the mode has none) and its
  // depth, given the stages' own depth. When `packing` already holds a packing of `net`
  // at `slots` (with another pricing), the layout pairs it costed are reused.
  virtual int pack(const Network& net, std::size_t slots, int stage_depth, Packing& packing,
                   LevelPricing pricing) const = 0;
  // Ciphertexts entering stage k, which reads `elements` values.
  virtual int stage_ciphertexts(const Plan& plan, std::size_t k, int elements) const = 0;
  virtual LinearCost linear_cost(const Plan& plan, const Network& net, std::size_t k) const = 0;
  // Whether linear stage k multiplies by weights (a sum pool does not: no level).
  virtual bool weighted(const Plan& plan, const Network& net, std::size_t k) const = 0;
  // Ciphertexts of one request and of its result, for an input shape and a logit count.
  virtual std::size_t input_ciphertexts(const Plan& plan, const Shape& input) const = 0;
  virtual std::size_t output_ciphertexts(const Plan& plan, int outputs) const = 0;
  // The result count the plan alone fixes (throughput: none, it is the logit count).
  virtual std::optional<std::size_t> result_ciphertexts(const Plan& plan) const = 0;

  // Client. Slot vectors, one per ciphertext, of a request; throws std::invalid_argument
  // naming the problem when the images do not fit.
  virtual std::vector<std::vector<double>> pack_inputs(
      const Plan& plan, const std::vector<std::vector<double>>& images) const = 0;
  // Logits per image from the decoded result.
  virtual std::vector<std::vector<double>> unpack_outputs(const Plan& plan,
                                                          const std::vector<std::vector<double>>& decoded,
                                                          std::size_t images) const = 0;
  // Image `image`'s values of stage k from its decoded output (precision reports).
  virtual std::vector<double> unpack_stage(const Plan& plan, std::size_t k,
                                           const std::vector<std::vector<double>>& decoded,
                                           std::size_t image) const = 0;
};

const PackingMode& packing_mode(Mode mode);
// Every mode, in Mode order.
const std::vector<const PackingMode*>& packing_modes();

}  // namespace veil::nn
