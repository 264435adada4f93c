#include "veil/hybrid/program.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/hybrid/conv_form.hpp"
#include "veil/math/primes.hpp"
#include "veil/mpc/activation.hpp"
#include "veil/mpc/truncate.hpp"
#include "veil/nn/linear.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::hybrid {

namespace {

using i64 = std::int64_t;
using i128 = __int128;

// ceil(log2(b)) for b > 0, at least 0: the bits a value of magnitude below b needs.
int bits_for(double b) { return b <= 1.0 ? 0 : static_cast<int>(std::ceil(std::log2(b))); }

// max |p(x)| over |x| <= r, bounded by sum |c_k| r^k.
double poly_bound(const std::vector<double>& c, double r) {
  double s = 0, rk = 1;
  for (double ck : c) s += std::fabs(ck) * rk, rk *= r;
  return s;
}

// Largest |x| of the normalised input, from the per-channel mean and std of
// x = (pixel / 255 - mean) / std.
double input_bound(const nn::Network& net) {
  if (net.mean.empty() || net.std.empty()) return 1.0;
  double b = 0;
  for (std::size_t c = 0; c < net.mean.size() && c < net.std.size(); ++c) {
    const double s = std::fabs(net.std[c]) > 0 ? std::fabs(net.std[c]) : 1.0;
    b = std::max({b, std::fabs(-net.mean[c]) / s, std::fabs(1.0 - net.mean[c]) / s});
  }
  return b;
}

// std::lround for |w| < 2^31, inline (w - trunc(w) is exact): the per-weight libm call
// dominated quantising a large network once per scale candidate.
std::int32_t round_half_away(double w) {
  auto t = static_cast<std::int64_t>(w);
  const double frac = w - static_cast<double>(t);
  if (frac >= 0.5) ++t;
  if (frac <= -0.5) --t;
  return static_cast<std::int32_t>(t);
}

// structure: false leaves row_ptr and col empty (a scale candidate, scored against the
// network's own sparse structure instead of a copy of it: evaluate_fixed_on).
QuantLinear quantize(const nn::LinearStage& s, int weight_bits, int frac_bits, bool structure) {
  QuantLinear q;
  q.rows = s.weights.rows;
  q.cols = s.weights.cols;
  if (structure) {
    q.row_ptr = s.weights.row_ptr;
    q.col = s.weights.col;
  }
  q.weight_bits = weight_bits;
  q.weight.resize(s.weights.val.size());
  const double scale = std::ldexp(1.0, weight_bits);  // a power of two: w * scale is exact
  for (std::size_t i = 0; i < q.weight.size(); ++i) {
    const double w = s.weights.val[i] * scale;
    VEIL_REQUIRE(std::fabs(w) < 2147483647.0, "linear stage '" << s.name << "': weight " << s.weights.val[i]
                                                               << " does not fit 32 bits at scale 2^"
                                                               << weight_bits);
    q.weight[i] = round_half_away(w);
  }
  q.bias.resize(static_cast<std::size_t>(q.rows), 0);
  for (int r = 0; r < q.rows && static_cast<std::size_t>(r) < s.bias.size(); ++r)
    q.bias[static_cast<std::size_t>(r)] =
        std::llround(std::ldexp(s.bias[static_cast<std::size_t>(r)], weight_bits + frac_bits));
  for (int r = 0; r < q.rows; ++r) {
    i64 l1 = 0;
    for (i64 k = s.weights.row_ptr[static_cast<std::size_t>(r)];
         k < s.weights.row_ptr[static_cast<std::size_t>(r) + 1]; ++k)
      l1 += std::abs(static_cast<i64>(q.weight[static_cast<std::size_t>(k)]));
    q.max_row_l1 = std::max(q.max_row_l1, l1);
  }
  return q;
}

// max_r (sum_j |w_rj|) * in_bound + |b_r|: interval propagation through a linear stage.
// Per-row sum_j |w_rj| + the largest |w| of a linear stage: what propagate() and the
// weight precision read, computed once for all the scales lower() tries.
struct WeightStats {
  std::vector<double> row_l1;
  double wmax = 0;
};
WeightStats weight_stats(const nn::LinearStage& s) {
  WeightStats w;
  w.row_l1.assign(static_cast<std::size_t>(s.weights.rows), 0);
  for (int r = 0; r < s.weights.rows; ++r)
    for (i64 k = s.weights.row_ptr[static_cast<std::size_t>(r)];
         k < s.weights.row_ptr[static_cast<std::size_t>(r) + 1]; ++k) {
      const double a = std::fabs(s.weights.val[static_cast<std::size_t>(k)]);
      w.row_l1[static_cast<std::size_t>(r)] += a;
      w.wmax = std::max(w.wmax, a);
    }
  return w;
}

// Largest |W x + b| over |x| <= in_bound, from the precomputed row L1 sums.
double propagate(const nn::LinearStage& s, const WeightStats& w, double in_bound) {
  double b = 0;
  for (int r = 0; r < s.weights.rows; ++r) {
    const double bias =
        static_cast<std::size_t>(r) < s.bias.size() ? std::fabs(s.bias[static_cast<std::size_t>(r)]) : 0;
    b = std::max(b, w.row_l1[static_cast<std::size_t>(r)] * in_bound + bias);
  }
  return b;
}

// evaluate_fixed; structure: the network whose stage k supplies op k's sparse structure
// when the op carries none (a scale candidate of lower()).
std::vector<double> evaluate_fixed_on(const Program& prog, const std::vector<double>& input,
                                      std::vector<std::vector<double>>* trace, const nn::Network* structure);

// v / 2^bits rounded to nearest: the online truncation errs by under one unit either way
// with no bias to speak of, which rounding models better than floor (whose half-unit
// bias, summed over a layer's fan-in, would show in the logits).
i64 round_shift(i64 v, int bits) { return bits == 0 ? v : (v + (i64{1} << (bits - 1))) >> bits; }
// v at 2^from, expressed at 2^to.
i64 rescale(i64 v, int from, int to) {
  return to >= from ? v * (i64{1} << (to - from)) : round_shift(v, from - to);
}

}  // namespace

