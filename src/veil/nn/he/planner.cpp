#include "veil/nn/he/planner.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include "veil/ckks/ring_switch.hpp"
#include "veil/common/error.hpp"
#include "veil/he/polynomial.hpp"
#include "veil/math/cpu.hpp"
#include "veil/math/primes.hpp"
#include "veil/nn/passes.hpp"

namespace veil::nn {

namespace {

struct Chain {
  int scale_bits = 0, base_bits = 0, dnum = 0;
  std::vector<int> p_bits;
  double log_qp = 0;
};

// Special primes as large as the largest digit (the base prime sits in digit 0), each at
// most 50 bits: the NTT and multiply kernels of both SIMD paths (AVX2's double-precision
// FMA, AVX-512's IFMA) take primes below 2^50, and a larger prime falls back to scalar
// code or 64-bit emulation. Measured on cifar10-shallow (AVX2): five 56-bit special
// primes left a quarter of every key switch's NTTs scalar; six 46-bit ones cost one limb
// more and no scalar NTT.
// On AVX2 without AVX-512, chains of primes up to 30 bits take 30-bit special primes too:
// the 32-bit-lane kernels (NTT, key-switching inner product, base conversion) run about
// twice as fast as the double-precision ones, which more than pays for the extra limbs
// (cifar10-shallow: nine 30-bit primes instead of six of 44 bits, 5% faster per image,
// the same resident memory). IFMA's cost does not depend on the prime's size below 2^50,
// so AVX-512 keeps fewer, wider primes. Where the narrow primes would not fit the ring's
// security bound at some number of digits and the wider ones would, the wider ones win:
// a larger ring or more digits costs more than the narrow kernels save (mnist-cryptonets
// keeps N = 2^13).
std::vector<int> special_bit_limits(int scale_bits) {
  if (scale_bits <= 30 && math::simd_level() == math::SimdLevel::kAvx2) return {30, 50};
  return {50};
}

std::vector<int> special_bits(int depth, int scale_bits, int base_bits, int dnum, int max_bits) {
  const int limbs = depth + 1;
  const int alpha = rlwe::key_switch_digit_size(static_cast<std::size_t>(limbs), dnum);
  const int digit = base_bits + (alpha - 1) * scale_bits;
  const int count = (digit + max_bits - 1) / max_bits;
  std::vector<int> bits(count, (digit + count - 1) / count);
  for (int& b : bits) b = std::max(b, 30);
  return bits;
}

std::optional<Chain> fit_chain(int log_n, int depth, const PlanOptions& o) {
  const auto bound = rlwe::max_log_qp_128(log_n);
  if (!bound && !o.allow_insecure) return std::nullopt;
  const double limit = o.allow_insecure ? 1e9 : *bound;
  for (int s = o.target_scale_bits; s >= o.min_scale_bits; --s) {
    // Primes must be = 1 mod 2N and a data prime needs a few bits above 2N.
    if (s < log_n + 4) break;
    // Enough distinct primes = 1 mod 2N near 2^s for the whole chain? (Fewer exist at
    // smaller sizes, so stop at the first size that has too few.)
    try {
      math::generate_ntt_primes(s, static_cast<std::size_t>(depth), std::uint64_t{2} << log_n);
    } catch (const std::invalid_argument&) {
      break;
    }
    const int b0 = std::min(60, s + o.headroom_bits);
    for (int dnum = 1; dnum <= depth + 1; ++dnum) {
      for (int max_bits : special_bit_limits(s)) {
        const auto p = special_bits(depth, s, b0, dnum, max_bits);
        if (std::any_of(p.begin(), p.end(), [](int b) { return b > 60; })) continue;
        double total = b0 + static_cast<double>(depth) * s;
        for (int b : p) total += b;
        if (total <= limit) return Chain{s, b0, dnum, p, total};
      }
    }
  }
  return std::nullopt;
}

// Seconds for one NTT of one limb at this ring degree, from the kernels' measured cost per
// butterfly level (docs/benchmarks.md, veil_kernels_bench at 2^15 and 2^16: 334 us scalar,
// 113 us AVX2, 42.7 us AVX-512 IFMA at 2^15). A constant per kernel level rather than a
// timing at plan time: the plan (where to switch rings, which layouts) must not change
// from one run to the next with the machine's noise, which on these virtual machines
// moved the chosen ring switch between three stages.
double ntt_seconds(int log_n) {
  double per_coefficient_level = 6.8e-10;  // scalar
  switch (math::simd_level()) {
    case math::SimdLevel::kAvx512:
      per_coefficient_level = 8.7e-11;  // the AVX-512 level implies IFMA (math/cpu.hpp)
      break;
    case math::SimdLevel::kAvx2:
      per_coefficient_level = 2.4e-10;
      break;
    case math::SimdLevel::kScalar:
      break;
  }
  return per_coefficient_level * std::ldexp(1.0, log_n) * log_n;
}

std::uint64_t poly_bytes(const ckks::CkksParameters& p, int level, bool with_special) {
  double bits = 0;
  for (int i = 0; i <= level; ++i) bits += std::ceil(std::log2(static_cast<double>(p.q[i])));
  if (with_special)
    for (auto q : p.p) bits += std::ceil(std::log2(static_cast<double>(q)));
  return static_cast<std::uint64_t>(bits * static_cast<double>(p.n()) / 8);
}

int digits_at(const ckks::CkksParameters& p, int level) {
  const int alpha = rlwe::key_switch_digit_size(p.q.size(), p.dnum);
  return rlwe::key_switch_digits(level, alpha);
}

// Key switch at `level`, in NTTs: inverse NTT of the input, one NTT per digit for each
// target limb, modulus lowering; base conversions cost about as much again.
double keyswitch_ntts(const ckks::CkksParameters& p, int level) {
  const double l = level + 1, k = static_cast<double>(p.p.size());
  return 2.0 * (l + digits_at(p, level) * (l + k) + 2 * k + 2 * l);
}

// Growth of an absolute error through each stage. CKKS errors in different slots are
// independent and zero-mean, so a linear stage grows them by its largest row l2 norm
// (not the worst-case l1 norm); a polynomial by the largest |p'(x)| on its input range.
double linear_gain(const LinearStage& st) {
  double g = 0;
  for (int r = 0; r < st.weights.rows; ++r) {
    double s = 0;
    for (auto k = st.weights.row_ptr[r]; k < st.weights.row_ptr[r + 1]; ++k)
      s += st.weights.val[k] * st.weights.val[k];
    g = std::max(g, std::sqrt(s));
  }
  return g;
}

double poly_gain(const PolyStage& st) {
  const double r = st.input_range > 0 ? st.input_range : 8.0;
  double g = 0;
  for (std::size_t k = 1; k < st.coefficients.size(); ++k)
    g += static_cast<double>(k) * std::abs(st.coefficients[k]) * std::pow(r, static_cast<double>(k - 1));
  return g;
}

// What the planner reads of each stage's weights, worked out once per plan (a pass over
// every weight: the predictions and magnitude checks run for each ring and candidate).
struct StageBounds {
  std::vector<double> gain;        // error growth (linear_gain, poly_gain)
  std::vector<double> max_weight;  // largest |weight| and |bias| of linear stages
  std::vector<double> max_bias;
};

StageBounds stage_bounds(const Network& net) {
  StageBounds b;
  const std::size_t count = net.stages.size();
  b.gain.assign(count, 0), b.max_weight.assign(count, 0), b.max_bias.assign(count, 0);
  for (std::size_t k = 0; k < count; ++k) {
    const Stage& st = net.stages[k];
    if (st.is<PolyStage>()) b.gain[k] = poly_gain(st.poly());
    if (!st.is<LinearStage>()) continue;
    const LinearStage& l = st.linear();
    b.gain[k] = linear_gain(l);
    for (double v : l.weights.val) b.max_weight[k] = std::max(b.max_weight[k], std::abs(v));
    for (double v : l.bias) b.max_bias[k] = std::max(b.max_bias[k], std::abs(v));
  }
  return b;
}

// Predicted absolute error of the logits: fresh encryption and every rescale add about
// 8 sqrt(N) / scale; stages grow what came before.
double predict_logit_error(const Network& net, const StageBounds& bounds, int log_n, double scale) {
  const double fresh = 8.0 * std::sqrt(static_cast<double>(std::size_t{1} << log_n)) / scale;
  // Per stage; an Add sums its inputs' errors (no rescale of its own).
  std::vector<double> err(net.stages.size());
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const Stage& st = net.stages[k];
    const std::vector<int> inputs = net.inputs_of(static_cast<int>(k));
    if (st.is<AddStage>()) {
      err[k] = 0;
      for (int src : inputs) err[k] += src < 0 ? fresh : err[src];
      continue;
    }
    const double in = inputs[0] < 0 ? fresh : err[inputs[0]];
    err[k] = in * bounds.gain[k] + fresh;
  }
  return err.back();
}

// log2 of the modulus Q_level (the product of the data primes up to `level`).
double log2_q(const ckks::CkksParameters& p, int level) {
  double b = 0;
  for (int i = 0; i <= level && i < static_cast<int>(p.q.size()); ++i)
    b += std::log2(static_cast<double>(p.q[i]));
  return b;
}

// Refuses a network whose weights or predicted intermediate values do not fit the plan's
// plaintext range, naming the layer: a value v at scale D is held as v*D modulo Q_level, so
// |v| * D must stay below Q_level / 2 (else it wraps around and decrypts to garbage, with
// no error anywhere), and an encoded weight below 2^62 (the encoder's integer range).
// Intermediates are predicted where the network says how large they get: the measured
// input range of each activation (PolyStage::input_range) and its output at that range.
// The logits are not bounded here (a worst-case l1 bound refuses sound models: the toy
// test network's reaches 2,600 where 1,024 fit); `veil infer` and `veil eval` compare
// them with the plaintext model's instead (cli require_agreement).
void check_magnitudes(const Network& net, const StageBounds& bounds, const Plan& plan) {
  const auto& p = plan.params;
  const double log_scale = std::log2(p.scale);
  // Largest |v| that fits at `level`, one bit of margin for the noise.
  const auto room = [&](int level) { return std::exp2(log2_q(p, level) - log_scale - 2); };
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const Stage& st = net.stages[k];
    const StagePlan& sp = plan.stages[k];
    if (st.is<LinearStage>()) {
      const LinearStage& l = st.linear();
      const double w = bounds.max_weight[k], b = bounds.max_bias[k];
      const double max_weight = std::min(std::exp2(62 - log_scale), room(sp.level_in));
      VEIL_REQUIRE(w < max_weight, "layer '" << l.name << "': a weight of magnitude " << w
                                             << " does not fit the encrypted evaluation (at scale 2^"
                                             << log_scale << " weights must stay below " << max_weight
                                             << "); rescale the layer or fix the model file");
      VEIL_REQUIRE(b < room(sp.level_out), "layer '" << l.name << "': a bias of magnitude " << b
                                                     << " does not fit the plaintext range at level "
                                                     << sp.level_out << " (below " << room(sp.level_out)
                                                     << " at scale 2^" << log_scale << ")");
    } else if (st.is<PolyStage>()) {
      const PolyStage& poly = st.poly();
      for (double c : poly.coefficients)
        VEIL_REQUIRE(std::abs(c) < std::exp2(62 - log_scale),
                     "activation '" << poly.name << "': coefficient " << c << " is too large to encode");
      if (poly.input_range <= 0) continue;
      VEIL_REQUIRE(poly.input_range < room(sp.level_in),
                   "activation '" << poly.name << "': its inputs reach " << poly.input_range
                                  << " (measured), beyond the plaintext range at level " << sp.level_in
                                  << " (below " << room(sp.level_in) << " at scale 2^" << log_scale << ")");
      double out = 0;
      for (std::size_t i = 0; i < poly.coefficients.size(); ++i)
        out += std::abs(poly.coefficients[i]) * std::pow(poly.input_range, static_cast<double>(i));
      VEIL_REQUIRE(out < room(sp.level_out),
                   "activation '" << poly.name << "': its outputs may reach " << out << " (inputs up to "
                                  << poly.input_range << "), beyond the plaintext range at level "
                                  << sp.level_out << " (below " << room(sp.level_out) << ")");
    }
  }
}

