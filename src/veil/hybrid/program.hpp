// The hybrid mode's view of a network (Chen et al. 2025, merging stage; Delphi, Mishra et
// al., USENIX Security 2020): the lowered network's stages with every linear stage's
// weights quantised to integers, and the fixed-point scales chosen so that each local
// share truncation (mpc/truncate.hpp) fails with probability at most 2^-sigma.
//
// Values between stages are fixed-point at scale 2^f in Z_p. A linear stage multiplies
// by integer weights round(w * 2^fw) (fw chosen per stage), adds the bias at scale
// 2^(f+fw), and truncates fw bits; a polynomial stage is evaluated by mpc::poly_activation
// with coefficients at scale 2^coef_bits; an Add stage is a local sum of shares.
//
// What bounds the scales: a value truncated while it is below 2^value_bits (as an integer
// in the field) fails with probability at most 2^-sigma (SecureML's bound, mpc/truncate.hpp).
// Each stage's largest value comes from the ranges measured on the training and test
// sets (PolyStage::input_range, times a safety margin) where a polynomial follows, and
// otherwise from interval propagation through the weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/mpc/field.hpp"
#include "veil/nn/network.hpp"
#include "veil/nn/passes.hpp"

namespace veil::hybrid {

using mpc::u64;

// Integer weights of one linear stage, compressed sparse rows as in nn::SparseMatrix.
struct QuantLinear {
  int rows = 0, cols = 0;
  std::vector<std::int64_t> row_ptr;
  std::vector<int> col;
  std::vector<std::int32_t> weight;  // round(w * 2^weight_bits)
  std::vector<std::int64_t> bias;    // round(b * 2^(f + weight_bits))
  int weight_bits = 0;               // fw: truncated after the product
  // False for the network's last stage: its output goes to the client at scale
  // 2^(f+fw) without a truncation (nothing to fail, and no bound to meet but p/2).
  bool truncate = true;
  // max_r sum_j |weight_rj|: bounds how far an accumulator can grow (linear.cpp).
  std::int64_t max_row_l1 = 0;
};

struct Op {
  enum class Kind { kLinear, kPoly, kAdd } kind = Kind::kLinear;
  std::string name;
  nn::Shape in, out;
  std::vector<int> inputs;           // producer ops, -1 = the network input (never empty)
  QuantLinear linear;                // kLinear
  std::vector<double> coefficients;  // kPoly, ascending
  int coef_bits = 0;                 // kPoly
  int power_bits = 0;                // kPoly: scale of x^2..x^4 (mpc::poly_activation)
  // Bound on |value| of this op's output (real units) the scales were chosen for.
  double output_bound = 0;
};

struct ProgramOptions {
  // The share field's prime; 0 picks the default (a prime just below 2^61).
  u64 prime = 0;
  int frac_bits = 0;     // f; 0 picks the largest f (<= 12) at which every bound holds
  int sigma = 40;        // truncation failure at most 2^-sigma per value
  double margin = 1.25;  // measured ranges are multiplied by this
  int max_weight_bits = 16;
  // Normalised inputs (C x H x W each) run through the double network to measure the
  // ranges of values no polynomial stage records (residual sums, logits); without them
  // those bounds come from interval propagation, which is loose and costs precision.
  // A value beyond its bound still truncates correctly with probability 1 - (|x|+1)/p:
  // the bound sets the guarantee, not a cliff.
  std::vector<std::vector<double>> calibration;
};

struct Program {
  std::string name;
  nn::Shape input;
  std::vector<double> mean, std;
  std::vector<std::string> classes;
  u64 prime = 0;
  int frac_bits = 0;
  int sigma = 0;
  int value_bits = 0;  // largest truncated value, log2 (from prime and sigma)
  std::vector<Op> ops;
  int num_outputs() const { return ops.empty() ? input.size() : ops.back().out.size(); }
  // Scale exponent of the output the client reconstructs.
  int output_bits() const {
    const bool raw = !ops.empty() && ops.back().kind == Op::Kind::kLinear && !ops.back().linear.truncate;
    return raw ? frac_bits + ops.back().linear.weight_bits : frac_bits;
  }
  mpc::Field field() const { return mpc::Field(prime, frac_bits); }
};

// The default share field prime: the largest prime below 2^61 that is 1 mod 2^17, so it
// also serves as the exact scheme's plaintext modulus with SIMD batching for ring degrees
// up to 2^16.
u64 default_prime();

// How to lower a graph for the hybrid mode: as nn::lower's defaults, except that an
// activation's leading coefficient stays in the polynomial. Folded into the next layer's
// weights it makes them small (0.1 x^2 becomes x^2 and weights times 0.1), and fixed-point
// weights lose their relative precision; the share arithmetic gains nothing from a monic
// polynomial, unlike CKKS, where it saves a level.
nn::LowerOptions lower_options();

// The merging stage of Chen et al. (2025) on top of nn::lower's: every run of linear
// stages with no activation between them (e.g. a sum pool and the convolution after it,
// which the encrypted mode keeps apart) becomes one stage, so the online phase pays one
// masked input and one truncation per run. Edges are renumbered.
nn::Network merge_linear_runs(const nn::Network& network);

// Quantises the lowered network (after merge_linear_runs). Throws std::invalid_argument naming the stage when
// a polynomial has no measured input range, has degree above 4, or a value cannot meet the failure bound at
// the requested (or any) fractional bits.
Program lower(const nn::Network& network, const ProgramOptions& options = {});

// One line per op: kind, shapes, scales and bounds (the plan report).
std::string describe(const Program& program);

// What evaluating the program consumes per image, for the plan report.
struct ProgramCost {
  std::int64_t linear_macs = 0;     // integer multiply-adds on the server
  std::int64_t masked_inputs = 0;   // elements of r (preprocessing uploads)
  std::int64_t linear_outputs = 0;  // elements of W r - s (preprocessing downloads)
  std::int64_t squares = 0, triples = 0;
  int rounds = 0;  // online exchanges, counting a one-way message as one
};
ProgramCost cost(const Program& program);

// Clear fixed-point reference: the same quantised weights, scales and truncations, computed
// on the integers (truncation by rounding to nearest). The two-party evaluation must reconstruct to this
// within one unit per truncation; tests compare them.
std::vector<double> evaluate_fixed(const Program& program, const std::vector<double>& input);

}  // namespace veil::hybrid