u64 default_prime() {
  // Searching down from 2^61 in steps of 2^17 (primes.hpp's generator does this for NTT
  // primes of the ring degree 2^16).
  static const u64 p = math::generate_ntt_primes(61, 1, u64{1} << 17).front();
  return p;
}

u64 default_prime2() {
  static const u64 p = math::generate_ntt_primes(31, 1, u64{1} << 17).front();
  return p;
}

namespace {

// Largest |value| of the input and of every stage's output over the calibration inputs
// (0 for a stage when there are none), measured once for all the scales lower() tries.
struct Ranges {
  double input = 0;
  std::vector<double> stage;         // largest |output| of each stage
  std::vector<double> stage_input;   // largest |value| entering each stage
  std::vector<WeightStats> weights;  // of each linear stage (empty for the others)
  // Input range of each polynomial stage (0 for the others): the model's recorded
  // PolyStage::input_range, else stage_input (a stock export records none). Kept here so
  // that lowering reads the caller's network as it is, without a copy of its weights.
  std::vector<double> poly_input;
};

// What needs no calibration: the input's bound, no stage measured, every linear stage's
// weight statistics.
Ranges unmeasured(const nn::Network& net) {
  Ranges r;
  r.input = input_bound(net);
  r.stage.assign(net.stages.size(), 0);
  r.stage_input.assign(net.stages.size(), 0);
  r.weights.resize(net.stages.size());
  for (std::size_t k = 0; k < net.stages.size(); ++k)
    if (net.stages[k].is<nn::LinearStage>()) r.weights[k] = weight_stats(net.stages[k].linear());
  return r;
}

Ranges measure(const nn::Network& net, const ProgramOptions& options) {
  Ranges r = unmeasured(net);
  for (const auto& x : options.calibration)
    VEIL_REQUIRE(static_cast<int>(x.size()) == net.input.size(),
                 "calibration input has " << x.size() << " values, the model expects " << net.input.size());
  // The images in parallel, each reduced to its per-stage maxima (a maximum does not
  // depend on the order): cifar10-shallow's 64 images were 5 s of a server's hybrid
  // set-up on one core.
  struct Maxima {
    std::vector<double> stage, stage_input;
  };
  std::vector<Maxima> per_image(options.calibration.size());
  parallel_for(per_image.size(), [&](std::size_t i) {
    nn::PlainTrace trace;
    nn::evaluate(net, options.calibration[i], &trace);
    Maxima& m = per_image[i];
    m.stage.assign(r.stage.size(), 0);
    for (std::size_t k = 0; k < r.stage.size(); ++k)
      for (double v : trace.stage_outputs[k]) m.stage[k] = std::max(m.stage[k], std::fabs(v));
    m.stage_input = trace.max_abs_input;
  });
  for (std::size_t i = 0; i < per_image.size(); ++i) {
    for (std::size_t k = 0; k < r.stage.size(); ++k) {
      r.stage[k] = std::max(r.stage[k], per_image[i].stage[k]);
      r.stage_input[k] = std::max(r.stage_input[k], per_image[i].stage_input[k]);
    }
    for (double v : options.calibration[i]) r.input = std::max(r.input, std::fabs(v));
  }
  return r;
}

Program lower_at(const nn::Network& net, const ProgramOptions& options, const Ranges& ranges,
                 bool structure = true) {
  // Caller passes a merged network and its measured ranges (lower() does both once for all
  // scales tried).
  Program prog;
  prog.name = net.name;
  prog.input = net.input;
  prog.mean = net.mean;
  prog.std = net.std;
  prog.classes = net.classes;
  prog.prime = options.prime != 0 ? options.prime : default_prime();
  VEIL_REQUIRE(math::is_prime(prog.prime) && prog.prime < (u64{1} << 61),
               "share field modulus " << prog.prime << " is not a prime below 2^61");
  prog.prime2 = options.prime2 == kNoSecondPrime ? 0
                : options.prime2 != 0            ? options.prime2
                                                 : default_prime2();
  VEIL_REQUIRE(prog.prime2 == 0 ||
                   (math::is_prime(prog.prime2) && prog.prime2 < (u64{1} << 61) && prog.prime2 != prog.prime),
               "share ring's second prime " << prog.prime2 << " is not a prime below 2^61 distinct from "
                                            << prog.prime);
  prog.value_precision = options.value_precision;
  prog.uniform_frac_bits = options.uniform_frac_bits;
  prog.sigma = options.sigma;
  const int V = options.value_precision;
  VEIL_REQUIRE(V >= 2 && V <= 19, "value precision " << V << " bits is out of range (2 .. 19)");
  VEIL_REQUIRE(options.sigma >= 20 && options.sigma <= 60,
               "statistical parameter sigma = " << options.sigma << " is out of range (20 .. 60)");
  const mpc::Field field = prog.field();
  prog.value_bits = std::min(kMaxValueBits, mpc::max_truncation_value_bits(field, options.sigma));
  const int vb = prog.value_bits;
  VEIL_REQUIRE(V < vb, "value precision " << V << " bits leaves no room below the truncation bound 2^" << vb);
  // A value bounded by b is held at 2^(V - bits(b)): V significant bits.
  auto scale_for = [&](double b) {
    return options.uniform_frac_bits > 0 ? options.uniform_frac_bits : V - bits_for(b);
  };

  const std::size_t n = net.stages.size();
  std::vector<std::vector<int>> consumers(n);
  for (std::size_t k = 0; k < n; ++k)
    for (int j : net.inputs_of(static_cast<int>(k)))
      if (j >= 0) consumers[static_cast<std::size_t>(j)].push_back(static_cast<int>(k));
  const double in_bound = ranges.input;
  const std::vector<double>& measured_out = ranges.stage;
  prog.input_bits = scale_for(in_bound);
  std::vector<double> bound(n, 0);
  std::vector<int> scale(n, 0);
  auto bound_of = [&](int j) { return j < 0 ? in_bound : bound[static_cast<std::size_t>(j)]; };
  auto scale_of = [&](int j) { return j < 0 ? prog.input_bits : scale[static_cast<std::size_t>(j)]; };

  for (std::size_t k = 0; k < n; ++k) {
    const nn::Stage& st = net.stages[k];
    Op op;
    op.name = st.name();
    op.inputs = net.inputs_of(static_cast<int>(k));
    double in_b = 0;
    for (int j : op.inputs) in_b = std::max(in_b, bound_of(j));
    op.in_bits = scale_of(op.inputs.front());
    switch (st.kind()) {
      case nn::StageKind::kLinear: {
        op.kind = Op::Kind::kLinear;
        op.in = st.linear().in;
        op.out = st.linear().out;
        // Measured ranges where every consumer is a polynomial that has them; then the
        // calibration's; else the interval bound through the weights.
        double b = 0;
        bool measured = !consumers[k].empty();
        for (int c : consumers[k]) {
          const double range = ranges.poly_input[static_cast<std::size_t>(c)];
          if (!net.stages[static_cast<std::size_t>(c)].is<nn::PolyStage>() || range <= 0)
            measured = false;
          else
            b = std::max(b, range * options.margin);
        }
        if (!measured)
          b = measured_out[k] > 0 ? measured_out[k] * options.margin
                                  : propagate(st.linear(), ranges.weights[k], in_b);
        const bool last = k + 1 == n;
        // The product W x + b is held at 2^(in + fw) and must stay below 2^value_bits to
        // be truncated; the last stage is not truncated, its only limit is p/2 (2^59).
        const int fw =
            last ? std::min(options.max_weight_bits,
                            59 - op.in_bits - bits_for(propagate(st.linear(), ranges.weights[k], in_b)))
                 : std::min(options.max_weight_bits, vb - 1 - op.in_bits - bits_for(b));
        const double wmax = ranges.weights[k].wmax;
        op.weight_precision = wmax > 0 ? fw + std::log2(wmax) : fw;
        VEIL_REQUIRE(fw >= 1 && op.weight_precision >= 2,
                     "linear stage '" << op.name << "': outputs up to " << b << " from inputs at 2^-"
                                      << op.in_bits << " leave its weights (up to " << wmax << ") at 2^-"
                                      << fw << ", under 2 significant bits");
        op.linear = quantize(st.linear(), fw, op.in_bits, structure);
        op.spatial = st.linear().spatial;
        op.stride_y = st.linear().stride_y;
        op.stride_x = st.linear().stride_x;
        op.linear.truncate = !last;
        op.out_bits = last ? op.in_bits + fw : std::min(scale_for(b), op.in_bits + fw);
        op.output_bound = b;
        break;
      }
      case nn::StageKind::kPoly: {
        op.kind = Op::Kind::kPoly;
        op.in = op.out = nn::Shape{net.output_size(op.inputs.front()), 1, 1};
        op.coefficients = st.poly().coefficients;
        VEIL_REQUIRE(st.poly().degree() <= 4, "activation '" << op.name << "' has degree "
                                                             << st.poly().degree()
                                                             << ": the hybrid mode evaluates degree <= 4");
        // with_poly_inputs() checked that every polynomial has its range.
        const double r = ranges.poly_input[k] * options.margin;
        // The largest power's product, |x|^d at 2^(2 s) (x^3 = x * x^2, x^4 = (x^2)^2),
        // must stay below the bound: s is the power scale.
        const int d = st.poly().degree();
        const double top = d >= 2 ? std::pow(r, std::max(2, d)) : r;
        const int sb = std::min(op.in_bits, (vb - 1 - bits_for(top)) / 2);
        VEIL_REQUIRE(sb >= 1, "activation '" << op.name << "': inputs up to " << r << " give powers up to "
                                             << top << ", which overflow the truncation bound 2^" << vb
                                             << " (retrain with a smaller activation range)");
        const double yb = poly_bound(op.coefficients, r);
        // Terms summed at the finest scale the bound allows, then truncated to the output's.
        // (at most 30 bits finer than the powers: the coefficients' scale).
        const int sum = std::min(vb - 1 - bits_for(yb), sb + 30);
        VEIL_REQUIRE(sum >= op.in_bits && sum - sb >= 2 && sum - sb <= 30,
                     "activation '" << op.name << "': outputs up to " << yb << " from inputs at 2^-"
                                    << op.in_bits << " leave too few bits for its coefficients");
        op.out_bits = std::min(scale_for(yb), sum);
        op.poly = mpc::PolyScales{op.in_bits, sb, sum, op.out_bits};
        op.output_bound = yb;
        break;
      }
      case nn::StageKind::kAdd: {
        op.kind = Op::Kind::kAdd;
        op.in = op.out = st.add().shape;
        double s = 0;
        for (int j : op.inputs) s += bound_of(j);
        op.output_bound = measured_out[k] > 0 ? std::min(s, measured_out[k] * options.margin) : s;
        op.out_bits = scale_for(op.output_bound);
        break;
      }
    }
    scale[k] = op.out_bits;
    bound[k] = op.output_bound;
    prog.ops.push_back(std::move(op));
  }
  return prog;
}

void set_he_shapes(Program& p) {
  for (Op& op : p.ops)
    if (op.kind == Op::Kind::kLinear) {
      auto conv = as_convolution(op);
      op.he_shape = conv ? conv->shape : bfv::ConvShape::matvec(op.linear.cols, op.linear.rows);
      op.conv_kernel = conv ? std::move(conv->kernel) : std::vector<std::int64_t>{};
    }
}

}  // namespace

