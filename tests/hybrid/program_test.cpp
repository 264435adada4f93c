// Lowering a network to the hybrid program: scales that respect the truncation bound, a
// fixed-point reference that tracks the double-precision network, and named refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "hybrid/hybrid_test_util.hpp"
#include "veil/hybrid/program.hpp"
#include "veil/math/primes.hpp"
#include "veil/mpc/truncate.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::hybrid {
namespace {

std::string what_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HybridProgram, DefaultPrimeServesAsSimdPlaintextModulus) {
  const u64 p = default_prime();
  EXPECT_TRUE(math::is_prime(p));
  EXPECT_LT(p, u64{1} << 61);
  EXPECT_GT(p, u64{1} << 60);
  EXPECT_EQ(p % (u64{1} << 17), 1u);  // t = 1 mod 2N for N up to 2^16
}

// The two-prime ring's 31 more bits below the truncation bound go to the values' and the
// weights' precision: on the shipped MNIST model and sample images the fixed-point logits
// come at least 30 times closer to the double network's than over one prime.
TEST(HybridProgram, ShippedMnistModelIsMorePreciseOnTheTwoPrimeRing) {
  const test::MnistSamples s = test::mnist_samples("models/mnist-delphi.onnx");
  ProgramOptions wide, narrow;
  wide.calibration = s.images;
  narrow.calibration = s.images;
  wide.ring = ShareRing::kTwoPrimes;
  narrow.prime2 = kNoSecondPrime;
  const Program pw = lower(s.net, wide), pn = lower(s.net, narrow);
  EXPECT_EQ(pw.primes(), (std::vector<u64>{default_prime(), default_prime2()}));
  EXPECT_EQ(pn.primes(), std::vector<u64>{default_prime()});
  EXPECT_EQ(pn.value_bits, 20);
  EXPECT_GE(pw.value_bits, 50);
  double err_wide = 0, err_narrow = 0;
  for (const auto& x : s.images) {
    const auto want = nn::evaluate(merge_linear_runs(s.net), x);
    const auto a = evaluate_fixed(pw, x), b = evaluate_fixed(pn, x);
    for (std::size_t j = 0; j < want.size(); ++j) {
      err_wide = std::max(err_wide, std::fabs(a[j] - want[j]));
      err_narrow = std::max(err_narrow, std::fabs(b[j] - want[j]));
    }
  }
  std::printf("  mnist-delphi max logit error: %.2g over Z_p, %.2g over Z_(p0 p1) (%.1f bits gained)\n",
              err_narrow, err_wide, std::log2(err_narrow / err_wide));
  EXPECT_LT(err_wide * 30, err_narrow);
}

// ShareRing::kAuto keeps one prime when its program's errors are small against the
// logits' top-2 margins, and takes the ring when they are not: here the same network with
// one class far ahead (wide margins), and with two classes sharing a large bias (logits
// near 2^10 whose differences are O(1): one prime keeps too few bits below the bias).
TEST(HybridProgram, AutoRingKeepsOnePrimeOnlyWhenItIsPreciseEnough) {
  std::mt19937_64 rng(41);
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 64);
  nn::Network easy = test::residual_network(42), hard = test::residual_network(42);
  easy.stages.back().linear().bias[0] += 50;
  hard.stages.back().linear().bias[0] += 1000;
  hard.stages.back().linear().bias[1] += 1000;
  const Program pe = lower(easy, po), ph = lower(hard, po);
  std::printf("  easy: %s\n  hard: %s\n", pe.ring_choice.c_str(), ph.ring_choice.c_str());
  EXPECT_EQ(pe.primes(), std::vector<u64>{default_prime()});
  EXPECT_NE(pe.ring_choice.find("one prime (auto)"), std::string::npos);
  EXPECT_EQ(ph.primes(), (std::vector<u64>{default_prime(), default_prime2()}));
  EXPECT_NE(ph.ring_choice.find("two primes (auto)"), std::string::npos);
  // The ring does what auto expects of it on the hard model: closer logits.
  ProgramOptions one = po;
  one.ring = ShareRing::kOnePrime;
  const Program ph1 = lower(hard, one);
  double err_ring = 0, err_one = 0;
  const nn::Network merged = merge_linear_runs(hard);
  for (const auto& x : po.calibration) {
    const auto want = nn::evaluate(merged, x);
    const auto a = evaluate_fixed(ph, x), b = evaluate_fixed(ph1, x);
    for (std::size_t j = 0; j < want.size(); ++j) {
      err_ring = std::max(err_ring, std::fabs(a[j] - want[j]));
      err_one = std::max(err_one, std::fabs(b[j] - want[j]));
    }
  }
  EXPECT_LT(err_ring * 8, err_one);
  // Without calibration inputs nothing measures the one-prime program: the ring.
  EXPECT_EQ(lower(easy).primes().size(), 2u);
  // Nor can a few inputs bound a 0.1% tail, however small their errors.
  ProgramOptions few = po;
  few.calibration.resize(kAutoRingMinInputs - 1);
  const Program pf = lower(easy, few);
  EXPECT_EQ(pf.primes().size(), 2u);
  EXPECT_NE(pf.ring_choice.find("too few"), std::string::npos) << pf.ring_choice;
}

