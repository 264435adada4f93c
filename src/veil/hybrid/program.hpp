// The hybrid mode's view of a network (Chen et al. 2025, merging stage; Delphi, Mishra et
// al., USENIX Security 2020): the lowered network's stages with every linear stage's
// weights quantised to integers, and fixed-point scales chosen so that each local share
// truncation (mpc/truncate.hpp) fails with probability at most 2^-sigma.
//
// Every value has its own scale: a value bounded by b is held at 2^e with
// e = V - ceil(log2 b), so each carries about V significant bits whatever its range
// (a residual sum of 40 and an activation input of 3 are equally precise). A linear
// stage reading a value at 2^e multiplies by integer weights round(w 2^fw), adds the bias
// at 2^(e+fw) and truncates to its output's scale; fw is the largest the truncation bound
// allows, b_out 2^(e+fw) < 2^value_bits. A polynomial stage runs mpc::poly_activation
// with the scales of mpc::PolyScales; an Add aligns its inputs' scales and sums locally.
//
// The bound b of each value comes from the ranges measured on the training and test sets
// (PolyStage::input_range, times a safety margin) where a polynomial reads it, from
// calibration inputs run through the double network where given, and otherwise from
// interval propagation through the weights. V is chosen per network to balance the
// precision of values against that of the weights (lower()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/bfv/conv_layout.hpp"
#include "veil/common/bytes.hpp"
#include "veil/mpc/activation.hpp"
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
  std::vector<std::int64_t> bias;    // round(b * 2^(in_bits + weight_bits))
  int weight_bits = 0;               // fw
  // False for the network's last stage: its output goes to the client at scale
  // 2^(in_bits + fw) without a truncation (nothing to fail, no bound to meet but p/2).
  bool truncate = true;
  // max_r sum_j |weight_rj|: bounds how far an accumulator can grow (linear.cpp).
  std::int64_t max_row_l1 = 0;
};

// public_view (public_program.cpp) copies Op, QuantLinear and Program field by field, so
// that no copy of the weights is ever made for the client: a new field is added there too.
struct Op {
  enum class Kind { kLinear, kPoly, kAdd } kind = Kind::kLinear;
  std::string name;
  nn::Shape in, out;
  std::vector<int> inputs;  // producer ops, -1 = the network input (never empty)
  QuantLinear linear;       // kLinear
  // kLinear: nn::LinearStage's geometry hint (spatial: a convolution-like stage).
  bool spatial = false;
  int stride_y = 1, stride_x = 1;
  // kLinear: the convolution (or, for dense layers, matrix-vector product) the
  // preprocessing encrypts, from hybrid/conv_form.hpp. Public: the client lays out its
  // masks by it.
  bfv::ConvShape he_shape;
  // kLinear, the server's alone (never in the public view): the kernel (M, C, kh, kw) that
  // as_convolution recovered from the weights when he_shape was set, so that the server's
  // set-up does not recover it again (5 s of a PreAct-ResNet-18's start); empty for a
  // dense layer and for a program whose shapes were set otherwise.
  std::vector<std::int64_t> conv_kernel;
  std::vector<double> coefficients;  // kPoly, ascending
  mpc::PolyScales poly;              // kPoly
  // Scale exponents: of the input (linear and polynomial ops; an Add reads each producer
  // at that producer's out_bits) and of the output.
  int in_bits = 0, out_bits = 0;
  // Bound on |value| of this op's output (real units) the scales were chosen for.
  double output_bound = 0;
  // Linear ops: log2 of the largest quantised weight, the weights' significant bits.
  double weight_precision = 0;
};

// Which share ring lower() uses. The two-prime ring Z_(p0 p1) leaves about 31 more bits
// below the truncation bound (more precise programs) but costs ~1.5x the online time of
// the one-prime field Z_p0 (two words per value, three digit planes in the linear kernel).
enum class ShareRing {
  kAuto,       // one prime when its program is precise enough on the calibration inputs
               // (see lower()), else the ring; the ring without calibration inputs
  kOnePrime,   // Z_p0
  kTwoPrimes,  // Z_(p0 p1)
};