nn::LowerOptions lower_options() {
  nn::LowerOptions o;
  o.fold_poly_leading = false;
  // A shift by b/a grows the values a shared fixed-point activation sees; the hybrid mode
  // has no levels to save.
  o.square_batch_norm = false;
  return o;
}

nn::Network merge_linear_runs(nn::Network in) {
  const std::size_t n = in.stages.size();
  std::vector<std::vector<int>> inputs(n);
  std::vector<char> linear(n, 0);
  std::vector<int> readers(n, 0);
  for (std::size_t k = 0; k < n; ++k) {
    inputs[k] = in.inputs_of(static_cast<int>(k));
    linear[k] = in.stages[k].is<nn::LinearStage>() ? 1 : 0;
    for (int j : inputs[k])
      if (j >= 0) ++readers[static_cast<std::size_t>(j)];
  }
  // The stages move from `in` to `net` (a CIFAR-10 model's matrices are hundreds of MB:
  // no copy of them is made here).
  std::vector<nn::Stage> old = std::move(in.stages);
  nn::Network net = std::move(in);
  net.stages.clear();
  // new_index[k]: where stage k's output lives after merging (the stage it merged into).
  std::vector<int> new_index(n, -1);
  for (std::size_t k = 0; k < n; ++k) {
    nn::Stage st = std::move(old[k]);
    st.inputs.clear();
    for (int j : inputs[k]) st.inputs.push_back(j < 0 ? -1 : new_index[static_cast<std::size_t>(j)]);
    const int prev = inputs[k].size() == 1 ? inputs[k][0] : -1;
    if (linear[k] && prev >= 0 && readers[static_cast<std::size_t>(prev)] == 1 &&
        linear[static_cast<std::size_t>(prev)] &&
        new_index[static_cast<std::size_t>(prev)] == static_cast<int>(net.stages.size()) - 1) {
      nn::Stage& host = net.stages.back();
      host.op = nn::compose(host.linear(), st.linear());
      new_index[k] = static_cast<int>(net.stages.size()) - 1;
      continue;
    }
    new_index[k] = static_cast<int>(net.stages.size());
    net.stages.push_back(std::move(st));
  }
  return net;
}

