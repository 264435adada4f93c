// Scheme-free planning of linear maps by the diagonal method with baby-step/giant-step
// summation (Halevi-Shoup 2014, 2018; GAZELLE, Juvekar et al. 2018): which generalised
// diagonals a map has, how their offsets split into baby and giant steps, the rotation
// sets and the cost model. Nothing here touches a ciphertext or an encoder, so any
// scheme with slot rotations (CKKS in he/linear_transform.hpp, BFV later) applies a plan.
// The split of an offset d into giant + baby and the summation formula are described in
// he/linear_transform.hpp.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "veil/rlwe/key_switch.hpp"

namespace veil::he {

struct BlockDiagonal {
  int out_block = 0, in_block = 0;
  int step = 0;                // d in [0, slots)
  std::vector<double> values;  // `slots` entries
};

struct LinearTransformSpec {
  std::size_t slots = 0;
  int in_blocks = 1, out_blocks = 1;
  std::vector<BlockDiagonal> diagonals;
  // Per output block, added after the product (empty: no bias).
  std::vector<std::vector<double>> bias;
  // Unit map: every diagonal is 1 wherever its output is read later, so the product is a
  // plain sum of rotations: no plaintext multiplication and no level (sum pooling; the
  // slots it leaves non-zero are never read by the next map).
  bool unit = false;
  // After the sum, out += rot(out, s) for each s in order: the output-folding step of the
  // hybrid diagonal method for maps with few outputs (GAZELLE).
  std::vector<int> fold_steps;
};

// What one application costs (for plans and reports).
struct TransformCounts {
  int baby_rotations = 0;   // hoisted, per input block
  int giant_rotations = 0;  // per output block
  int fold_rotations = 0;
  std::int64_t plaintext_mults = 0;
  int levels = 1;
  int rotations() const { return baby_rotations + giant_rotations + fold_rotations; }
};

// Planning functions below need only the diagonals' positions (values may be empty).
// Chooses the giant step minimising the rotation count, counting a hoisted baby rotation
// as `hoisted_cost` of a full one, among the powers of two and the `extra` candidates
// (callers pass the strides of their layouts, along which diagonals line up).
int choose_giant_step(const LinearTransformSpec& spec, double hoisted_cost = rlwe::kHoistedRotationCost,
                      const std::vector<int>& extra = {});

// Rotation steps (normalised to [0, slots)) and counts for a spec and giant step.
std::vector<int> rotation_steps(const LinearTransformSpec& spec, int giant_step);
TransformCounts count(const LinearTransformSpec& spec, int giant_step);

// How the diagonals' offsets split for one giant step.
struct StepSets {
  std::vector<std::vector<int>> baby;       // per input block, sorted
  std::vector<std::pair<int, int>> giants;  // (out block, giant step != 0), sorted
  std::vector<int> baby_of, giant_of;       // per diagonal
  int baby_rotations() const {
    int r = 0;
    for (const auto& b : baby) r += static_cast<int>(b.size()) - (!b.empty() && b[0] == 0 ? 1 : 0);
    return r;
  }
};

// Splits every diagonal's offset into giant + baby for `giant`, visiting diagonals from
// the shortest offset out.
StepSets step_sets(const LinearTransformSpec& spec, int giant);
// Throws std::invalid_argument for inconsistent specs (slots, block indices, steps, bias).
void check_spec(const LinearTransformSpec& spec);

}  // namespace veil::he