// The agreement with the double network that kAuto requires of a one-prime program (the
// project's accuracy target: the hybrid mode's top-1 class equals the plaintext one's on
// at least 99.9% of the test images).
inline constexpr double kAutoRingAgreement = 0.999;
// ShareRing::kAuto keeps one prime only when at least this many calibration inputs could be
// measured (a deep network's cost caps them): fewer cannot bound a 0.1% tail.
inline constexpr std::size_t kAutoRingMinInputs = 32;

struct ProgramOptions {
  // The share field's prime; 0 picks the default (a prime just below 2^61).
  u64 prime = 0;
  ShareRing ring = ShareRing::kAuto;
  // The share ring's second prime: shares live in Z_{prime * prime2} (mpc/field.hpp),
  // which leaves about 31 more bits below the truncation bound than Z_prime alone. 0 picks
  // the default (default_prime2(), 31 bits); kNoSecondPrime keeps the one-prime field
  // whatever `ring` says. Used only when the ring is chosen.
  u64 prime2 = 0;
  // V; 0 chooses (see lower()).
  int value_precision = 0;
  // When set, every value is held at 2^-uniform_frac_bits instead (wide-range values then
  // carry more significant bits than narrow ones); lower() tries both families.
  int uniform_frac_bits = 0;
  int sigma = 40;        // truncation failure at most 2^-sigma per value
  double margin = 1.25;  // measured ranges are multiplied by this
  int max_weight_bits = 16;
  // false: every linear stage of the network stays its own op (no merge_linear_runs): the
  // unmerged baseline bench/hybrid_bench.cpp compares against.
  bool merge = true;
  // Normalised inputs (C x H x W each) run through the double network to measure the
  // ranges of values no polynomial stage records (residual sums, logits); without them
  // those bounds come from interval propagation, which is loose and costs precision.
  // A value beyond its bound still truncates correctly with probability 1 - (|x|+1)/p:
  // the bound sets the guarantee, not a cliff. They also supply the input range of an
  // activation the model does not record (stock PyTorch exports).
  std::vector<std::vector<double>> calibration;
};

struct Program {
  std::string name;
  nn::Shape input;
  std::vector<double> mean, std;
  std::vector<std::string> classes;
  u64 prime = 0;
  u64 prime2 = 0;             // 0: the share field is Z_prime; else the ring Z_{prime prime2}
  int value_precision = 0;    // V
  int uniform_frac_bits = 0;  // when set, every value at 2^-uniform_frac_bits
  int sigma = 0;
  int value_bits = 0;  // largest truncated value, log2 (from prime and sigma)
  int input_bits = 0;  // scale of the client's encoded input
  std::vector<Op> ops;
  // Why lower() chose this ring, one line for the plan report (not saved with the program:
  // empty for a loaded one).
  std::string ring_choice;
  int num_outputs() const { return ops.empty() ? input.size() : ops.back().out.size(); }
  // Scale exponent of the output the client reconstructs.
  int output_bits() const { return ops.empty() ? input_bits : ops.back().out_bits; }
  // The share field (its frac_bits is V, for reports; every op names its own scales).
  mpc::Field field() const { return mpc::Field(primes(), value_precision); }
  std::vector<u64> primes() const {
    return prime2 == 0 ? std::vector<u64>{prime} : std::vector<u64>{prime, prime2};
  }
};

// ProgramOptions::prime2 for a one-prime share field.
inline constexpr u64 kNoSecondPrime = 1;

// The largest truncated value the planner allows, log2, whatever the ring: it keeps the
// clear reference (evaluate_fixed) exact in 64-bit integers.
inline constexpr int kMaxValueBits = 56;

// The default share field prime: the largest prime below 2^61 that is 1 mod 2^17, so it
// also serves as the exact scheme's plaintext modulus with SIMD batching for ring degrees
// up to 2^16.
u64 default_prime();
// The default second prime of the share ring: the largest prime below 2^31 that is 1 mod
// 2^17 (a second plaintext modulus with SIMD batching). Below 2^31 its residues need one
// 32-bit multiply-add per weight in the online kernel (hybrid/linear.hpp), and the
// exact scheme's parameters for it are no larger than for the first prime.
u64 default_prime2();

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
nn::Network merge_linear_runs(nn::Network network);

