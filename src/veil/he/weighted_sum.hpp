// Encrypted weighted sums over a sparse matrix of real weights: out_r = sum_k w_rk *
// in[col_k], one value per ciphertext (the throughput-mode linear layers of nn/he, which
// pack one image per slot, so a layer is scalar multiply-accumulates and no rotation;
// CryptoNets, Gilad-Bachrach et al. 2016).
//
// The kernel owns the weights' residues: each weight becomes the integer round(w * q_level)
// reduced per limb, so the rescale by q_level that follows restores the input's scale.
// When every such integer fits 31 bits the same values are also kept signed, for the
// 32-bit kernels on limbs whose primes are too wide for the unsigned ones
// (he::mac_scalar_rows_signed). Built once per evaluation of a layer, not per output.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"

namespace veil::he {

// Compressed sparse rows of the weights (row r: entries [row_ptr[r], row_ptr[r + 1])).
struct SparseWeights {
  int rows = 0;
  std::span<const std::int64_t> row_ptr;  // rows + 1 entries
  std::span<const int> col;
  std::span<const double> val;
};

class WeightedSum {
 public:
  // Weights as constants for inputs at `level` (the ciphertexts' level), encoded at
  // `weight_scale` (0: q_level; another value lets the caller land the rescaled result on a
  // chosen scale, e.g. the scale of the other branch of a residual join).
  WeightedSum(ckks::ContextPtr ctx, SparseWeights weights, int level, double weight_scale = 0);

  // Every row's sum, not yet rescaled: scale in.scale * weight scale, in[0]'s size (inputs may
  // be unrelinearised products). All inputs at the level given at construction.
  std::vector<ckks::Ciphertext> apply(const std::vector<ckks::Ciphertext>& in) const;

  // Row r alone (fused layer paths that consume one output at a time).
  ckks::Ciphertext apply_row(int r, const std::vector<ckks::Ciphertext>& in) const;

 private:
  ckks::Ciphertext accumulator(const std::vector<ckks::Ciphertext>& in) const;
  // Coefficients [base, base + len) of limb i of out[r] for the rows of one block (rows
  // sharing their columns). src[col * polys + p] points at coefficient `base` of
  // polynomial p of input col, limb i.
  void accumulate_rows(std::span<const int> rows, std::span<const math::u64* const> src, std::size_t i,
                       std::size_t base, std::size_t len, std::span<ckks::Ciphertext* const> out) const;

  ckks::ContextPtr ctx_;
  SparseWeights m_;
  int level_ = 0;
  double weight_scale_ = 0;
  std::vector<std::vector<math::u64>> residues_;  // per limb
  std::vector<std::int32_t> small_;               // signed, when all fit 31 bits
  std::vector<std::vector<int>> blocks_;          // rows with identical columns, up to 8
};

}  // namespace veil::he