// Fills in a plan whose mode, packing, slots and depth are set: the parameters from
// `chain`, every stage's levels and predicted time, the rotation keys of each ring, the
// sizes; then checks the magnitudes. Throws std::invalid_argument when a ring switch's
// smaller ring cannot hold its levels securely.
void finish_plan(Plan& plan, const Network& net, const StageBounds& bounds, const PlanOptions& o,
                 const Chain& chain, int log_n) {
  const PackingMode& mode = plan.packing_mode();
  std::vector<int> q_bits = {chain.base_bits};
  q_bits.insert(q_bits.end(), plan.depth, chain.scale_bits);
  plan.params = ckks::CkksParameters::create(log_n, q_bits, chain.p_bits, chain.scale_bits, chain.dnum,
                                             o.allow_insecure);
  const int top = plan.params.max_level();
  plan.stages.clear();
  plan.predicted_seconds = 0;
  plan.conjugation_key_level = plan.small_conjugation_key_level = -1;

  // Levels, rotation keys (at the highest level each step is used), predictions. After a
  // ring switch the stages run in the smaller ring: its parameters, its NTT, its keys.
  const int switch_after = plan.packing.switch_after;
  const double big_ntt = ntt_seconds(log_n);
  const double small_ntt = switch_after >= 0 ? ntt_seconds(log_n - 1) : 0;
  const double mac_seconds = 0.7e-9;  // one 64x64->128 multiply-accumulate
  std::map<int, int> key_level, small_key_level;
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const bool small = switch_after >= 0 && static_cast<int>(k) > switch_after;
    const ckks::CkksParameters& p = small ? *plan.small_params : plan.params;
    const double ntt = small ? small_ntt : big_ntt;
    const double n = static_cast<double>(p.n());
    const Stage& st = net.stages[k];
    const std::vector<int> inputs = net.inputs_of(static_cast<int>(k));
    const auto level_of = [&](int src) { return src < 0 ? top : plan.stages[src].level_out; };
    StagePlan sp;
    int level = level_of(inputs[0]);
    if (st.is<AddStage>()) {
      // The inputs meet at the lowest one's level: the others drop levels (free, and
      // exact: every stage returns its result to the plan's scale, so no correction).
      sp.name = st.add().name;
      int high = level;
      for (int src : inputs) level = std::min(level, level_of(src)), high = std::max(high, level_of(src));
      sp.dropped_levels = high - level;
      sp.level_in = sp.level_out = level;
      plan.stages.push_back(sp);
      continue;
    }
    sp.level_in = level;
    const int elements = net.output_size(inputs[0]);  // throughput: ciphertexts entering the stage
    const double l = level + 1;
    if (st.is<PolyStage>()) {
      sp.name = st.poly().name;
      const int depth = he::polynomial_depth(st.poly().coefficients);
      // One multiply-relinearise per ciphertext and level.
      const int cts = mode.stage_ciphertexts(plan, k, elements);
      sp.predicted_seconds = cts * depth * (keyswitch_ntts(p, level) * ntt + 4 * l * n * mac_seconds);
      level -= depth;
    } else {
      sp.name = st.linear().name;
      const LinearCost c = mode.linear_cost(plan, net, k);
      sp.counts = c.counts;
      // Maps with weights pair their diagonals (EncryptedNetwork): the ring's conjugation key.
      if (mode.has_layouts() && sp.counts.plaintext_mults > 0) {
        int& lv = small ? plan.small_conjugation_key_level : plan.conjugation_key_level;
        lv = std::max(lv, level);
      }
      for (int r : c.rotation_steps) {
        int& lv = (small ? small_key_level : key_level)[r];
        lv = std::max(lv, level);
      }
      sp.predicted_seconds = c.keyswitches * keyswitch_ntts(p, level) * ntt +
                             static_cast<double>(c.macs) * 2 * l * n * mac_seconds;
      level -= sp.counts.levels;
    }
    sp.level_out = level;
    if (static_cast<int>(k) == switch_after) {
      // The smaller ring holds the chain's levels 0..level (throws when its bound does not).
      plan.small_params = ckks::ring_switch_target(plan.params, level);
      // One key switch per block, over the small ring's primes at this degree.
      sp.predicted_seconds +=
          plan.packing.stages[k].out.blocks() * keyswitch_ntts(*plan.small_params, level) * ntt;
    }
    plan.predicted_seconds += sp.predicted_seconds;
    plan.stages.push_back(sp);
  }
  plan.rotation_steps.clear();
  plan.rotation_key_levels.clear();
  plan.small_rotation_steps.clear();
  plan.small_rotation_key_levels.clear();
  for (auto [step, lv] : key_level) {
    plan.rotation_steps.push_back(step);
    plan.rotation_key_levels.push_back(lv);
  }
  for (auto [step, lv] : small_key_level) {
    plan.small_rotation_steps.push_back(step);
    plan.small_rotation_key_levels.push_back(lv);
  }
  const auto& p = plan.params;
  plan.predicted_precision_bits = -std::log2(predict_logit_error(net, bounds, p.log_n, p.scale));
  check_magnitudes(net, bounds, plan);

  // Sizes as sent: keys and fresh ciphertexts seed-compressed (half), results full.
  plan.relin_key_bytes = digits_at(p, top) * poly_bytes(p, top, true);
  plan.galois_key_bytes = 0;
  for (int lv : plan.rotation_key_levels) plan.galois_key_bytes += digits_at(p, lv) * poly_bytes(p, lv, true);
  if (plan.conjugation_key_level >= 0)
    plan.galois_key_bytes +=
        digits_at(p, plan.conjugation_key_level) * poly_bytes(p, plan.conjugation_key_level, true);
  plan.ring_switch_key_bytes = 0;
  if (plan.small_params) {
    const auto& sp = *plan.small_params;
    const int small_top = sp.max_level();
    plan.relin_key_bytes += digits_at(sp, small_top) * poly_bytes(sp, small_top, true);
    for (int lv : plan.small_rotation_key_levels)
      plan.galois_key_bytes += digits_at(sp, lv) * poly_bytes(sp, lv, true);
    if (plan.small_conjugation_key_level >= 0)
      plan.galois_key_bytes += digits_at(sp, plan.small_conjugation_key_level) *
                               poly_bytes(sp, plan.small_conjugation_key_level, true);
    // Over the small ring's primes at the large degree.
    ckks::CkksParameters w = sp;
    w.log_n = p.log_n;
    plan.ring_switch_key_bytes = digits_at(w, small_top) * poly_bytes(w, small_top, true);
  }
  const std::uint64_t in_cts = mode.input_ciphertexts(plan, net.input);
  const std::uint64_t out_cts = mode.output_ciphertexts(plan, net.num_outputs());
  plan.input_bytes = in_cts * poly_bytes(p, top, false);
  plan.output_bytes = out_cts * 2 * poly_bytes(plan.result_params(), 0, false);
}

