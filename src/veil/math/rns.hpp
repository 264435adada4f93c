// Residue number system (RNS) bases, fast base conversion and CRT reconstruction.
//
// Fast base conversion (Bajard-Eynard-Hasan-Zucca 2016; Halevi-Polyakov-Shoup 2019):
//   x mod p ~= sum_i [x_i * (B/b_i)^-1]_{b_i} * (B/b_i) mod p
// which is exact up to adding u*B with 0 <= u < |B|. Full-RNS CKKS uses it for the
// modulus raising and lowering of hybrid key switching, where that error is harmless.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/math/modarith.hpp"

namespace veil::math {

class RnsBase {
 public:
  RnsBase() = default;
  explicit RnsBase(std::vector<Modulus> moduli);

  std::size_t size() const { return mods_.size(); }
  const Modulus& operator[](std::size_t i) const { return mods_[i]; }
  const std::vector<Modulus>& moduli() const { return mods_; }
  // [(B/b_i)^-1]_{b_i} and its Shoup quotient.
  u64 punctured_inv(std::size_t i) const { return qhat_inv_[i]; }
  u64 punctured_inv_shoup(std::size_t i) const { return qhat_inv_shoup_[i]; }
  double log2_product() const;

 private:
  std::vector<Modulus> mods_;
  std::vector<u64> qhat_inv_, qhat_inv_shoup_;
};

class BaseConverter {
 public:
  BaseConverter(RnsBase from, RnsBase to);

  const RnsBase& from() const { return from_; }
  const RnsBase& to() const { return to_; }

  // in: from().size() limbs of n coefficients each (limb-major, coefficient form).
  // out: to().size() limbs. `scratch` must hold from().size() * n words.
  void convert(const u64* in, u64* out, std::size_t n, u64* scratch) const;
  // Same, with the per-limb inputs and outputs given as separate pointers.
  void convert(const u64* const* in, u64* const* out, std::size_t n, u64* scratch) const;
  // The two halves of convert, for callers that interleave conversion with other work
  // per target limb: y = [x_i * (B/b_i)^-1]_{b_i}, then target k from all the y_i.
  void scale_input(std::size_t i, const u64* x, u64* y, std::size_t n) const;
  void convert_target(std::size_t k, const u64* const* y, u64* out, std::size_t n) const;
  // Every target k with out[k] non-null, in tiles of coefficients so that a tile of all
  // the sources stays in cache while each target reads it (one pass over the sources from
  // memory instead of one per target). Parallel over tiles.
  void convert_targets(const u64* const* y, u64* const* out, std::size_t n) const;

 private:
  RnsBase from_, to_;
  // qhat_mod_[k * |from| + i] = (B / b_i) mod c_k
  std::vector<u64> qhat_mod_;
  // The double-precision path: per (k, i), w, w/c_k, w*2^kSplit mod c_k and its quotient,
  // and which sources are wider than 50 bits (split into kSplit-bit halves).
  static constexpr int kSplit = 26;
  std::vector<double> fp_;
  std::vector<char> split_;
  // The AVX2 integer-lane path (targets below 2^30, sums of products below 2^64): per
  // target whether it applies; per source whether it enters split at bit 30 (above 2^32),
  // and per (k, i) the constant times 2^30 mod c_k for the high part.
  std::vector<char> narrow_, narrow_split_;
  std::vector<u64> narrow_hi_;
  // The AVX-512 IFMA path (rns_avx512.cpp): per (k, i), w and w*2^32 mod c_k, and which
  // sources are wider than 52 bits (entering as lo + hi*2^32).
  std::vector<u64> ifma_;
  std::vector<char> wide_;
};

// Centred CRT reconstruction of each coefficient, times `scale_inv`, as a double.
// limbs[i] points at n residues modulo base[i]. Exact whenever |x| < 2^127 (the common
// case for decryption), and falls back to multi-precision arithmetic (GMP) otherwise.
void crt_to_double(const RnsBase& base, const u64* const* limbs, std::size_t n, std::size_t stride,
                   double scale_inv, double* out);

}  // namespace veil::math
