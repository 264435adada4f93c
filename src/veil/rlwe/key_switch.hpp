// Hybrid key switching (Han-Ki, CT-RSA 2020), the primitive under relinearisation,
// rotations and hoisting in every RLWE scheme: a polynomial d (level l, NTT form) is
// raised digit by digit to Q_l*P, each job applies its automorphism and key, and the sum
// is lowered back to Q_l. Several jobs over one d share the raising (hoisting).
#pragma once

#include <cstdint>
#include <vector>

#include "veil/rlwe/ciphertext.hpp"
#include "veil/rlwe/context.hpp"
#include "veil/rlwe/keys.hpp"
#include "veil/rlwe/poly.hpp"

namespace veil::rlwe {

struct SwitchJob {
  const std::vector<std::uint32_t>* perm = nullptr;  // automorphism on the raised digits, or null
  const KeySwitchKey* key = nullptr;
  PolyData acc0, acc1;  // outputs over Q_level (after modulus lowering)
};

// Hoisted rotations cost about this fraction of a full rotation in the baby-step/giant-
// step cost models (he/ and nn/ planners): the decomposition of c1 is shared, only the
// inner products and modulus lowering remain per step. Measured with veil_ckks_bench
// (RotateHoisted8 against RotateSeparate8).
inline constexpr double kHoistedRotationCost = 0.6;

class KeySwitcher {
 public:
  explicit KeySwitcher(ContextPtr ctx);

  // acc = ModDown(sum_j perm(ModUp(d)_j) * key_j) for every job. Checks each key's
  // parameter id and level.
  void key_switch(const u64* d, int level, std::vector<SwitchJob>& jobs) const;
  // Divides a polynomial over Q_level * P by P with rounding, leaving Q_level.
  void mod_down(PolyData& qp, int level) const;

 private:
  ContextPtr ctx_;
};

}  // namespace veil::rlwe