// The same plan with a ring switch after the linear stage that makes it fastest, or
// nullopt when none is predicted to beat it by 5%. Chains only (an Add's inputs would
// have to meet in one ring), after stages at levels the smaller ring holds securely; the
// candidates share the layout search of the stages before them.
std::optional<Plan> with_ring_switch(const Plan& plain, const Network& net, const StageBounds& bounds,
                                     const PlanOptions& o, int log_n) {
  if (log_n <= 12 && !o.allow_insecure) return std::nullopt;
  for (const Stage& st : net.stages)
    if (st.is<AddStage>()) return std::nullopt;
  const int count = static_cast<int>(net.stages.size());
  const int forced = o.ring_switch_after - 1;
  VEIL_REQUIRE(forced < count, "no stage " << o.ring_switch_after << " to switch rings after (the model has "
                                           << count << ")");
  // The highest level the smaller ring holds at 128-bit security.
  int top_small = -1;
  for (int l = plain.params.max_level(); l >= 0 && top_small < 0; --l) {
    try {
      ckks::ring_switch_target(plain.params, l);
      top_small = l;
    } catch (const std::invalid_argument&) {
    }
  }
  // Weighted linear stages (a sum pool would take a level to end in the smaller ring)
  // followed by another linear stage, at levels the smaller ring holds.
  std::vector<int> candidates;
  for (int k = 0; k + 1 < count; ++k) {
    if (forced >= 0) {
      if (k == forced) candidates.push_back(k);
      continue;
    }
    if (!net.stages[k].is<LinearStage>() || plain.packing.stages[k].spec.unit) continue;
    if (plain.stages[k].level_out > top_small) continue;
    bool later_linear = false;
    for (int j = k + 1; j < count; ++j) later_linear = later_linear || net.stages[j].is<LinearStage>();
    if (later_linear) candidates.push_back(k);
  }
  if (forced >= 0 && candidates.empty())
    VEIL_REQUIRE(false, "cannot switch rings after stage " << forced + 1 << ": it is the last stage");
  if (candidates.empty()) return std::nullopt;
  // A forced switch packs alone, so that a refusal names its reason.
  std::vector<Packing> packings = forced >= 0
                                      ? std::vector<Packing>{pack_network(net, plain.slots, false, forced)}
                                      : pack_network_switches(net, plain.packing, candidates);
  std::optional<Plan> best;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    Plan c;
    c.mode = plain.mode;
    c.slots = plain.slots;
    c.packing = std::move(packings[i]);
    if (c.packing.stages.empty()) continue;
    try {
      c.depth = c.packing.depth();
      const auto chain = fit_chain(log_n, c.depth, o);
      if (!chain) continue;
      finish_plan(c, net, bounds, o, *chain, log_n);
    } catch (const std::invalid_argument&) {
      if (forced >= 0) throw;
      continue;  // the smaller ring cannot hold the levels securely
    }
    if (forced >= 0) return c;
    const double bar = (best ? best->predicted_seconds : plain.predicted_seconds * 0.95);
    if (c.predicted_seconds < bar) best = std::move(c);
  }
  VEIL_REQUIRE(forced < 0, "cannot switch rings after stage " << forced + 1 << ": no secure chain holds it");
  return best;
}

}  // namespace