namespace {
Program lower_ring(const nn::Network& net, const ProgramOptions& options, const Ranges& ranges);
}  // namespace

namespace {

// Sets ranges.poly_input: each polynomial's input range, the model's recorded one or else
// (a stock PyTorch export records none) the largest |x| the calibration inputs brought to it
// (times the margin, as for recorded ranges), and checks what no choice of scales can fix.
void with_poly_inputs(const nn::Network& net, Ranges& ranges) {
  ranges.poly_input.assign(net.stages.size(), 0);
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const nn::Stage& st = net.stages[k];
    if (!st.is<nn::PolyStage>()) continue;
    VEIL_REQUIRE(st.poly().degree() <= 4, "activation '" << st.name() << "' has degree " << st.poly().degree()
                                                         << ": the hybrid mode evaluates degree <= 4");
    const double range = st.poly().input_range > 0 ? st.poly().input_range : ranges.stage_input[k];
    VEIL_REQUIRE(range > 0, "activation '" << st.name()
                                           << "' has no measured input range: the hybrid mode "
                                              "sizes its fixed-point scales from it (give calibration "
                                              "images: the commands take them from the installed data "
                                              "set; or export with python/train.py)");
    ranges.poly_input[k] = range;
  }
}

// True when merge_linear_runs would change the network: a linear stage whose only input is
// a linear stage read by it alone.
bool has_linear_runs(const nn::Network& net) {
  std::vector<int> readers(net.stages.size(), 0);
  for (std::size_t k = 0; k < net.stages.size(); ++k)
    for (int j : net.inputs_of(static_cast<int>(k)))
      if (j >= 0) ++readers[static_cast<std::size_t>(j)];
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const auto in = net.inputs_of(static_cast<int>(k));
    if (net.stages[k].is<nn::LinearStage>() && in.size() == 1 && in[0] >= 0 &&
        readers[static_cast<std::size_t>(in[0])] == 1 &&
        net.stages[static_cast<std::size_t>(in[0])].is<nn::LinearStage>())
      return true;
  }
  return false;
}

// The network lower() quantises: `original` itself when it needs no merging (a caller that
// merged it already, as the CLI does, pays no copy of its weights: a PreAct-ResNet-18's
// are 5.8 GB), else its merged copy, held in *merged.
const nn::Network& merged_view(const nn::Network& original, const ProgramOptions& options,
                               nn::Network* merged) {
  if (!options.merge || !has_linear_runs(original)) return original;
  *merged = merge_linear_runs(original);
  return *merged;
}

}  // namespace