// The user's choice overrides auto both ways; kNoSecondPrime still means one prime.
TEST(HybridProgram, ShareRingOverridesAuto) {
  std::mt19937_64 rng(43);
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 32);
  nn::Network easy = test::residual_network(42), hard = test::residual_network(42);
  easy.stages.back().linear().bias[0] += 50;
  hard.stages.back().linear().bias[0] += 1000;
  hard.stages.back().linear().bias[1] += 1000;
  ProgramOptions one = po, two = po, legacy = po;
  one.ring = ShareRing::kOnePrime;
  two.ring = ShareRing::kTwoPrimes;
  legacy.prime2 = kNoSecondPrime;
  EXPECT_EQ(lower(hard, one).primes().size(), 1u);
  EXPECT_EQ(lower(hard, one).ring_choice, "one prime (asked for)");
  EXPECT_EQ(lower(hard, legacy).primes().size(), 1u);
  EXPECT_EQ(lower(easy, two).primes().size(), 2u);
  EXPECT_EQ(lower(easy, two).ring_choice, "two primes (asked for)");
  ProgramOptions none;
  none.ring = ShareRing::kOnePrime;
  EXPECT_EQ(lower(easy, none).primes().size(), 1u);
}

TEST(HybridProgram, ScalesKeepEveryTruncatedValueInsideTheBound) {
  const nn::Network net = test::residual_network(1);
  const Program prog = lower(net);
  ASSERT_EQ(prog.ops.size(), net.stages.size());
  EXPECT_EQ(prog.value_bits, mpc::max_truncation_value_bits(prog.field(), 40));
  for (const Op& op : prog.ops) {
    if (op.kind == Op::Kind::kLinear && op.linear.truncate) {
      EXPECT_GE(op.weight_precision, 2) << op.name;
      // The product W x + b, at 2^(in + fw), is what gets truncated.
      EXPECT_LT(std::log2(op.output_bound) + op.in_bits + op.linear.weight_bits, prog.value_bits) << op.name;
    } else if (op.kind == Op::Kind::kPoly) {
      EXPECT_LT(std::log2(op.output_bound) + op.poly.sum_bits, prog.value_bits) << op.name;
      EXPECT_LE(op.poly.power_bits, op.in_bits);
      const double r = op.output_bound > 0 ? 3.0 * 1.25 : 0;  // act1's measured range times the margin
      if (op.name == "act1") {
        EXPECT_LT(std::log2(r * r) + 2 * op.poly.power_bits, prog.value_bits);
      }
    }
    // V significant bits: |value| 2^out_bits stays near 2^V.
    if (prog.uniform_frac_bits == 0 && (op.kind != Op::Kind::kLinear || op.linear.truncate)) {
      EXPECT_LE(std::log2(op.output_bound) + op.out_bits, prog.value_precision + 0.01) << op.name;
    }
  }
  // The Add reads the first dense layer and the second.
  EXPECT_EQ(prog.ops[3].kind, Op::Kind::kAdd);
  EXPECT_EQ(prog.ops[3].inputs, (std::vector<int>{0, 2}));
}