const char* mode_name(Mode m) { return packing_mode(m).name(); }

Mode parse_mode(const std::string& s) {
  for (const PackingMode* m : packing_modes())
    if (s == m->name()) return m->id();
  throw std::invalid_argument("unknown mode '" + s + "': use latency (one image) or throughput (a batch)");
}

namespace {
Plan plan_smallest_ring(const Network& net, const PlanOptions& options);
}  // namespace

Plan make_plan(const Network& net, const PlanOptions& options) {
  Plan plan = plan_smallest_ring(net, options);
  // The smallest ring that holds the network precisely enough is usually the fastest, but
  // not when its chain nearly fills the 128-bit bound: key switching then needs many
  // digits (dnum), each a pass of NTTs over the whole chain, and the next ring, with room
  // for one or two, can be faster although every polynomial is twice as long. A width-16
  // cifar10-shallow: 2^14 with dnum 14 is predicted at 2.1 s, 2^15 with dnum 2 at 1.6 s,
  // and `veil infer` measured 1.9 s and 1.3 s. So where the chosen chain has more than two
  // digits, the next ring (up to 2^16) is planned too and the faster prediction wins. In
  // latency mode only: a throughput batch grows with the ring, so its per-batch
  // prediction does not compare across rings.
  if (options.log_n == 0 && packing_mode(options.mode).has_layouts() && plan.params.dnum > 2 &&
      plan.params.log_n < 16) {
    PlanOptions next = options;
    next.log_n = plan.params.log_n + 1;
    try {
      Plan larger = plan_smallest_ring(net, next);
      if (larger.predicted_seconds < plan.predicted_seconds &&
          larger.predicted_precision_bits >=
              std::min(plan.predicted_precision_bits, options.min_precision_bits))
        plan = std::move(larger);
    } catch (const std::invalid_argument&) {
      // The next ring cannot hold it (precision or magnitudes): keep the smallest.
    }
  }
  return plan;
}