Program lower(const nn::Network& original, const ProgramOptions& options) {
  return lower(original, options, nullptr);
}

Program lower(const nn::Network& original, const ProgramOptions& options, ProgramChoice* choice) {
  // One pass of the calibration inputs through the double network serves every scale tried.
  nn::Network merged;
  const nn::Network& net = merged_view(original, options, &merged);
  Ranges ranges = measure(net, options);
  with_poly_inputs(net, ranges);
  Program p = lower_ring(net, options, ranges);
  if (choice != nullptr) {
    *choice = ProgramChoice{p.prime,      p.prime2,     p.value_precision,  p.uniform_frac_bits,
                            ranges.input, ranges.stage, ranges.stage_input, p.ring_choice};
  }
  return p;
}

Program lower_from_choice(const nn::Network& original, const ProgramOptions& options,
                          const ProgramChoice& c) {
  nn::Network merged;
  const nn::Network& net = merged_view(original, options, &merged);
  VEIL_REQUIRE(c.stage_input_bound.size() == net.stages.size(),
               "the kept program choice has " << c.stage_input_bound.size()
                                              << " stage bounds; the merged network has " << net.stages.size()
                                              << " stages (another model?)");
  VEIL_REQUIRE(c.stage_bound.size() == net.stages.size(), "the kept program choice has "
                                                              << c.stage_bound.size()
                                                              << " output bounds; the merged network has "
                                                              << net.stages.size() << " stages");
  auto valid = [](double b) { return std::isfinite(b) && b >= 0; };
  VEIL_REQUIRE(valid(c.input_bound) && std::all_of(c.stage_bound.begin(), c.stage_bound.end(), valid) &&
                   std::all_of(c.stage_input_bound.begin(), c.stage_input_bound.end(), valid),
               "the kept program choice has a negative or non-finite bound");
  VEIL_REQUIRE(c.value_precision >= 1 && c.value_precision <= kMaxValueBits && c.uniform_frac_bits >= 0 &&
                   c.uniform_frac_bits <= kMaxValueBits,
               "the kept program choice has precision " << c.value_precision << " / " << c.uniform_frac_bits);
  Ranges ranges = unmeasured(net);
  ranges.input = std::max(ranges.input, c.input_bound);
  ranges.stage = c.stage_bound;
  ranges.stage_input = c.stage_input_bound;
  with_poly_inputs(net, ranges);
  ProgramOptions o = options;
  o.prime = c.prime;
  o.prime2 = c.prime2 == 0 ? kNoSecondPrime : c.prime2;
  o.value_precision = c.value_precision;
  o.uniform_frac_bits = c.uniform_frac_bits;
  Program p = lower_at(net, o, ranges);
  set_he_shapes(p);
  p.ring_choice = c.ring_choice;
  return p;
}

Bytes save_program_choice(const ProgramChoice& c) {
  ByteWriter w;
  w.u64(c.prime);
  w.u64(c.prime2);
  w.u32(static_cast<std::uint32_t>(c.value_precision));
  w.u32(static_cast<std::uint32_t>(c.uniform_frac_bits));
  w.f64(c.input_bound);
  for (const auto* v : {&c.stage_bound, &c.stage_input_bound}) {
    w.u32(static_cast<std::uint32_t>(v->size()));
    for (double b : *v) w.f64(b);
  }
  w.str(c.ring_choice);
  return w.take();
}

ProgramChoice load_program_choice(std::span<const std::uint8_t> bytes) {
  constexpr std::size_t kMaxStages = 1 << 16, kMaxText = 4096;
  ByteReader r(bytes);
  ProgramChoice c;
  c.prime = r.u64();
  c.prime2 = r.u64();
  c.value_precision = static_cast<std::int32_t>(r.u32());
  c.uniform_frac_bits = static_cast<std::int32_t>(r.u32());
  c.input_bound = r.f64();
  for (auto* v : {&c.stage_bound, &c.stage_input_bound}) {
    const std::size_t n = r.u32();
    VEIL_CHECK_IO(n <= kMaxStages, "program choice: " << n << " stages (at most " << kMaxStages << ")");
    r.need(n * sizeof(double));
    v->resize(n);
    for (double& b : *v) b = r.f64();
  }
  c.ring_choice = r.str(kMaxText);
  VEIL_CHECK_IO(r.remaining() == 0, "program choice: " << r.remaining() << " bytes after its end");
  return c;
}