TEST(HybridProgram, FixedPointTracksTheDoubleNetwork) {
  const nn::Network net = test::residual_network(2);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 30);
  const Program prog = lower(net, po);
  // Without calibration inputs the heuristic choice is coarser but still close.
  const Program heuristic = lower(net);
  double worst = 0, worst_heuristic = 0;
  for (int t = 0; t < 20; ++t) {
    std::vector<double> x(16);
    for (auto& v : x) v = u(rng);
    const auto want = nn::evaluate(net, x);
    const auto got = evaluate_fixed(prog, x);
    const auto got_h = evaluate_fixed(heuristic, x);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::fabs(got[i] - want[i]));
      worst_heuristic = std::max(worst_heuristic, std::fabs(got_h[i] - want[i]));
    }
  }
  // 8 fractional bits: a few units of 2^-8 through three layers.
  EXPECT_LT(worst, 0.1);
  EXPECT_LT(worst_heuristic, 0.3);
  EXPECT_GT(worst, 0.0);  // it is a fixed-point computation, not the double one
}

// The trace names where the error enters: op k's output against stage k of the merged
// network, each close to it, the last one the logits.
TEST(HybridProgram, FixedPointTraceFollowsTheMergedNetworkOpByOp) {
  const nn::Network net = test::residual_network(4);
  std::mt19937_64 rng(5);
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 20);
  const Program prog = lower(net, po);
  const nn::Network merged = merge_linear_runs(net);
  ASSERT_EQ(prog.ops.size(), merged.stages.size());
  for (const auto& x : test::random_inputs(rng, 5)) {
    std::vector<std::vector<double>> trace;
    const auto out = evaluate_fixed(prog, x, &trace);
    nn::PlainTrace plain;
    nn::evaluate(merged, x, &plain);
    ASSERT_EQ(trace.size(), prog.ops.size());
    EXPECT_EQ(trace.back(), out);
    for (std::size_t k = 0; k < trace.size(); ++k) {
      SCOPED_TRACE(prog.ops[k].name);
      ASSERT_EQ(trace[k].size(), plain.stage_outputs[k].size());
      // Each op's error: its own rounding plus what earlier ops passed on, a small
      // fraction of the bound its scale was chosen for (a wrong scale would be off by 2x).
      const double tolerance = 0.02 * std::max(prog.ops[k].output_bound, 1.0);
      for (std::size_t i = 0; i < trace[k].size(); ++i)
        EXPECT_NEAR(trace[k][i], plain.stage_outputs[k][i], tolerance);
    }
  }
}

// A network merged beforehand (the CLI merges its own, so that lowering copies no weight)
// lowers to the program its unmerged form gives: the same ops, weights and scales.
TEST(HybridProgram, AMergedNetworkLowersToTheSameProgram) {
  nn::Network net = test::residual_network(6);
  std::mt19937_64 rng(7);
  net.stages.push_back(test::dense("fc4", 10, 10, rng, 0.3));  // a run to merge
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 20);
  ProgramChoice choice;
  const Program want = lower(net, po, &choice);
  const nn::Network merged = merge_linear_runs(net);
  ASSERT_LT(merged.stages.size(), net.stages.size());
  for (const Program& got : {lower(merged, po), lower_from_choice(merged, po, choice)}) {
    ASSERT_EQ(got.ops.size(), want.ops.size());
    EXPECT_EQ(got.value_precision, want.value_precision);
    EXPECT_EQ(got.prime2, want.prime2);
    for (std::size_t k = 0; k < want.ops.size(); ++k) {
      SCOPED_TRACE(want.ops[k].name);
      EXPECT_EQ(got.ops[k].linear.weight, want.ops[k].linear.weight);
      EXPECT_EQ(got.ops[k].linear.bias, want.ops[k].linear.bias);
      EXPECT_EQ(got.ops[k].conv_kernel, want.ops[k].conv_kernel);
      EXPECT_EQ(got.ops[k].in_bits, want.ops[k].in_bits);
      EXPECT_EQ(got.ops[k].out_bits, want.ops[k].out_bits);
    }
    EXPECT_EQ(evaluate_fixed(got, po.calibration[0]), evaluate_fixed(want, po.calibration[0]));
  }
}