namespace {

Plan plan_smallest_ring(const Network& net, const PlanOptions& options) {
  VEIL_REQUIRE(!net.stages.empty(), "network has no stages");
  check_graph(net);
  PlanOptions o = options;
  const PackingMode& mode = packing_mode(o.mode);
  const bool default_scale = o.target_scale_bits == 0;
  if (default_scale) o.target_scale_bits = mode.default_scale_bits();
  VEIL_REQUIRE(o.min_scale_bits >= 20 && o.target_scale_bits <= 58 && o.min_scale_bits <= o.target_scale_bits,
               "scale bits must satisfy 20 <= min <= target <= 58");
  Plan plan;
  plan.mode = o.mode;
  const StageBounds bounds = stage_bounds(net);
  const int first = o.log_n > 0 ? o.log_n : 12;
  const int last = o.log_n > 0 ? o.log_n : 17;
  const int throughput_depth = cost(net).depth;  // no packing: the stages' own depths
  // The mode's default scale, or its more precise one where, at the first ring that holds
  // the network at the default scale, the worst-case error bound exceeds the logits
  // themselves (`veil plan`'s "not predicted": cifar10-resnet20 at both scales); the
  // bound needs only the weights, no packing. cifar10-shallow's bound says 2.5 bits at
  // 2^30 and 5.5 at 2^33; `veil eval` measured 8.4-10.5 and about 10.
  if (default_scale && mode.precise_scale_bits() > o.target_scale_bits)
    for (int n = first; n <= last; ++n)
      if (const auto c = fit_chain(n, throughput_depth, o); c && c->scale_bits == o.target_scale_bits) {
        if (predict_logit_error(net, bounds, n, std::ldexp(1.0, c->scale_bits)) > 1)
          o.target_scale_bits = mode.precise_scale_bits();
        break;
      }
  std::optional<Chain> chain;
  int log_n = first;
  int needed_depth = 0;
  double best_bits = -1e9;
  int best_log_n = first;
  Packing best_packing;
  // Packs the network for one ring degree and keeps it if it is the best so far; true when
  // its precision is enough (then no larger ring is tried).
  auto try_ring = [&](int log_n) {
    const std::size_t slots = std::size_t{1} << (log_n - 1);
    // Packing never costs fewer levels than the stages' own depths: skip rings too small
    // for those before running the (slow, for large models) layout search.
    auto c = fit_chain(log_n, throughput_depth, o);
    int depth = throughput_depth;
    if (c) {
      depth = mode.pack(net, slots, throughput_depth, plan.packing, o.level_pricing);
      if (depth != throughput_depth) c = fit_chain(log_n, depth, o);
      // Levels the layouts bought must not cost the chain its scale (precision) or the
      // ring: then the layouts that spend none. Nor may they cost more time than they
      // save: the search prices a level by the stages above it, not by what a longer chain
      // adds to every key switch (more special primes, cifar10-resnet20's dnum 4 -> 5), so
      // the two packings' predictions decide.
      if (o.level_pricing == LevelPricing::kAdaptive && depth != throughput_depth) {
        auto candidate = [&](int d) {
          Plan c;
          c.mode = plan.mode, c.slots = slots, c.depth = d, c.packing = plan.packing;
          return c;
        };
        Plan bought = candidate(depth);
        const int avoid_depth = mode.pack(net, slots, throughput_depth, plan.packing, LevelPricing::kAvoid);
        const auto avoid_chain = fit_chain(log_n, avoid_depth, o);
        bool keep_bought = c && c->scale_bits >= o.target_scale_bits;
        if (keep_bought && avoid_chain) {
          Plan avoid = candidate(avoid_depth);
          try {
            finish_plan(bought, net, bounds, o, *c, log_n);
            finish_plan(avoid, net, bounds, o, *avoid_chain, log_n);
            keep_bought = bought.predicted_seconds < avoid.predicted_seconds;
          } catch (const std::invalid_argument&) {
            keep_bought = false;  // (finish_plan refuses magnitudes the chain cannot hold)
          }
        }
        if (keep_bought) {
          plan.packing = std::move(bought.packing);
        } else {
          depth = avoid_depth;
          c = avoid_chain;
        }
      }
    }
    needed_depth = std::max(needed_depth, depth);
    if (!c) return false;
    // Prefer the smallest ring whose scale keeps the logits precise enough; otherwise
    // the most precise ring that fits.
    const double bits = -std::log2(predict_logit_error(net, bounds, log_n, std::ldexp(1.0, c->scale_bits)));
    if (!chain || bits > best_bits) {
      chain = c, best_bits = bits, best_log_n = log_n, plan.slots = slots, plan.depth = depth;
      best_packing = plan.packing;
    }
    return bits >= o.min_precision_bits;
  };
  // A ring whose precision falls short even at the stages' own depth (packing only lowers
  // the scale) is searched only if no larger ring is precise enough: cifar10-shallow's
  // layout search at 2^14 was a sixth of its planning time, for a ring it never chose.
  // Then the deferred rings most precise first, skipping any whose best case (its
  // precision at the stages' own depth, which packing can only lower) does not beat the
  // plan already found: with no ring precise enough, cifar10-shallow's search at 2^17
  // and 2^16 doubled its planning for rings less precise than 2^15.
  std::vector<std::pair<double, int>> deferred;  // (best case, log_n)
  bool precise = false;
  for (; log_n <= last && !precise; ++log_n) {
    if (auto c = fit_chain(log_n, throughput_depth, o)) {
      const double best_case =
          -std::log2(predict_logit_error(net, bounds, log_n, std::ldexp(1.0, c->scale_bits)));
      if (best_case < o.min_precision_bits) {
        deferred.emplace_back(best_case, log_n);
        continue;
      }
    }
    precise = try_ring(log_n);
  }
  if (!precise) {
    std::stable_sort(deferred.begin(), deferred.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [best_case, d] : deferred)
      if (!chain || best_case > best_bits) try_ring(d);
  }
  log_n = best_log_n;
  plan.packing = std::move(best_packing);
  VEIL_REQUIRE(chain, "model '" << net.name << "' needs " << needed_depth
                                << " levels (multiplicative depth), which no ring degree up to 2^" << last
                                << " holds at 128-bit security with a scale of at least 2^"
                                << o.min_scale_bits
                                << " and no bootstrapping. Use fewer or lower-degree activations, merge "
                                   "layers, or run it in hybrid mode.");

  finish_plan(plan, net, bounds, o, *chain, log_n);
  if (o.ring_switch && mode.has_layouts()) {
    if (auto switched = with_ring_switch(plan, net, bounds, o, log_n)) plan = std::move(*switched);
  }
  return plan;
}

}  // namespace

