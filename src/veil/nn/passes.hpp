// Lowering the graph to the chain of stages (network.hpp), with the merging passes that
// save multiplicative levels, and the level/operation count of the result.
//
// Each pass is switchable so the effect can be reported (`veil` prints the network
// before and after). None of them changes what the network computes, only how many
// plaintext multiplications (and so CKKS levels) it takes:
//   (a) BatchNormalization folds into the preceding Conv/Gemm (as in PRISM;
//       the usual inference-time BN folding);
//   (b) an average pool's 1/k^2 moves into the next linear stage, leaving an all-ones
//       sum pool that costs rotations and additions but no level; a pool in front of a
//       dense layer (and GlobalAveragePool in front of any linear stage) is multiplied
//       into it entirely;
//   (c) a polynomial's leading coefficient moves into the next linear stage, making the
//       polynomial monic: c_d x^d costs one more level than x^d;
//   (d) consecutive linear stages with nothing non-linear between them become one
//       (sparse matrix product), except a sum pool followed by a spatial stage, where
//       the product would only make the convolution denser;
//   (e) a batch norm that has nothing to fold into (it reads a residual join or fork, as
//       at the start of every pre-activation block) followed by a monic quadratic becomes
//       a per-channel shift and a plain square: (a x + b)^2 + c1 (a x + b) + c0 =
//       a^2 (x + s)^2 + k, s = (b + c1/2) / a, k = c0 - c1^2/4, with a^2 and k moving
//       into the linear stages that read the activation. Adding s costs no level, so
//       BN + activation take one level instead of two.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/nn/graph.hpp"
#include "veil/nn/network.hpp"

namespace veil::nn {

struct LowerOptions {
  bool fold_batch_norm = true;    // (a)
  bool fold_pool_scale = true;    // (b)
  bool fold_poly_leading = true;  // (c)
  bool merge_linear = true;       // (d)
  bool square_batch_norm = true;  // (e); needs (c)
  // Every stage as in the graph: BN and pools (with 1/k^2) on their own, polynomials
  // with their leading coefficients.
  static LowerOptions none() { return {false, false, false, false, false}; }
};

// The network of stages computing graph, with the graph's edges (a residual Add becomes
// an Add stage reading its two producers). Flatten/Reshape disappear (they only change
// the shape, so a stage's `in` may be the flattened form of its producer's `out`). The
// passes only combine a producer with its single reader, so nothing folds across a fork
// or a join. Throws std::invalid_argument naming the node when a node does not feed the
// output or the output is not the last node.
Network lower(const Graph& graph, const LowerOptions& options = {});

struct StageCost {
  std::string name;
  StageKind kind = StageKind::kLinear;
  int depth = 0;                      // levels consumed
  std::int64_t plaintext_mults = 0;   // linear: multiplications by plaintext weights (nnz)
  std::int64_t constant_mults = 0;    // poly: multiplications by scalar coefficients
  std::int64_t ciphertext_mults = 0;  // poly: products of two encrypted values
  std::int64_t additions = 0;         // additions of values (and of biases/constants)
};

struct CostReport {
  int depth = 0;  // multiplicative depth of the output (along a chain, the sum of the stages')
  std::int64_t plaintext_mults = 0, constant_mults = 0, ciphertext_mults = 0, additions = 0;
  int linear_stages = 0, poly_stages = 0;
  std::vector<StageCost> stages;
  int num_stages() const { return static_cast<int>(stages.size()); }
};

// Counts in the clear, as if every value had its own ciphertext (packing adds the
// rotations). Linear stage: depth 1 (0 for a sum pool with unit weights), one plaintext
// multiplication per non-zero weight, one addition per extra term and per non-zero bias.
// Polynomial of degree d (trailing zero coefficients ignored): depth ceil(log2 d) when
// monic (c_d = 1, the usual case after pass (c)), else ceil(log2(d + 1)); per value, one
// product per power x^2..x^d it needs (powers of two by squaring), one constant
// multiplication per coefficient c_k (k >= 1) other than 0 and 1, one addition per
// further non-zero coefficient.
CostReport cost(const Network& network);

// One line per stage (kind, name, shapes, nnz or degree, depth) and the totals.
std::string describe(const Network& network);

}  // namespace veil::nn