// merge = false (the benchmark's baseline) keeps every linear stage its own op; the
// default merges a run of linear stages into one. Both compute the same network.
TEST(HybridProgram, MergeCanBeTurnedOffForTheBaseline) {
  nn::Network net = test::residual_network(6);
  std::mt19937_64 rng(7);
  // A linear run: a second dense layer straight after the last one.
  net.stages.push_back(test::dense("fc4", 10, 10, rng, 0.3));
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 20);
  const Program merged = lower(net, po);
  po.merge = false;
  const Program unmerged = lower(net, po);
  EXPECT_EQ(unmerged.ops.size(), net.stages.size());
  EXPECT_EQ(merged.ops.size(), net.stages.size() - 1);
  for (const auto& x : test::random_inputs(rng, 3)) {
    const auto want = nn::evaluate(net, x), a = evaluate_fixed(merged, x), b = evaluate_fixed(unmerged, x);
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(a[i], want[i], 0.1);
      EXPECT_NEAR(b[i], want[i], 0.1);
    }
  }
}

TEST(HybridProgram, CalibrationSuppliesMissingActivationRanges) {
  // A stock export records no ranges: calibration inputs measure them.
  nn::Network net = test::residual_network(6);
  net.stages[1].poly().input_range = 0;
  ProgramOptions po;
  std::mt19937_64 rng(8);
  po.calibration = test::random_inputs(rng, 20);
  const Program prog = lower(net, po);
  double measured = 0;
  for (const auto& x : po.calibration) {
    nn::PlainTrace trace;
    nn::evaluate(net, x, &trace);
    measured = std::max(measured, trace.max_abs_input[1]);
  }
  // fc1's output bound is act1's range (measured) times the margin.
  EXPECT_NEAR(prog.ops[0].output_bound, measured * 1.25, 1e-9);
}

// Every field of two programs, weights included.
void expect_same_program(const Program& a, const Program& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.input.size(), b.input.size());
  EXPECT_EQ(a.mean, b.mean);
  EXPECT_EQ(a.std, b.std);
  EXPECT_EQ(a.classes, b.classes);
  EXPECT_EQ(a.primes(), b.primes());
  EXPECT_EQ(a.value_precision, b.value_precision);
  EXPECT_EQ(a.uniform_frac_bits, b.uniform_frac_bits);
  EXPECT_EQ(a.sigma, b.sigma);
  EXPECT_EQ(a.value_bits, b.value_bits);
  EXPECT_EQ(a.input_bits, b.input_bits);
  EXPECT_EQ(a.ring_choice, b.ring_choice);
  ASSERT_EQ(a.ops.size(), b.ops.size());
  for (std::size_t k = 0; k < a.ops.size(); ++k) {
    SCOPED_TRACE("op " + std::to_string(k));
    const Op &x = a.ops[k], &y = b.ops[k];
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_EQ(x.in.size(), y.in.size());
    EXPECT_EQ(x.out.size(), y.out.size());
    EXPECT_EQ(x.linear.row_ptr, y.linear.row_ptr);
    EXPECT_EQ(x.linear.col, y.linear.col);
    EXPECT_EQ(x.linear.weight, y.linear.weight);
    EXPECT_EQ(x.linear.bias, y.linear.bias);
    EXPECT_EQ(x.linear.weight_bits, y.linear.weight_bits);
    EXPECT_EQ(x.linear.truncate, y.linear.truncate);
    EXPECT_EQ(x.linear.max_row_l1, y.linear.max_row_l1);
    EXPECT_EQ(x.he_shape.in_channels, y.he_shape.in_channels);
    EXPECT_EQ(x.he_shape.out_channels, y.he_shape.out_channels);
    EXPECT_EQ(x.he_shape.kernel_h, y.he_shape.kernel_h);
    EXPECT_EQ(x.coefficients, y.coefficients);
    EXPECT_EQ(x.poly.in_bits, y.poly.in_bits);
    EXPECT_EQ(x.poly.power_bits, y.poly.power_bits);
    EXPECT_EQ(x.poly.sum_bits, y.poly.sum_bits);
    EXPECT_EQ(x.poly.out_bits, y.poly.out_bits);
    EXPECT_EQ(x.in_bits, y.in_bits);
    EXPECT_EQ(x.out_bits, y.out_bits);
    EXPECT_EQ(x.output_bound, y.output_bound);
    EXPECT_EQ(x.weight_precision, y.weight_precision);
  }
}