// Quantises the lowered network (after merge_linear_runs). Unless options fix the scales,
// it tries per-value precisions V = 4..18 and uniform scales 2^-4..2^-12 and keeps the
// program whose fixed-point outputs (evaluate_fixed) stay closest to the double network's
// on the calibration inputs; without calibration inputs, the V whose values and weights
// keep the most significant bits.
// ShareRing::kAuto lowers on one prime first and keeps it when the predicted top-1
// disagreement with the double network is at most 1 - kAutoRingAgreement, read at its 95%
// upper bound (the 95th percentile over bootstrap resamples of the inputs). The prediction
// needs no constant fitted to a model: with d_i the error the one-prime program makes on
// the calibration input i's top-2 margin (|(y_a - y_b) - (x_a - x_b)|, a and b the double
// network's top two classes) and F the distribution of those margins over the calibration
// inputs, the class flips when the margin is below the error, so
//   P(disagree) ~ mean_i F(d_i),
// F a power law (k / n) (x / t)^alpha below t = m_(k+1), the (k+1)-th smallest margin,
// k = ceil(sqrt(n)), alpha the maximum-likelihood (Hill) estimate from the k smallest
// margins (n = 64 inputs cannot show a 0.1% tail directly), the empirical distribution
// above t. Without calibration inputs kAuto takes the ring, and so it does with fewer than
// kAutoRingMinInputs measured (up to 64, fewer when the network is too costly). Throws
// std::invalid_argument naming the stage when a polynomial has no measured input range,
// has degree above 4, or a value cannot meet the failure bound at the requested (or any)
// precision.
Program lower(const nn::Network& network, const ProgramOptions& options = {});

// What lower() decided, small enough to keep between starts (cli/plan_cache): the share
// ring, the scale family and the largest |value| the calibration inputs reached at the
// input and at every stage of the merged network. Choosing them is nearly all of lower()'s
// time (cifar10-shallow: 64 images through the double network, 24 scale candidates scored
// on 16, the ring's disagreement estimate: ~17 s of a 2-core server's hybrid set-up);
// rebuilding the program from them is one quantisation.
struct ProgramChoice {
  u64 prime = 0, prime2 = 0;  // as Program (prime2 0: one prime)
  int value_precision = 0, uniform_frac_bits = 0;
  double input_bound = 0;
  std::vector<double> stage_bound, stage_input_bound;  // per stage of the merged network
  std::string ring_choice;
};

// lower(), also returning its decisions in *choice.
Program lower(const nn::Network& network, const ProgramOptions& options, ProgramChoice* choice);

// The program lower(network, options) made when it returned `choice`, without measuring or
// searching again. The choice is checked against the network (one bound per merged stage,
// every bound finite and >= 0, the primes as lower() allows them) and the quantisation runs
// its own checks (every truncation within the 2^-sigma bound of options.sigma), so a choice
// that does not fit is refused with std::invalid_argument naming the problem.
Program lower_from_choice(const nn::Network& network, const ProgramOptions& options,
                          const ProgramChoice& choice);

// Byte form of a choice (little-endian): u64 prime, prime2 | i32 value_precision,
// uniform_frac_bits | f64 input_bound | u32 n, f64 stage_bound[n] | u32 n,
// f64 stage_input_bound[n] | str ring_choice. load_program_choice bounds every count and
// throws std::runtime_error on truncated or trailing bytes.
Bytes save_program_choice(const ProgramChoice& choice);
ProgramChoice load_program_choice(std::span<const std::uint8_t> bytes);

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
// on the integers (truncation by rounding to nearest). The two-party evaluation differs
// from it by about one unit per truncation, carried through the later layers.
// trace: when given, every op's output in real units (where the error enters: compare with
// nn::PlainTrace of merge_linear_runs(network), op k against stage k).
std::vector<double> evaluate_fixed(const Program& program, const std::vector<double>& input,
                                   std::vector<std::vector<double>>* trace = nullptr);

}  // namespace veil::hybrid