namespace {

// Chooses the scales (see lower()) on the ring options.prime2 names.
Program lower_scales(const nn::Network& net, const ProgramOptions& options, const Ranges& ranges) {
  if (options.value_precision != 0) {
    Program p = lower_at(net, options, ranges);
    set_he_shapes(p);
    return p;
  }
  std::vector<ProgramOptions> candidates;
  for (int v = 18; v >= 4; --v) {
    ProgramOptions o = options;
    o.value_precision = v;
    candidates.push_back(o);
  }
  for (int f = 12; f >= 4; --f) {
    ProgramOptions o = options;
    o.value_precision = 18;  // only bounds the checks; every value sits at 2^-f
    o.uniform_frac_bits = f;
    candidates.push_back(o);
  }
  // Calibration inputs: the mean over (at most 16 of) them of the largest output error
  // against the double network. Without them, values and weights share the bits below the
  // truncation bound; take the candidate whose worse side keeps the most. Candidates are
  // independent: both cores take them.
  // Scoring costs candidates x images x the model's multiply-adds: keep it near 2^31.
  double macs = 1;
  for (const auto& st : net.stages)
    if (st.is<nn::LinearStage>()) macs += static_cast<double>(st.linear().weights.nnz());
  const std::size_t affordable = std::max<std::size_t>(
      2, static_cast<std::size_t>(2.0e9 / (static_cast<double>(candidates.size()) * macs)));
  const std::size_t scored = std::min<std::size_t>({options.calibration.size(), 16, affordable});
  std::vector<std::vector<double>> want(scored);
  parallel_for(scored, [&](std::size_t i) { want[i] = nn::evaluate(net, options.calibration[i]); });
  // Scores only: a candidate's program (a copy of every weight) is dropped as soon as it
  // is scored, and the winner is lowered again.
  std::vector<double> scores(candidates.size(), 0);
  std::vector<std::string> errors(candidates.size());
  parallel_for(candidates.size(), [&](std::size_t c) {
    const ProgramOptions& o = candidates[c];
    Program p;
    try {
      p = lower_at(net, o, ranges, /*structure=*/false);
    } catch (const std::invalid_argument& e) {
      errors[c] = e.what();
      return;
    }
    double score = 0;
    if (!want.empty()) {
      for (std::size_t i = 0; i < want.size(); ++i) {
        const auto got = evaluate_fixed_on(p, options.calibration[i], nullptr, &net);
        double worst = 0;
        for (std::size_t j = 0; j < got.size(); ++j) worst = std::max(worst, std::fabs(got[j] - want[i][j]));
        score -= worst / static_cast<double>(want.size());
      }
    } else {
      double weights = 1e9;
      for (const Op& op : p.ops)
        if (op.kind == Op::Kind::kLinear && op.linear.truncate)
          weights = std::min(weights, op.weight_precision);
      score = o.uniform_frac_bits > 0 ? -1e9 : std::min(static_cast<double>(o.value_precision), weights);
    }
    scores[c] = score;
  });
  std::string last_error;
  std::size_t best_c = 0;
  bool found = false;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    if (!errors[c].empty()) {
      last_error = errors[c];  // the most lenient failing candidate's reason is the one to report
      continue;
    }
    if (!found || scores[c] > scores[best_c]) best_c = c, found = true;
  }
  VEIL_REQUIRE(found, "no fixed-point precision keeps every truncation within the 2^-"
                          << options.sigma << " failure bound: " << last_error);
  Program best = lower_at(net, candidates[best_c], ranges);
  set_he_shapes(best);
  return best;
}

struct DisagreementPrediction {
  double estimate = 0, upper = 0;
  std::size_t inputs = 0;
};

// The disagreement estimate of lower() from the calibration inputs' top-2 margins and the
// program's errors on them: mean_i F(error_i), F the margins' distribution.
double disagreement_estimate(std::vector<double> sorted, const std::vector<double>& error) {
  const std::size_t n = sorted.size();
  std::sort(sorted.begin(), sorted.end());
  // Near 0 the margins' distribution is taken as a power law F(x) = (k / n) (x / t)^alpha
  // below t = m_(k+1), k = ceil(sqrt(n)): alpha is the maximum-likelihood (Hill) estimate
  // from the k smallest margins (ln(t / m_(i)) ~ Exp(alpha)); n = 64 inputs cannot show a
  // 0.1% tail directly, and alpha = 1 (a flat density) overstates it for confident models.
  const std::size_t k = std::min<std::size_t>(
      n - 1, std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(std::sqrt(double(n))))));
  const double t = sorted[k];
  double logs = 0;
  for (std::size_t i = 0; i < k; ++i) logs += std::log(t / std::max(sorted[i], 1e-300));
  const double alpha = t <= 0 ? 1.0 : static_cast<double>(k) / std::max(logs, 1e-300);
  // Above t the empirical distribution; a zero t (ties at the top): any error flips them.
  auto F = [&](double x) {
    if (t <= 0) return 1.0;
    if (x < t) return static_cast<double>(k) / static_cast<double>(n) * std::pow(x / t, alpha);
    return static_cast<double>(std::upper_bound(sorted.begin(), sorted.end(), x) - sorted.begin()) /
           static_cast<double>(n);
  };
  double p = 0;
  for (double d : error) p += F(d) / static_cast<double>(error.size());
  return p;
}

// Predicted top-1 disagreement of `prog` with the double network (see lower()): the
// estimate and its 95% upper bound, and the calibration inputs it was measured on.
DisagreementPrediction predicted_disagreement(const Program& prog, const nn::Network& net,
                                              const ProgramOptions& options) {
  double macs = 1;
  for (const auto& st : net.stages)
    if (st.is<nn::LinearStage>()) macs += static_cast<double>(st.linear().weights.nnz());
  // Up to 64 inputs within about 1.2e10 multiply-adds (cifar10-resnet20 at width 32: all
  // 64, about 40 s on two cores, once per model thanks to the plan cache); an earlier
  // budget of 2e9 gave that network 13, whose bound read 0.028% where the test set showed
  // 0.52%.
  const std::size_t n = std::min<std::size_t>(
      {options.calibration.size(), 64, std::max<std::size_t>(2, static_cast<std::size_t>(1.2e10 / macs))});
  std::vector<double> margin(n, 0), error(n, 0);
  parallel_for(n, [&](std::size_t i) {
    const auto want = nn::evaluate(net, options.calibration[i]);
    if (want.size() < 2) return;
    const auto got = evaluate_fixed_on(prog, options.calibration[i], nullptr, &net);
    std::size_t a = 0, b = 1;
    if (want[b] > want[a]) std::swap(a, b);
    for (std::size_t j = 2; j < want.size(); ++j) {
      if (want[j] > want[a])
        b = a, a = j;
      else if (want[j] > want[b])
        b = j;
    }
    margin[i] = want[a] - want[b];
    error[i] = std::fabs((got[a] - got[b]) - margin[i]);
  });
  DisagreementPrediction r;
  r.inputs = n;
  r.estimate = disagreement_estimate(margin, error);
  // A few dozen inputs give a noisy estimate (ResNet-20's read 0.097% where the test set
  // showed 0.72%), so the ring is chosen on its upper bound: the 95th percentile over
  // bootstrap resamples of the (margin, error) pairs. A fixed seed keeps plans repeatable;
  // this is statistics, not key material.
  constexpr int kResamples = 400;
  std::mt19937_64 g(0x5eed);
  std::uniform_int_distribution<std::size_t> pick(0, n - 1);
  std::vector<double> boot(kResamples), m(n), e(n);
  for (double& b : boot) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = pick(g);
      m[i] = margin[j], e[i] = error[j];
    }
    b = disagreement_estimate(m, e);
  }
  std::sort(boot.begin(), boot.end());
  r.upper = std::max(r.estimate, boot[static_cast<std::size_t>(0.95 * (kResamples - 1))]);
  return r;
}