// What lower() decided, kept in bytes (cli/plan_cache) and rebuilt without calibrating
// again, is the program lower() made: on both rings, with the Add's bound and the logits'
// bound from calibration, with an activation range the model did not record (a stock
// export), on a shipped model, and without calibration inputs.
TEST(HybridProgram, KeptChoiceRebuildsTheSameProgram) {
  std::mt19937_64 rng(44);
  nn::Network easy = test::residual_network(42), hard = test::residual_network(42), stock = easy;
  easy.stages.back().linear().bias[0] += 50;
  hard.stages.back().linear().bias[0] += 1000;
  hard.stages.back().linear().bias[1] += 1000;
  stock.stages[1].poly().input_range = 0;
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 64);
  const test::MnistSamples s = test::mnist_samples("models/mnist-delphi.onnx");
  ProgramOptions mnist;
  mnist.calibration = s.images;
  struct Case {
    const char* what;
    const nn::Network* net;
    ProgramOptions options;
    std::size_t primes;
  };
  for (const Case& c :
       {Case{"one prime (auto)", &easy, po, 1}, Case{"two primes (auto)", &hard, po, 2},
        Case{"stock export", &stock, po, 0}, Case{"no calibration", &easy, ProgramOptions{}, 2},
        Case{"mnist-delphi", &s.net, mnist, 0}}) {
    SCOPED_TRACE(c.what);
    ProgramChoice choice;
    const Program made = lower(*c.net, c.options, &choice);
    if (c.primes != 0) {
      EXPECT_EQ(made.primes().size(), c.primes);
    }
    const ProgramChoice back = load_program_choice(save_program_choice(choice));
    // No calibration inputs at all: nothing to measure, yet the program is the same.
    expect_same_program(made, lower_from_choice(*c.net, ProgramOptions{}, back));
    // The kept bounds matter: without them the logits' bound is interval propagation's.
    ProgramChoice loose = back;
    std::fill(loose.stage_bound.begin(), loose.stage_bound.end(), 0.0);
    if (!c.options.calibration.empty()) {
      EXPECT_NE(lower_from_choice(*c.net, ProgramOptions{}, loose).ops.back().output_bound,
                made.ops.back().output_bound);
    }
  }
}