PlanChoice plan_choice(const Plan& plan) {
  VEIL_REQUIRE(plan.packing_mode().has_layouts(), "only a plan with layouts has a packing to keep");
  PlanChoice c;
  c.log_n = plan.params.log_n;
  int e = 0;
  const double m = std::frexp(plan.params.scale, &e);
  VEIL_REQUIRE(m == 0.5, "the plan's scale is not a power of two");
  c.scale_bits = e - 1;
  c.packing = packing_choice(plan.packing);
  return c;
}

Plan plan_from_choice(const Network& net, const PlanOptions& options, const PlanChoice& choice) {
  VEIL_REQUIRE(packing_mode(options.mode).has_layouts(), "a kept choice serves only modes with layouts");
  VEIL_REQUIRE(
      choice.log_n >= 2 && choice.log_n <= 17 && (options.log_n == 0 || options.log_n == choice.log_n),
      "kept plan: ring degree 2^" << choice.log_n << " not allowed here");
  VEIL_REQUIRE(choice.packing.slots == std::size_t{1} << (choice.log_n - 1),
               "kept plan: " << choice.packing.slots << " slots in a ring of degree 2^" << choice.log_n);
  VEIL_REQUIRE(
      choice.scale_bits >= options.min_scale_bits && choice.scale_bits <= 58,
      "kept plan: scale 2^" << choice.scale_bits << " outside [2^" << options.min_scale_bits << ", 2^58]");
  Plan plan;
  plan.mode = options.mode;
  plan.slots = choice.packing.slots;
  plan.packing = pack_network_as(net, choice.packing);
  plan.depth = plan.packing.depth();
  // make_plan took the largest scale up to its target that fits; with that scale as the
  // target, fit_chain finds the same chain (the same digits and special primes).
  PlanOptions o = options;
  o.target_scale_bits = choice.scale_bits;
  const auto chain = fit_chain(choice.log_n, plan.depth, o);
  VEIL_REQUIRE(chain && chain->scale_bits == choice.scale_bits,
               "kept plan: no 128-bit chain of scale 2^" << choice.scale_bits << " holds its " << plan.depth
                                                         << " levels at degree 2^" << choice.log_n);
  finish_plan(plan, net, stage_bounds(net), o, *chain, choice.log_n);
  return plan;
}