std::string percent(double x) {
  std::ostringstream o;
  o.precision(x < 0.01 ? 2 : 3);
  o << 100 * x << "%";
  return o.str();
}

Program lower_ring(const nn::Network& net, const ProgramOptions& options, const Ranges& ranges) {
  ProgramOptions one = options, two = options;
  one.prime2 = kNoSecondPrime;
  if (two.prime2 == kNoSecondPrime) two.prime2 = 0;
  if (options.prime2 == kNoSecondPrime || options.ring == ShareRing::kOnePrime) {
    Program p = lower_scales(net, one, ranges);
    p.ring_choice = "one prime (asked for)";
    return p;
  }
  if (options.ring == ShareRing::kTwoPrimes) {
    Program p = lower_scales(net, two, ranges);
    p.ring_choice = "two primes (asked for)";
    return p;
  }
  std::string why;
  if (options.calibration.empty()) {
    why = "no calibration inputs to measure the one-prime program on";
  } else {
    try {
      Program p = lower_scales(net, one, ranges);
      const DisagreementPrediction d = predicted_disagreement(p, net, options);
      std::string measured = "predicted top-1 disagreement on one prime " + percent(d.estimate) +
                             ", 95% upper bound " + percent(d.upper) + " (from " + std::to_string(d.inputs) +
                             " calibration inputs' top-2 margins and their errors) ";
      if (d.inputs < kAutoRingMinInputs) {
        why = measured + "but " + std::to_string(d.inputs) + " inputs are too few to rule out a " +
              percent(1 - kAutoRingAgreement) + " tail (" + std::to_string(kAutoRingMinInputs) + " needed)";
      } else if (d.upper <= 1 - kAutoRingAgreement) {
        p.ring_choice = "one prime (auto): " + measured + "<= " + percent(1 - kAutoRingAgreement);
        return p;
      } else {
        why = measured + "> " + percent(1 - kAutoRingAgreement);
      }
    } catch (const std::invalid_argument& e) {
      why = std::string("one prime cannot hold the values: ") + e.what();
    }
  }
  Program p = lower_scales(net, two, ranges);
  p.ring_choice = "two primes (auto): " + why;
  return p;
}

}  // namespace

std::string describe(const Program& prog) {
  std::ostringstream o;
  if (prog.prime2 == 0)
    o << "share field p = " << prog.prime << " (" << std::bit_width(prog.prime) << " bits), values ";
  else
    o << "share ring Z_(p0 p1), p0 = " << prog.prime << ", p1 = " << prog.prime2 << " ("
      << std::bit_width(prog.prime) + std::bit_width(prog.prime2) << " bits), values ";
  o << (prog.uniform_frac_bits > 0 ? "at 2^-" + std::to_string(prog.uniform_frac_bits)
                                   : "with " + std::to_string(prog.value_precision) + " significant bits")
    << ", truncation failure <= 2^-" << prog.sigma << " for values below 2^" << prog.value_bits
    << ", input at 2^-" << prog.input_bits << "\n";
  for (std::size_t k = 0; k < prog.ops.size(); ++k) {
    const Op& op = prog.ops[k];
    o << "  " << k << " " << op.name << ": ";
    if (op.kind == Op::Kind::kLinear)
      o << "linear " << op.linear.cols << " -> " << op.linear.rows << ", " << op.linear.weight.size()
        << " weights at 2^-" << op.linear.weight_bits << " (" << static_cast<int>(op.weight_precision)
        << " significant bits)";
    else if (op.kind == Op::Kind::kPoly)
      o << "polynomial of degree " << op.coefficients.size() - 1 << ", powers at 2^-" << op.poly.power_bits
        << ", terms summed at 2^-" << op.poly.sum_bits;
    else
      o << "add of " << op.inputs.size();
    o << ", |output| <= " << op.output_bound << " at 2^-" << op.out_bits << "\n";
  }
  return o.str();
}

ProgramCost cost(const Program& prog) {
  ProgramCost c;
  for (const Op& op : prog.ops) {
    if (op.kind == Op::Kind::kLinear) {
      c.linear_macs += static_cast<std::int64_t>(op.linear.weight.size());
      c.masked_inputs += op.linear.cols;
      c.linear_outputs += op.linear.rows;
      c.rounds += 1;  // the client's masked input
    } else if (op.kind == Op::Kind::kPoly) {
      const auto pc = mpc::poly_cost(op.coefficients, static_cast<std::size_t>(op.out.size()));
      c.squares += static_cast<std::int64_t>(pc.squares);
      c.triples += static_cast<std::int64_t>(pc.triples);
      c.rounds += pc.rounds;
    }
  }
  c.rounds += 1;  // the server's share of the logits
  return c;
}