// A choice that does not fit the network, or whose bytes are damaged, is refused by name.
TEST(HybridProgram, KeptChoiceThatDoesNotFitIsRefused) {
  std::mt19937_64 rng(45);
  const nn::Network net = test::residual_network(42);
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 16);
  ProgramChoice choice;
  lower(net, po, &choice);
  auto refused = [&](const std::function<void(ProgramChoice&)>& change, const std::string& fragment) {
    ProgramChoice c = choice;
    change(c);
    const std::string what = what_of([&] { lower_from_choice(net, {}, c); });
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
  };
  refused([](ProgramChoice& c) { c.stage_bound.pop_back(); }, "output bounds");
  refused([](ProgramChoice& c) { c.stage_input_bound.push_back(1); }, "another model?");
  refused([](ProgramChoice& c) { c.stage_bound[2] = -1; }, "negative or non-finite");
  refused([](ProgramChoice& c) { c.input_bound = std::nan(""); }, "negative or non-finite");
  refused([](ProgramChoice& c) { c.value_precision = 0; }, "precision");
  refused([](ProgramChoice& c) { c.prime = 12; }, "is not a prime");
  // A bound far beyond what was measured cannot meet the truncation bound: refused, not
  // quantised into a program that fails.
  refused([](ProgramChoice& c) { c.stage_bound[2] = 1e30; }, "'fc2'");
  const Bytes bytes = save_program_choice(choice);
  EXPECT_NE(what_of([&] { load_program_choice(Bytes(bytes.begin(), bytes.end() - 1)); }).find("truncated"),
            std::string::npos);
  Bytes longer = bytes;
  longer.push_back(0);
  EXPECT_NE(what_of([&] { load_program_choice(longer); }).find("after its end"), std::string::npos);
  Bytes huge = bytes;
  huge[8 + 8 + 4 + 4 + 8 + 3] = 0x7f;  // the first count's high byte
  EXPECT_NE(what_of([&] { load_program_choice(huge); }).find("stages (at most"), std::string::npos);
}

TEST(HybridProgram, CostCountsRoundsAndMaterial) {
  const Program prog = lower(test::residual_network(4));
  const ProgramCost c = cost(prog);
  EXPECT_EQ(c.squares, 24 + 2 * 24);  // act1: x^2; act2: x^2 and x^4
  EXPECT_EQ(c.triples, 24);           // act2: x^3
  EXPECT_EQ(c.masked_inputs, 16 + 24 + 24);
  EXPECT_EQ(c.linear_outputs, 24 + 24 + 10);
  EXPECT_EQ(c.rounds, 3 + 1 + 2 + 1);  // three masked inputs, act1, act2, the output
}

TEST(HybridProgram, RefusesWhatItCannotEvaluateWithNamedErrors) {
  nn::Network net = test::residual_network(5);
  net.stages[1].poly().input_range = 0;
  EXPECT_NE(what_of([&] { lower(net); }).find("'act1' has no measured input range"), std::string::npos);

  net = test::residual_network(5);
  net.stages[4].poly().coefficients.push_back(0.001);
  EXPECT_NE(what_of([&] { lower(net); }).find("'act2' has degree 5"), std::string::npos);

  net = test::residual_network(5);
  net.stages[1].poly().input_range = 1000;  // x^2 = 1.5e6 is beyond 2^20 at any scale
  ProgramOptions narrow;
  narrow.prime2 = kNoSecondPrime;
  EXPECT_NE(what_of([&] { lower(net, narrow); }).find("'act1': inputs up to 1250"), std::string::npos)
      << what_of([&] { lower(net, narrow); });
  // The two-prime ring holds it (2^51 below the bound), but not 1.5e18.
  EXPECT_EQ(what_of([&] { lower(net); }), "(no error)");
  net.stages[1].poly().input_range = 1e9;
  EXPECT_NE(what_of([&] { lower(net); }).find("'act1': inputs up to 1.25e+09"), std::string::npos)
      << what_of([&] { lower(net); });

  net = test::residual_network(5);
  ProgramOptions o;
  o.prime = 1000003;
  o.prime2 = kNoSecondPrime;
  EXPECT_NE(what_of([&] { lower(net, o); }).find("no room below the truncation bound"), std::string::npos)
      << what_of([&] { lower(net, o); });
  o.prime = 12;
  EXPECT_NE(what_of([&] { lower(net, o); }).find("is not a prime"), std::string::npos);
}

}  // namespace
}  // namespace veil::hybrid