Bytes save_plan_choice(const PlanChoice& choice) {
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(choice.log_n));
  w.u32(static_cast<std::uint32_t>(choice.scale_bits));
  write_packing_choice(w, choice.packing);
  return w.take();
}

PlanChoice load_plan_choice(std::span<const std::uint8_t> bytes) {
  ByteReader r(bytes);
  PlanChoice c;
  c.log_n = static_cast<std::int32_t>(r.u32());
  c.scale_bits = static_cast<std::int32_t>(r.u32());
  c.packing = read_packing_choice(r);
  VEIL_CHECK_IO(r.remaining() == 0, "plan choice: " << r.remaining() << " bytes after its end");
  return c;
}

int max_depth(int log_n, int scale_bits, const PlanOptions& options) {
  PlanOptions o = options;
  o.target_scale_bits = o.min_scale_bits = scale_bits;
  o.allow_insecure = false;
  int depth = 0;
  while (depth < 200 && fit_chain(log_n, depth + 1, o)) ++depth;
  return depth;
}

std::string Plan::describe() const {
  std::ostringstream os;
  os << std::fixed;
  os << "mode " << mode_name(mode) << ": N = 2^" << params.log_n << ", " << slots << " slots"
     << packing_mode().slots_note() << ", depth " << depth << ", scale 2^" << std::setprecision(0)
     << std::log2(params.scale) << ", log2(QP) = " << std::setprecision(1) << params.log_qp()
     << " (128-bit bound " << rlwe::max_log_qp_128(params.log_n).value_or(0) << "), dnum " << params.dnum
     << "\n";
  if (small_params)
    os << "  ring switch after stage " << packing.switch_after + 1 << " to N = 2^" << small_params->log_n
       << ", " << slots / 2 << " slots, levels 0.." << small_params->max_level()
       << ", log2(QP) = " << std::setprecision(1) << small_params->log_qp() << " (128-bit bound "
       << rlwe::max_log_qp_128(small_params->log_n).value_or(0) << "), dnum " << small_params->dnum << "\n";
  os << "  levels per stage:\n";
  const bool layouts = packing_mode().has_layouts() && packing.stages.size() == stages.size();
  for (std::size_t k = 0; k < stages.size(); ++k) {
    const StagePlan& s = stages[k];
    os << "    " << std::left << std::setw(44) << s.name.substr(0, 44) << std::right << " level "
       << std::setw(2) << s.level_in << " -> " << std::setw(2) << s.level_out;
    if (s.dropped_levels > 0) os << "  (add: the other input drops " << s.dropped_levels << ")";
    if (s.counts.rotations() > 0 || s.counts.plaintext_mults > 0)
      os << "  rot " << std::setw(3) << s.counts.rotations() << "  pt-mult " << std::setw(6)
         << s.counts.plaintext_mults;
    os << "  ~" << std::setprecision(3) << s.predicted_seconds << " s\n";
    // Where the slots go: the layouts explain a stage's diagonal count.
    if (layouts && packing.stages[k].kind == StageKind::kLinear)
      os << "      " << packing.stages[k].in.describe() << " -> " << packing.stages[k].out.describe() << "\n";
  }
  auto mb = [](std::uint64_t b) { return static_cast<double>(b) / (1 << 20); };
  os << std::setprecision(2) << "  keys: relinearisation " << mb(relin_key_bytes) << " MiB, "
     << rotation_steps.size() + small_rotation_steps.size() << " rotation keys";
  const int conjugations = (conjugation_key_level >= 0 ? 1 : 0) + (small_conjugation_key_level >= 0 ? 1 : 0);
  if (conjugations > 0) os << " + " << conjugations << " conjugation";
  os << " " << mb(galois_key_bytes) << " MiB";
  if (small_params) os << ", ring switch " << mb(ring_switch_key_bytes) << " MiB";
  os << "\n";
  os << "  ciphertexts: input " << mb(input_bytes) << " MiB, output " << mb(output_bytes) << " MiB\n";
  os << std::setprecision(1) << "  predicted: " << predicted_seconds << " s server time (one thread), ";
  // The bound multiplies every stage's worst-case growth; through many layers (a residual
  // network) it exceeds the logits themselves while measured runs agree with the plaintext
  // model: then it says nothing, and saying a negative number of bits would mislead.
  if (predicted_precision_bits >= 0)
    os << "logit precision >= ~" << predicted_precision_bits
       << " bits (worst case; `veil eval` measures it)\n";
  else
    os << "logit precision not predicted (the worst-case bound exceeds the logits on this deep\n"
          "    network; `veil eval --model M` measures it)\n";
  return os.str();
}

}  // namespace veil::nn