std::vector<double> evaluate_fixed(const Program& prog, const std::vector<double>& input,
                                   std::vector<std::vector<double>>* trace) {
  return evaluate_fixed_on(prog, input, trace, nullptr);
}

namespace {

std::vector<double> evaluate_fixed_on(const Program& prog, const std::vector<double>& input,
                                      std::vector<std::vector<double>>* trace, const nn::Network* structure) {
  VEIL_REQUIRE(static_cast<int>(input.size()) == prog.input.size(),
               "input has " << input.size() << " values, the model expects " << prog.input.size());
  std::vector<std::vector<i64>> out(prog.ops.size());
  std::vector<i64> x(input.size());
  for (std::size_t i = 0; i < input.size(); ++i) x[i] = std::llround(std::ldexp(input[i], prog.input_bits));
  auto value = [&](int j) -> const std::vector<i64>& { return j < 0 ? x : out[static_cast<std::size_t>(j)]; };
  auto scale_of = [&](int j) {
    return j < 0 ? prog.input_bits : prog.ops[static_cast<std::size_t>(j)].out_bits;
  };
  for (std::size_t k = 0; k < prog.ops.size(); ++k) {
    const Op& op = prog.ops[k];
    const auto& a = value(op.inputs.front());
    std::vector<i64>& y = out[k];
    if (op.kind == Op::Kind::kLinear) {
      const QuantLinear& q = op.linear;
      // A scale candidate's op k reads stage k's sparse structure (lower_at keeps the order).
      const bool own = structure == nullptr || !q.row_ptr.empty();
      const std::vector<std::int64_t>& row_ptr =
          own ? q.row_ptr : structure->stages[k].linear().weights.row_ptr;
      const std::vector<int>& cols = own ? q.col : structure->stages[k].linear().weights.col;
      y.resize(static_cast<std::size_t>(q.rows));
      i64 amax = 0;
      for (i64 v : a) amax = std::max(amax, v < 0 ? -v : v);
      const bool narrow = amax < (i64{1} << 31) && q.max_row_l1 < (i64{1} << 31);
      for (int r = 0; r < q.rows; ++r) {
        // 64-bit accumulation while it cannot overflow (|a| < 2^31 always holds below
        // the truncation bound; sum |w| a < 2^62), else 128-bit.
        i128 acc = q.bias[static_cast<std::size_t>(r)];
        const i64 e0 = row_ptr[static_cast<std::size_t>(r)], e1 = row_ptr[static_cast<std::size_t>(r) + 1];
        if (narrow) {
          i64 acc64 = 0;
          for (i64 e = e0; e < e1; ++e)
            acc64 += static_cast<i64>(q.weight[static_cast<std::size_t>(e)]) *
                     a[static_cast<std::size_t>(cols[static_cast<std::size_t>(e)])];
          acc += acc64;
        } else {
          for (i64 e = e0; e < e1; ++e)
            acc += static_cast<i128>(q.weight[static_cast<std::size_t>(e)]) *
                   a[static_cast<std::size_t>(cols[static_cast<std::size_t>(e)])];
        }
        y[static_cast<std::size_t>(r)] =
            rescale(static_cast<i64>(acc), op.in_bits + q.weight_bits, op.out_bits);
      }
    } else if (op.kind == Op::Kind::kPoly) {
      const auto& c = op.coefficients;
      const mpc::PolyScales& sc = op.poly;
      int d = static_cast<int>(c.size()) - 1;
      while (d > 0 && c[static_cast<std::size_t>(d)] == 0.0) --d;
      y.resize(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) {
        const int sb = sc.power_bits;
        const i64 xs = rescale(a[i], sc.in_bits, sb);
        i64 pw[5] = {0, a[i], 0, 0, 0};
        if (d >= 2) pw[2] = round_shift(xs * xs, sb);
        if (d >= 3) pw[3] = round_shift(xs * pw[2], sb);
        if (d >= 4) pw[4] = round_shift(pw[2] * pw[2], sb);
        i64 acc = c[0] != 0.0 ? std::llround(std::ldexp(c[0], sc.sum_bits)) : 0;
        for (int e = 1; e <= d; ++e)
          if (c[static_cast<std::size_t>(e)] != 0.0)
            acc += std::llround(
                       std::ldexp(c[static_cast<std::size_t>(e)], sc.sum_bits - (e == 1 ? sc.in_bits : sb))) *
                   pw[e];
        y[i] = rescale(acc, sc.sum_bits, sc.out_bits);
      }
    } else {
      y.assign(a.size(), 0);
      for (int j : op.inputs) {
        const auto& b = value(j);
        for (std::size_t i = 0; i < y.size(); ++i) y[i] += rescale(b[i], scale_of(j), op.out_bits);
      }
    }
  }
  if (trace != nullptr) {
    trace->assign(prog.ops.size(), {});
    for (std::size_t k = 0; k < prog.ops.size(); ++k)
      for (i64 v : out[k]) (*trace)[k].push_back(std::ldexp(static_cast<double>(v), -prog.ops[k].out_bits));
  }
  const auto& last = prog.ops.empty() ? x : out.back();
  std::vector<double> res(last.size());
  for (std::size_t i = 0; i < last.size(); ++i)
    res[i] = std::ldexp(static_cast<double>(last[i]), -prog.output_bits());
  return res;
}

}  // namespace

}  // namespace veil::hybrid
