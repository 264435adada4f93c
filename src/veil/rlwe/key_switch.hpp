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
  // Outputs over Q_level after modulus lowering, or over Q_level * P (level + 1 data limbs,
  // then the special limbs) when key_switch is asked not to lower.
  PolyData acc0, acc1;
};

// Hoisted rotations cost about this fraction of a full rotation in the baby-step/giant-
// step cost models (he/ and nn/ planners): the decomposition of c1 is shared, only the
// inner products and modulus lowering remain per step. Measured with veil_ckks_bench
// (RotateHoisted8 against RotateSeparate8).
inline constexpr double kHoistedRotationCost = 0.6;

class KeySwitcher {
 public:
  // How the digits are raised to Q_l*P (step 2 of key_switch). Both give identical
  // results; they differ in memory traffic.
  //   kTiled: every digit raised to every limb up front, in cache-sized tiles of
  //     coefficients (best for few wide digits: each tile of a digit's many sources is
  //     read once for all targets); needs digits * (l + 1 + k) polynomials at once.
  //   kPerTarget: each worker raises all digits to one output limb, transforms them and
  //     takes the inner products while they are hot; needs digits polynomials per worker.
  //     At N = 2^16 with one prime per digit (dnum = L = 41) the tiled buffer is 924 MB
  //     and this one 21 MB.
  //   kAuto: kTiled while its buffer stays under kTiledRaiseBudget bytes. Measured with
  //     veil_ckks_bench (BM_KeySwitch, BM_CmpKeySwitch_dnumL; CPU time, one thread):
  //     tiled 173 vs 212 ms at 2^16 with the default chain (110 MB), equal at 2^15,
  //     per target 1.34 s vs 5.0 s at 2^16 with dnum = L (947 MB).
  enum class Raise { kAuto, kTiled, kPerTarget };
  static constexpr std::size_t kTiledRaiseBudget = std::size_t{256} << 20;
  // Lowered jobs run in chunks whose Q_l * P sums take at most this many bytes (at least
  // one job a chunk; see key_switch.cpp). Tests make it small to run many chunks.
  static constexpr std::size_t kLoweredChunkBytes = std::size_t{64} << 20;
  void set_lowered_chunk_bytes(std::size_t bytes) { chunk_bytes_ = bytes; }

  explicit KeySwitcher(ContextPtr ctx);
  // Tests and benchmarks pin a path; production code leaves kAuto.
  void set_raise(Raise r) { raise_ = r; }

  // acc = ModDown(sum_j perm(ModUp(d)_j) * key_j) for every job. Checks each key's
  // parameter id and level. With `lower` false the ModDown is left out and acc stays over
  // Q_level * P: double hoisting (Bossuat et al., Eurocrypt 2021) sums such products,
  // multiplied by plaintexts, and lowers the sum once.
  void key_switch(const u64* d, int level, std::vector<SwitchJob>& jobs, bool lower = true) const;
  // Divides a polynomial over Q_level * P by P with rounding, leaving Q_level.
  void mod_down(PolyData& qp, int level) const;

 private:
  // mod_down with the l + 1 result limbs written to out (which may be qp's own first
  // limbs); qp's special limbs are used up.
  void mod_down_to(PolyData& qp, int level, u64* out) const;
  // Inner products of target limb t over the digits' limb-t polynomials v, for jobs
  // begin..begin+count-1 into qp0/qp1[0..count-1].
  void inner_products(std::size_t t, std::size_t l1, const std::vector<const u64*>& v,
                      const std::vector<SwitchJob>& jobs, std::size_t begin, std::size_t count,
                      std::vector<PolyData>& qp0, std::vector<PolyData>& qp1) const;

  ContextPtr ctx_;
  Raise raise_ = Raise::kAuto;
  std::size_t chunk_bytes_ = kLoweredChunkBytes;
};

}  // namespace veil::rlwe
