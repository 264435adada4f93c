// The CKKS application of a diagonal/BSGS plan (he/bsgs_plan.hpp): encoded diagonals,
// hoisted baby-step rotations, giant-step sums.
//
// Linear maps on packed vectors by the diagonal method (Halevi-Shoup 2014) with
// baby-step/giant-step summation and hoisted baby-step rotations (GAZELLE, Juvekar et
// al. 2018; Halevi-Shoup 2018; Bossuat et al. 2021).
//
// A packed vector is a list of `blocks` ciphertexts with `slots` slots each. The map is
// given by its non-zero generalised diagonals: term (bo, bi, d) contributes
//     out[bo][s] += values[s] * in[bi][(s + d) mod slots].
// With d = g + j (j in [0, G) the baby step, g a multiple of the giant step G; d is read
// as signed, in (-slots/2, slots/2], so that G may be any step, e.g. a layout's channel
// stride, and negative offsets share baby steps with positive ones),
//     out[bo] = sum_g rot_g( sum_{bi, j} rot_{-g}(values) * rot_j(in[bi]) ),
// so every input block is rotated once per distinct baby step (hoisted: one
// decomposition for all of them) and each output block once per distinct giant step.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/he/bsgs_plan.hpp"
#include "veil/he/mac.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::he {

// A cached weight diagonal in NTT form whose limbs over primes below 2^34 are stored
// packed (he/mac.hpp): 4.25 bytes a residue instead of 8, so about half the memory and
// half the memory traffic of the pointwise products, which are bound by it.
class PackedPlaintext {
 public:
  PackedPlaintext() = default;
  PackedPlaintext(const ckks::CkksContext& ctx, const ckks::Plaintext& p);
  double scale() const { return scale_; }
  bool packed(std::size_t limb) const { return index_[limb] >= 0; }
  PackedRow row(std::size_t limb) const;
  const math::u64* raw(std::size_t limb) const;
  std::size_t bytes() const;
  // What a diagonal for inputs at `level` takes.
  static std::size_t bytes_at(const ckks::CkksContext& ctx, int level);

 private:
  std::size_t hi_stride() const { return (n_ + 3) / 4; }  // bytes of 2-bit fields per limb

  double scale_ = 0;
  std::size_t n_ = 0;
  std::vector<int> index_;  // per limb: k >= 0, packed limb k; -1 - k, raw limb k
  std::vector<std::uint32_t> lo_;
  std::vector<std::uint8_t> hi_;
  std::vector<math::u64> raw_;
};

class LinearTransform {
 public:
  // Plaintext diagonals are encoded for inputs at `level`, at scale q_level, so the
  // rescale restores the input's scale whatever it is (or at `plaintext_scale` when
  // given: the result then has scale input scale * plaintext_scale / q_level, which lets a
  // caller land it on a chosen scale). With
  // `cache_plaintexts` false they are encoded on the fly in apply() (saves memory).
  LinearTransform(const ckks::CkksEncoder& encoder, LinearTransformSpec spec, int level, int giant_step = 0,
                  bool cache_plaintexts = true, double plaintext_scale = 0);

  std::vector<ckks::Ciphertext> apply(const ckks::Evaluator& eval, const std::vector<ckks::Ciphertext>& in,
                                      const rlwe::GaloisKeys& gk) const;

  std::vector<int> rotation_steps() const { return he::rotation_steps(spec_, giant_); }
  TransformCounts counts() const { return count(spec_, giant_); }
  int input_level() const { return level_; }
  int output_level() const { return spec_.unit ? level_ : level_ - 1; }
  int giant_step() const { return giant_; }
  std::size_t plaintext_bytes() const;

 private:
  struct Term {
    int in_block, baby;    // baby: index into the input block's baby-step list
    std::size_t diagonal;  // index into spec_.diagonals
  };
  struct Group {
    int out_block, giant;  // giant rotation in [0, slots)
    std::vector<Term> terms;
  };
  ckks::Plaintext encode_term(const Group& g, const Term& t) const;

  const ckks::CkksEncoder* encoder_;
  LinearTransformSpec spec_;
  int level_;
  double plaintext_scale_ = 0;  // 0: q_level
  int giant_;
  std::vector<std::vector<int>> baby_steps_;  // per input block
  std::vector<Group> groups_;
  // Cached diagonals, parallel to groups_[g].terms (empty when encoding on the fly).
  std::vector<std::vector<PackedPlaintext>> plaintexts_;
  // Otherwise the non-zero (slot, value) entries of each diagonal, encoded per use. The
  // dense values are released either way.
  std::vector<std::vector<std::pair<std::uint32_t, double>>> sparse_;
};

}  // namespace veil::he
