// Encrypted evaluation (latency and throughput modes) against the plain evaluation of
// the same lowered network, on random small networks that exercise every packing case:
// strided and padded convolutions (gap layouts), a sum pool without a level, dense
// layers with output folding, several ciphertext blocks, polynomials of degree 2 and 4.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "he/he_test_util.hpp"
#include "nn/he/he_test_util.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::nn {
namespace {

using test::Client;
using test::max_abs_error;

LinearStage conv_stage(Shape in, int cout, int k, int stride, int pad, std::mt19937_64& g, double wscale) {
  std::normal_distribution<double> d(0.0, wscale);
  LinearStage st;
  st.name = "conv";
  st.in = in;
  st.out = {cout, (in.h + 2 * pad - k) / stride + 1, (in.w + 2 * pad - k) / stride + 1};
  st.spatial = true;
  st.stride_y = st.stride_x = stride;
  st.weights.rows = st.out.size();
  st.weights.cols = in.size();
  st.weights.row_ptr.push_back(0);
  std::vector<double> w(static_cast<std::size_t>(cout) * in.c * k * k);
  for (auto& v : w) v = d(g);
  for (int co = 0; co < cout; ++co)
    for (int y = 0; y < st.out.h; ++y)
      for (int x = 0; x < st.out.w; ++x) {
        for (int ci = 0; ci < in.c; ++ci)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              const int iy = y * stride + ky - pad, ix = x * stride + kx - pad;
              if (iy < 0 || ix < 0 || iy >= in.h || ix >= in.w) continue;
              st.weights.col.push_back((ci * in.h + iy) * in.w + ix);
              st.weights.val.push_back(w[((co * in.c + ci) * k + ky) * k + kx]);
            }
        st.weights.row_ptr.push_back(static_cast<std::int64_t>(st.weights.col.size()));
      }
  st.bias.resize(st.out.size());
  for (int co = 0; co < cout; ++co)
    for (int i = 0; i < st.out.h * st.out.w; ++i) st.bias[co * st.out.h * st.out.w + i] = 0.1 * (co % 3);
  return st;
}

LinearStage sum_pool(Shape in, int k) {
  LinearStage st;
  st.name = "pool";
  st.in = in;
  st.out = {in.c, in.h / k, in.w / k};
  st.spatial = true;
  st.stride_y = st.stride_x = k;
  st.unit_weights = true;
  st.weights.rows = st.out.size();
  st.weights.cols = in.size();
  st.weights.row_ptr.push_back(0);
  for (int c = 0; c < in.c; ++c)
    for (int y = 0; y < st.out.h; ++y)
      for (int x = 0; x < st.out.w; ++x) {
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx) {
            st.weights.col.push_back((c * in.h + y * k + ky) * in.w + x * k + kx);
            st.weights.val.push_back(1.0);
          }
        st.weights.row_ptr.push_back(static_cast<std::int64_t>(st.weights.col.size()));
      }
  st.bias.assign(st.out.size(), 0.0);
  return st;
}

LinearStage dense(Shape in, int out, std::mt19937_64& g, double wscale) {
  std::normal_distribution<double> d(0.0, wscale);
  LinearStage st;
  st.name = "dense";
  st.in = in;
  st.out = {out, 1, 1};
  st.weights.rows = out;
  st.weights.cols = in.size();
  st.weights.row_ptr.push_back(0);
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in.size(); ++i) {
      st.weights.col.push_back(i);
      st.weights.val.push_back(d(g));
    }
    st.weights.row_ptr.push_back(static_cast<std::int64_t>(st.weights.col.size()));
  }
  st.bias.assign(out, 0.05);
  return st;
}

Stage linear(LinearStage s) { return Stage(std::move(s)); }

Stage poly(std::vector<double> c) {
  PolyStage p;
  p.name = "poly";
  p.coefficients = std::move(c);
  p.input_range = 4;
  return Stage(std::move(p));
}

std::vector<double> plain_forward(const Network& net, std::vector<double> x) {
  for (const Stage& s : net.stages) {
    if (s.is<PolyStage>()) {
      for (double& v : x) {
        double acc = 0;
        for (auto it = s.poly().coefficients.rbegin(); it != s.poly().coefficients.rend(); ++it)
          acc = acc * v + *it;
        v = acc;
      }
    } else {
      const auto& w = s.linear().weights;
      std::vector<double> y(s.linear().bias);
      for (int r = 0; r < w.rows; ++r)
        for (auto k = w.row_ptr[r]; k < w.row_ptr[r + 1]; ++k) y[r] += w.val[k] * x[w.col[k]];
      x = std::move(y);
    }
  }
  return x;
}

// conv(2->4, 3x3, pad 1) -> x^2-ish -> sum pool 2 -> conv(4->6, 3x3, stride 2, pad 1) ->
// degree-4 -> dense(-> 10). 2 x 12 x 12 input.
Network test_network(std::uint64_t seed) {
  std::mt19937_64 g(seed);
  Network net;
  net.name = "test";
  net.input = {2, 12, 12};
  net.stages.push_back(linear(conv_stage(net.input, 4, 3, 1, 1, g, 0.3)));
  net.stages.push_back(poly({0.1, 0.4, 1.0}));
  net.stages.push_back(linear(sum_pool({4, 12, 12}, 2)));
  net.stages.push_back(linear(conv_stage({4, 6, 6}, 6, 3, 2, 1, g, 0.1)));
  net.stages.push_back(poly({0.05, 0.3, 0.2, 0.0, 1.0}));
  net.stages.push_back(linear(dense({6, 3, 3}, 10, g, 0.2)));
  return net;
}

std::vector<double> random_input(const Network& net, std::mt19937_64& g) {
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<double> x(net.input.size());
  for (auto& v : x) v = d(g);
  return x;
}

PlanOptions toy_options(Mode mode, int log_n) {
  PlanOptions o;
  o.mode = mode;
  o.log_n = log_n;
  o.allow_insecure = true;  // toy ring: tests only
  o.target_scale_bits = 36;
  return o;
}

// One random image (from `seed`) through the whole client/server round in latency mode:
// bits of agreement between the decrypted logits and the plain forward pass.
double latency_error_bits(const Network& net, const Plan& plan, std::uint64_t seed) {
  Client c(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  EncryptedNetwork server(net, plan, c.ctx);
  std::mt19937_64 gx(seed);
  const auto x = random_input(net, gx);
  auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, {x}), keys);
  const ResultRing ring(plan, c.ctx, c.keygen.secret_key());
  const auto logits = decrypt_outputs(plan, ring, out, 1);
  return -std::log2(max_abs_error(logits[0], plain_forward(net, x)));
}

// A cache budget below the NTT form of every diagonal: every stage keeps its coefficients
// and the budget buys the NTT form stage by stage, then group by group (he::LinearTransform's
// ntt_budget), within the budget and with the same result.
TEST(EncryptedNetwork, PlaintextBudgetIsSpentGroupByGroupWithinIt) {
  const Network net = test_network(17);
  const Plan plan = make_plan(net, toy_options(Mode::kLatency, 11));
  Client c(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  EncryptedNetwork all(net, plan, c.ctx, std::size_t{1} << 40);
  const std::size_t all_ntt = all.plaintext_bytes();
  // The report a user chooses the budget by: everything ready, and the budget that does it.
  EXPECT_EQ(all.weight_forms().ntt_bytes, all_ntt);
  EXPECT_EQ(all.weight_forms().coefficient_bytes, 0u);
  EXPECT_EQ(all.weight_forms().all_ntt_bytes, all_ntt);
  EXPECT_EQ(all.weight_forms().encoded_per_use, 0);
  const EncryptedNetwork none(net, plan, c.ctx, 1);
  EXPECT_EQ(none.plaintext_bytes(), 0u);
  EXPECT_EQ(none.weight_forms().all_ntt_bytes, all_ntt);
  EXPECT_GT(none.weight_forms().encoded_per_use, 0);
  std::mt19937_64 gx(5);
  const auto x = random_input(net, gx);
  const auto cts = encrypt_inputs(plan, c.encoder, c.encryptor, {x});
  const auto reference = decrypt_outputs(plan, c.result, all.evaluate(cts, keys), 1);
  EXPECT_GT(-std::log2(max_abs_error(reference[0], plain_forward(net, x))), 10);
  for (const double part : {0.5, 0.8}) {
    const auto budget = static_cast<std::size_t>(part * static_cast<double>(all_ntt));
    EncryptedNetwork server(net, plan, c.ctx, budget);
    EXPECT_LE(server.plaintext_bytes(), budget) << part;
    EXPECT_GT(server.plaintext_bytes(), budget * 3 / 4) << part;  // most of it spent
    const WeightForms& f = server.weight_forms();
    EXPECT_EQ(f.ntt_bytes + f.coefficient_bytes, server.plaintext_bytes()) << part;
    EXPECT_GT(f.coefficient_bytes, 0u) << part;
    EXPECT_GT(f.ntt_bytes, 0u) << part;
    EXPECT_EQ(f.all_ntt_bytes, all_ntt) << part;
    EXPECT_EQ(f.encoded_per_use, 0) << part;
    // The same plaintexts, transformed at use instead of cached: the same ciphertext gives
    // the same result (modular arithmetic is exact; only the decoding rounds).
    const auto logits = decrypt_outputs(plan, c.result, server.evaluate(cts, keys), 1);
    EXPECT_LT(max_abs_error(logits[0], reference[0]), 1e-9) << part;
  }
}

class EncryptedNetworkTest : public ::testing::TestWithParam<int> {};

// log_n 10 (256 slots: several blocks per layer) and 11 (one block per layer).
TEST_P(EncryptedNetworkTest, LatencyModeMatchesPlain) {
  const Network net = test_network(5);
  PlanOptions o = toy_options(Mode::kLatency, GetParam());
  o.level_pricing = LevelPricing::kAvoid;  // the stages' own depths, no level bought
  const Plan plan = make_plan(net, o);
  EXPECT_EQ(plan.depth, 1 + 1 + 0 + 1 + 2 + 1);
  Client c(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  EncryptedNetwork server(net, plan, c.ctx);
  std::mt19937_64 g(11);
  for (int trial = 0; trial < 2; ++trial) {
    const auto x = random_input(net, g);
    std::vector<double> seconds;
    auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, {x}), keys, &seconds);
    EXPECT_EQ(seconds.size(), net.stages.size());
    const auto logits = decrypt_outputs(plan, c.result, out, 1);
    const auto want = plain_forward(net, x);
    ASSERT_EQ(logits.size(), 1u);
    ASSERT_EQ(logits[0].size(), want.size());
    EXPECT_GT(-std::log2(max_abs_error(logits[0], want)), 12) << plan.describe();
  }
}

INSTANTIATE_TEST_SUITE_P(Rings, EncryptedNetworkTest, ::testing::Values(10, 11));

TEST(EncryptedNetwork, ThroughputModeMatchesPlainForEveryImage) {
  const Network net = test_network(6);
  const Plan plan = make_plan(net, toy_options(Mode::kThroughput, 10));
  EXPECT_EQ(plan.slots, 512u);
  Client c(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  EXPECT_TRUE(keys.galois.keys.empty());
  EncryptedNetwork server(net, plan, c.ctx);
  std::mt19937_64 g(12);
  std::vector<std::vector<double>> images;
  for (int i = 0; i < 5; ++i) images.push_back(random_input(net, g));
  auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, images), keys);
  const auto logits = decrypt_outputs(plan, c.result, out, images.size());
  ASSERT_EQ(logits.size(), images.size());
  for (std::size_t i = 0; i < images.size(); ++i)
    EXPECT_GT(-std::log2(max_abs_error(logits[i], plain_forward(net, images[i]))), 12) << "image " << i;
}

TEST(Packing, GapLayoutKeepsStridedConvolutionDiagonalsFew) {
  std::mt19937_64 g(3);
  Network net;
  net.input = {1, 28, 28};
  net.stages.push_back(linear(conv_stage(net.input, 5, 5, 2, 1, g, 0.2)));
  const Packing p = pack_network(net, 4096, false);
  // 5 output channels x 25 taps: one diagonal each, independent of the output position.
  EXPECT_LE(p.stages[0].counts.plaintext_mults, 125);
  EXPECT_EQ(p.stages[0].out.row_stride, 56);
  EXPECT_EQ(p.stages[0].out.col_stride, 2);
}

// One input channel: the client sends copies of the image at the channel period, so
// every output channel reads its own copy and the first convolution needs one diagonal
// per tap and output block instead of one per (channel offset, tap).
TEST(Packing, ReplicatedInputServesEveryOutputChannel) {
  std::mt19937_64 g(4);
  Network net;
  net.input = {1, 12, 12};
  net.stages.push_back(linear(conv_stage(net.input, 6, 3, 1, 0, g, 0.3)));
  net.stages.push_back(poly({0.1, 0.4, 1.0}));
  net.stages.push_back(linear(dense({6, 10, 10}, 10, g, 0.05)));
  const Plan plan = make_plan(net, toy_options(Mode::kLatency, 11));
  const Layout& in = plan.packing.input;
  ASSERT_GT(in.replicas, 1) << plan.describe();
  EXPECT_EQ(in.replica_stride, in.channel_stride);
  EXPECT_LE(plan.packing.stages[0].counts.plaintext_mults, 9 * plan.packing.stages[0].out.blocks());
  const auto blocks = pack(in, std::vector<double>(net.input.size(), 1.0));
  for (int r = 0; r < in.replicas; ++r) EXPECT_EQ(blocks[0][r * in.replica_stride], 1.0) << "copy " << r;

  EXPECT_GT(latency_error_bits(net, plan, 21), 12) << plan.describe();
}

// Two poolings leave 3 of every 4 slots, then 15 of every 16, between a channel's
// pixels: the convolutions after them write their outputs multiplexed (other channels in
// those gaps), the pools keep every channel where it is (no level), and the encrypted
// result still matches the plain one.
// Three convolutions with a pool after each of the first two, then a dense layer.
Network pooled_network(std::uint64_t seed) {
  std::mt19937_64 g(seed);
  Network net;
  net.input = {2, 16, 16};
  net.stages.push_back(linear(conv_stage(net.input, 4, 3, 1, 1, g, 0.3)));
  net.stages.push_back(poly({0.1, 0.4, 1.0}));
  net.stages.push_back(linear(sum_pool({4, 16, 16}, 2)));
  net.stages.push_back(linear(conv_stage({4, 8, 8}, 8, 3, 1, 1, g, 0.1)));
  net.stages.push_back(poly({0.05, 0.3, 1.0}));
  net.stages.push_back(linear(sum_pool({8, 8, 8}, 2)));
  net.stages.push_back(linear(conv_stage({8, 4, 4}, 12, 3, 1, 1, g, 0.1)));
  net.stages.push_back(poly({0.05, 0.3, 1.0}));
  net.stages.push_back(linear(dense({12, 4, 4}, 10, g, 0.1)));
  return net;
}

TEST(Packing, MultiplexedLayoutsFillTheGapsOfPooledMaps) {
  const Network net = pooled_network(8);
  PlanOptions o = toy_options(Mode::kLatency, 10);
  o.level_pricing = LevelPricing::kAvoid;
  const Plan plan = make_plan(net, o);
  const auto& st = plan.packing.stages;
  // The second pool keeps the first multiplexed placement (a sum, no level) ...
  EXPECT_EQ(st[3].out.mux_rows * st[3].out.mux_cols, 4) << plan.describe();
  EXPECT_EQ(st[5].levels, 0) << plan.describe();
  EXPECT_EQ(st[5].out.mux_rows, st[3].out.mux_rows);
  // ... and the convolution after it fills the 4x4 cells: 12 channels of 4x4 in one block.
  EXPECT_EQ(st[6].out.mux_rows * st[6].out.mux_cols, 16) << plan.describe();
  EXPECT_EQ(st[6].out.blocks(), 1);
  EXPECT_TRUE(st[6].out.injective());

  EXPECT_GT(latency_error_bits(net, plan, 23), 12) << plan.describe();
}

// The layout search costs its candidates in parallel and relaxes them in a fixed order:
// the packing must not depend on the thread count.
TEST(Packing, LayoutSearchIsTheSameOnOneThreadAndTwo) {
  const Network net = pooled_network(9);
  const int threads = num_threads();
  set_num_threads(1);
  const Packing one = pack_network(net, 2048, false);
  set_num_threads(2);
  const Packing two = pack_network(net, 2048, false);
  set_num_threads(threads);
  EXPECT_EQ(one.input, two.input);
  ASSERT_EQ(one.stages.size(), two.stages.size());
  for (std::size_t k = 0; k < one.stages.size(); ++k) {
    EXPECT_EQ(one.stages[k].out, two.stages[k].out) << "stage " << k;
    EXPECT_EQ(one.stages[k].giant_step, two.stages[k].giant_step) << "stage " << k;
    EXPECT_EQ(one.stages[k].spec.diagonals.size(), two.stages[k].spec.diagonals.size()) << "stage " << k;
  }
}

// The packed specs applied to plain slot vectors (the diagonal method's definition), with
// the ring switch's slot map (slot k of the smaller ring holds slots k + k + n/2 added).
std::vector<double> simulate_packing(const Network& net, const Packing& p, const std::vector<double>& x) {
  auto blocks = pack(p.input, x);
  for (std::size_t k = 0; k < p.stages.size(); ++k) {
    const PackedStage& ps = p.stages[k];
    if (ps.kind == StageKind::kPoly) {
      for (auto& b : blocks)
        for (double& v : b) {
          double y = 0;
          for (auto it = ps.coefficients.rbegin(); it != ps.coefficients.rend(); ++it) y = y * v + *it;
          v = y;
        }
      continue;
    }
    const std::size_t n = ps.spec.slots;
    auto out = veil::test::apply_plain(ps.spec, blocks);
    if (static_cast<int>(k) == p.switch_after)
      for (auto& b : out) {
        for (std::size_t s = 0; s < n / 2; ++s) b[s] += b[s + n / 2];
        b.resize(n / 2);
      }
    blocks = std::move(out);
  }
  (void)net;
  return unpack(p.output, blocks);
}

TEST(Packing, RingSwitchHalvesTheSlotsOfTheLaterStages) {
  const Network net = pooled_network(10);
  const Packing one = pack_network(net, 1024, true);
  const Packing two = pack_network(net, 1024, true, 3);
  EXPECT_EQ(two.switch_after, 3);
  for (std::size_t k = 0; k < two.stages.size(); ++k) {
    const auto& st = two.stages[k];
    EXPECT_EQ(st.in.slots, k <= 3 ? 1024u : 512u) << "stage " << k;
    EXPECT_EQ(st.out.slots, k < 3 ? 1024u : 512u) << "stage " << k;
  }
  // The switching stage runs in the large ring, its offsets taken modulo half the slots
  // (the switch adds the halves), so it has no more diagonals than without the switch.
  const auto& sw = two.stages[3].spec;
  EXPECT_EQ(sw.slots, 1024u);
  for (const auto& d : sw.diagonals) EXPECT_LT(d.step, 512) << "diagonal " << d.step;
  EXPECT_LE(sw.diagonals.size(), one.stages[3].spec.diagonals.size());
  EXPECT_FALSE(two.rotation_steps(true).empty());
  EXPECT_EQ(one.rotation_steps(true), std::vector<int>{});
  // Both packings compute the network.
  std::mt19937_64 g(11);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> x(net.input.size());
  for (double& v : x) v = u(g);
  const auto want = plain_forward(net, x);
  EXPECT_LT(max_abs_error(simulate_packing(net, one, x), want), 1e-9);
  EXPECT_LT(max_abs_error(simulate_packing(net, two, x), want), 1e-9);
}

// A ring switch after the second pool's convolution (stage 7): the last layers run at
// half the degree, with keys the client derives for that ring, and the result matches the
// plain network as closely as without the switch.
TEST(EncryptedNetwork, RingSwitchRunsTheLastLayersInTheSmallerRing) {
  const Network net = pooled_network(14);
  PlanOptions o = toy_options(Mode::kLatency, 11);
  o.ring_switch = true;
  o.ring_switch_after = 7;
  const Plan plan = make_plan(net, o);
  ASSERT_TRUE(plan.small_params) << plan.describe();
  EXPECT_EQ(plan.switch_after(), 6);
  EXPECT_EQ(plan.small_params->log_n, plan.params.log_n - 1);
  EXPECT_FALSE(plan.small_rotation_steps.empty());
  // Each ring's linear maps pair their diagonals: its conjugation key at the level of its
  // first map with weights.
  EXPECT_EQ(plan.conjugation_key_level, plan.stages[0].level_in);
  EXPECT_GE(plan.small_conjugation_key_level, 0);
  EXPECT_LE(plan.small_conjugation_key_level, plan.small_params->max_level());
  // About as precise as one ring: fresh keys and noise each run give 11.6-14.5 bits with
  // one ring and 12.1-14.5 with the switch (40 runs each), so both must clear 10.5.
  PlanOptions one = o;
  one.ring_switch = false;
  const double one_ring = latency_error_bits(net, make_plan(net, one), 24);
  EXPECT_GT(one_ring, 10.5);
  EXPECT_GT(latency_error_bits(net, plan, 24), 10.5)
      << plan.describe() << "one ring: " << one_ring << " bits";
  // Without the switching key the server cannot go on.
  Client c(plan);
  EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  ASSERT_TRUE(keys.ring_switch);
  keys.ring_switch.reset();
  EncryptedNetwork server(net, plan, c.ctx);
  std::vector<double> x(net.input.size(), 0.5);
  EXPECT_THROW(server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, {x}), keys),
               std::invalid_argument);
  // Nor without the smaller ring's conjugation key: it refuses such keys when they arrive.
  EvaluationKeys no_conj = make_evaluation_keys(plan, c.keygen);
  const auto small = ckks::CkksContext::create(*plan.small_params);
  ASSERT_EQ(no_conj.small_galois.keys.erase(small->conjugation_element()), 1u);
  EXPECT_THROW(load_small_ring_keys(plan, save_small_ring_keys(plan, no_conj), no_conj), std::runtime_error);
  // Forcing a switch where none can be is refused, naming the stage.
  o.ring_switch_after = 2;  // a polynomial
  EXPECT_THROW(make_plan(net, o), std::invalid_argument);
}

// Every weighted linear stage of a chain lands exactly on the planned scale, in both
// modes and across a ring switch: a monic square leaves s^2 / q, whose relative error
// doubles with every square, and uncorrected that drift reached 2.5 bits after six squares
// at a 27-bit scale (a width-16 cifar10-shallow at N = 2^14), where decryption rightly
// refuses the result as not the model's.
TEST(EncryptedNetwork, ChainsLandEveryWeightedStageOnThePlannedScale) {
  std::mt19937_64 g(31);
  Network net;
  net.input = {2, 8, 8};
  net.stages.push_back(linear(conv_stage(net.input, 4, 3, 1, 1, g, 0.3)));
  for (int i = 0; i < 5; ++i) {
    net.stages.push_back(poly({0.05, 0.3, 1.0}));
    net.stages.push_back(linear(conv_stage({4, 8, 8}, 4, 3, 1, 1, g, 0.08)));
  }
  net.stages.push_back(poly({0.05, 0.3, 1.0}));
  net.stages.push_back(linear(dense({4, 8, 8}, 10, g, 0.05)));
  struct Case {
    Mode mode;
    bool ring_switch;
  };
  for (const Case& k :
       {Case{Mode::kLatency, false}, Case{Mode::kLatency, true}, Case{Mode::kThroughput, false}}) {
    SCOPED_TRACE(std::string(k.mode == Mode::kLatency ? "latency" : "throughput") +
                 (k.ring_switch ? ", ring switch" : ""));
    PlanOptions o = toy_options(k.mode, 11);
    o.target_scale_bits = 27;
    o.min_scale_bits = 20;
    o.ring_switch = k.ring_switch;
    if (k.ring_switch) o.ring_switch_after = static_cast<int>(net.stages.size()) - 2;  // after stage 10
    const Plan plan = make_plan(net, o);
    ASSERT_EQ(plan.params.scale, std::ldexp(1.0, 27));
    ASSERT_EQ(static_cast<bool>(plan.small_params), k.ring_switch) << plan.describe();
    Client c(plan);
    const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
    EncryptedNetwork server(net, plan, c.ctx);
    std::vector<std::vector<double>> images;
    for (int i = 0; i < (k.mode == Mode::kLatency ? 1 : 3); ++i) images.push_back(random_input(net, g));
    int checked = 0;
    const auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, images), keys, nullptr,
                                     [&](std::size_t stage, const std::vector<ckks::Ciphertext>& cts) {
                                       if (!net.stages[stage].is<LinearStage>()) return;
                                       ++checked;
                                       for (const auto& ct : cts)
                                         EXPECT_NEAR(std::log2(ct.scale()), 27.0, 1e-9) << "stage " << stage;
                                     });
    EXPECT_EQ(checked, 7);
    const auto logits = decrypt_outputs(plan, c.result, out, images.size());
    // At this toy scale (2^27, N = 2^11) the latency case without the ring switch keeps
    // 8.1 +- 1.0 bits (30 runs, 6.3 at worst; the others 10-20): 6 bits failed about one
    // run in fifty. A stage landing on the wrong scale leaves no correct bit at all.
    for (std::size_t i = 0; i < images.size(); ++i)
      EXPECT_GT(-std::log2(max_abs_error(logits[i], plain_forward(net, images[i]))), 4) << "image " << i;
  }
}

// Adaptive level pricing buys a level only where it saves work: here the first pool's, so
// the packing is deeper than the one that spends none, does less work in all, and
// computes the same network.
TEST(Packing, AdaptiveLevelPricingBuysLevelsOnlyForLessWork) {
  const Network net = pooled_network(8);
  const Packing avoid = pack_network(net, 512, false, -1, LevelPricing::kAvoid);
  const Packing adaptive = pack_network(net, 512, true, -1, LevelPricing::kAdaptive);
  // This network's first pooling is worth a level (its convolution's diagonals shrink).
  EXPECT_GT(adaptive.depth(), avoid.depth());
  // Work in key switches (a plaintext product costs 1/30 of one, as the search counts it).
  const auto work = [](const he::TransformCounts& c) { return c.rotations() + c.plaintext_mults / 30.0; };
  EXPECT_LT(work(adaptive.totals()), work(avoid.totals()));
  std::mt19937_64 g(3);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> x(net.input.size());
  for (double& v : x) v = u(g);
  EXPECT_LT(max_abs_error(simulate_packing(net, adaptive, x), plain_forward(net, x)), 1e-9);
}

// The candidates reuse the plain search's frontiers and every pair it packed (one cache
// across the runs and the assembly): each must equal a packing searched from scratch.
TEST(Packing, SwitchCandidatesFromTheSharedSearchEqualFreshPackings) {
  const Network net = pooled_network(10);
  const Packing plain = pack_network(net, 1024, false);
  ASSERT_TRUE(plain.search);
  const std::vector<int> candidates = {-1, 1, 3, 5};
  const std::vector<Packing> shared = pack_network_switches(net, plain, candidates);
  ASSERT_EQ(shared.size(), candidates.size());
  int packed = 0;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Packing& got = shared[i];
    if (got.stages.empty()) {  // a polynomial stage: no switch after it
      EXPECT_THROW(pack_network(net, 1024, false, candidates[i]), std::invalid_argument);
      continue;
    }
    ++packed;
    const Packing want = pack_network(net, 1024, false, candidates[i]);
    EXPECT_EQ(got.switch_after, want.switch_after);
    ASSERT_EQ(got.stages.size(), want.stages.size());
    for (std::size_t k = 0; k < want.stages.size(); ++k) {
      const auto &a = got.stages[k], &b = want.stages[k];
      EXPECT_TRUE(a.in == b.in && a.out == b.out) << "candidate " << candidates[i] << " stage " << k;
      EXPECT_EQ(a.giant_step, b.giant_step);
      ASSERT_EQ(a.spec.diagonals.size(), b.spec.diagonals.size());
      for (std::size_t d = 0; d < a.spec.diagonals.size(); ++d) {
        EXPECT_EQ(a.spec.diagonals[d].step, b.spec.diagonals[d].step);
        EXPECT_EQ(a.spec.diagonals[d].in_block, b.spec.diagonals[d].in_block);
        EXPECT_EQ(a.spec.diagonals[d].out_block, b.spec.diagonals[d].out_block);
      }
    }
  }
  EXPECT_GE(packed, 3);
}

TEST(Packing, RingSwitchRefusesAStageWhoseInputsAreReadLater) {
  EXPECT_THROW(pack_network(pooled_network(12), 1024, false, 1), std::invalid_argument);  // a polynomial
  // A residual block: the Add (stage 4) reads stage 2, before a switch after stage 3.
  std::mt19937_64 g(13);
  Network net;
  net.input = {2, 8, 8};
  net.stages.push_back(linear(conv_stage(net.input, 2, 3, 1, 1, g, 0.3)));
  net.stages.push_back(poly({0.1, 0.4, 1.0}));
  net.stages.push_back(linear(conv_stage(net.input, 2, 3, 1, 1, g, 0.3)));
  net.stages.push_back(linear(conv_stage(net.input, 2, 3, 1, 1, g, 0.3)));
  Stage add{AddStage{"add", net.input}, {2, 3}};
  net.stages.push_back(add);
  net.stages.push_back(linear(dense(net.input, 10, g, 0.1)));
  EXPECT_NO_THROW(pack_network(net, 1024, false));
  EXPECT_NO_THROW(pack_network(net, 1024, false, 4 - 2));  // after stage 2: nothing earlier read later
  try {
    pack_network(net, 1024, false, 3);
    ADD_FAILURE() << "a switch across the residual edge was packed";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("before the ring switch"), std::string::npos) << e.what();
  }
}

TEST(Layout, MultiplexedSlotsAreDistinctAndRoundTrip) {
  // 6 channels of 2x2 pixels, 4 slots apart in x and 16 in y, in frames of 32 slots
  // with a 2 x 4 grid of sub-positions (strides 8 and 1): 8 channels per frame.
  Layout l;
  l.shape = {6, 2, 2};
  l.slots = 32;
  l.channel_stride = 32;
  l.row_stride = 16;
  l.col_stride = 4;
  l.mux_rows = 2;
  l.mux_cols = 4;
  l.mux_row_stride = 8;
  l.mux_col_stride = 1;
  l.channels_per_block = 8;
  ASSERT_TRUE(l.injective());
  EXPECT_EQ(l.blocks(), 1);
  EXPECT_EQ(l.slot(5 * 4 + 3), 8 + 1 + 16 + 4);  // channel 5: sub-position (1, 1); pixel (1, 1)
  std::vector<double> t(l.shape.size());
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<double>(i) + 0.5;
  EXPECT_EQ(unpack(l, pack(l, t)), t);
  Layout bad = l;
  bad.mux_row_stride = 4;  // sub-row 1 lands on pixel column 1
  EXPECT_FALSE(bad.injective());
  bad = l;
  bad.row_stride = 40;  // pixel row 1 lands past the only block
  EXPECT_FALSE(bad.injective());
}

// Copies of a half-full last block (Layout::replicated) and copies inside the cells a
// pooling leaves (Layout::cell_copies): every copy has its own slot, pack writes each and
// unpack reads the first.
TEST(Layout, CopiesHaveSlotsOfTheirOwnAndRoundTrip) {
  // 6 channels of 8x8 in blocks of 4: the last block holds 2, so 2 copies of them.
  const Layout two_blocks = Layout::compact({6, 8, 8}, 256);
  const Layout r = Layout::replicated(two_blocks);
  ASSERT_EQ(r.replicas, 2);
  EXPECT_EQ(r.replica_stride, 2 * 64);
  ASSERT_TRUE(r.injective());
  EXPECT_EQ(r.copies(0), 1);           // first block: no copies
  EXPECT_EQ(r.copies(4 * 64 + 5), 2);  // last block
  std::vector<double> t(r.shape.size());
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<double>(i) + 0.5;
  const auto blocks = pack(r, t);
  EXPECT_EQ(blocks[1][2 * 64 + 5], t[4 * 64 + 5]);  // channel 4's copy, where channel 6 would be
  EXPECT_EQ(blocks[0][5], t[5]);
  EXPECT_EQ(unpack(r, blocks), t);
  EXPECT_EQ(Layout::replicated(r), r);  // copies are not copied again

  // 3 channels of 4x4 pixels 2 apart in x and 2 rows of 8 apart in y: 2x2 cells, 3 copies more.
  Layout spread = Layout::compact({3, 4, 4}, 256);
  spread.row_stride = 16;
  spread.col_stride = 2;
  spread.channel_stride = 64;
  spread.channels_per_block = 4;
  const Layout c = Layout::cell_copies(spread);
  ASSERT_EQ(c.copy_rows * c.copy_cols, 4);
  EXPECT_EQ(c.copy_row_stride, 8);
  EXPECT_EQ(c.copy_col_stride, 1);
  ASSERT_TRUE(c.injective());
  std::vector<double> u(c.shape.size());
  for (std::size_t i = 0; i < u.size(); ++i) u[i] = static_cast<double>(i) + 0.25;
  const auto cells = pack(c, u);
  const std::int64_t at = c.slot(2 * 16 + 5);  // channel 2, pixel (1, 1)
  for (int k = 0; k < 4; ++k) EXPECT_EQ(cells[0][at + c.copy_offset(k)], u[2 * 16 + 5]) << "copy " << k;
  EXPECT_EQ(unpack(c, cells), u);
  Layout bad = c;
  bad.copy_col_stride = 2;  // copy 1 lands on the next pixel
  EXPECT_FALSE(bad.injective());
}

std::vector<double> apply_weights(const LinearStage& st, const std::vector<double>& x) {
  std::vector<double> y(st.bias);
  for (int o = 0; o < st.weights.rows; ++o)
    for (std::int64_t k = st.weights.row_ptr[o]; k < st.weights.row_ptr[o + 1]; ++k)
      y[o] += st.weights.val[k] * x[st.weights.col[k]];
  return y;
}

// A convolution reading a half-full last block with copies needs about half the diagonals
// from that block; one reading a pooled map with a copy of every channel at every
// sub-position of its multiplexed output needs none of the sub-position offsets. Both
// still compute the stage, and so does the stage that writes the copies.
TEST(Packing, CopiesSaveDiagonalsOfTheStageThatReadsThem) {
  std::mt19937_64 g(21);
  std::uniform_real_distribution<double> u(-1, 1);
  const LinearStage conv = conv_stage({6, 8, 8}, 8, 3, 1, 1, g, 0.3);
  const Layout plain = Layout::compact(conv.in, 256), copies = Layout::replicated(plain);
  const Layout out = Layout::compact(conv.out, 256);
  const auto a = pack_linear(conv, plain, out, false, true), b = pack_linear(conv, copies, out, false, true);
  auto from_block = [](const he::LinearTransformSpec& s, int block) {
    return std::count_if(s.diagonals.begin(), s.diagonals.end(),
                         [&](const auto& d) { return d.in_block == block; });
  };
  EXPECT_EQ(from_block(a, 0), from_block(b, 0));
  EXPECT_LE(2 * from_block(b, 1), from_block(a, 1) + 2 * 9) << from_block(a, 1) << " -> " << from_block(b, 1);
  std::vector<double> x(conv.in.size());
  for (double& v : x) v = u(g);
  const auto want = unpack(out, veil::test::apply_plain(a, pack(plain, x)));
  EXPECT_LT(max_abs_error(unpack(out, veil::test::apply_plain(b, pack(copies, x))), want), 1e-12);

  // A 2x2 pool writes 2x2 copies into the cells it leaves, then a convolution reads them.
  const LinearStage pool = sum_pool({4, 16, 16}, 2);
  const Layout pooled_in = Layout::compact(pool.in, 1024);
  Layout spread = pooled_in;
  spread.shape = pool.out;
  spread.row_stride = 32;
  spread.col_stride = 2;
  const Layout cells = Layout::cell_copies(spread);
  ASSERT_EQ(cells.copy_rows * cells.copy_cols, 4);
  const auto ps = pack_linear(pool, pooled_in, cells, false, true);
  std::vector<double> y(pool.in.size());
  for (double& v : y) v = u(g);
  const auto pooled = veil::test::apply_plain(ps, pack(pooled_in, y));
  EXPECT_LT(max_abs_error(unpack(cells, pooled), apply_weights(pool, y)), 1e-12);
  for (int i = 0; i < pool.out.size(); ++i)
    for (int k = 1; k < 4; ++k)
      EXPECT_NEAR(pooled[0][cells.slot(i) + cells.copy_offset(k)], pooled[0][cells.slot(i)], 1e-12);

  // 16 output channels of 8x8: 4 frames of 2x2 sub-positions in the cells.
  const LinearStage conv2 = conv_stage(pool.out, 16, 3, 1, 1, g, 0.3);
  Layout mux = spread;
  mux.shape = conv2.out;
  mux.mux_rows = mux.mux_cols = 2;
  mux.mux_row_stride = 16;
  mux.mux_col_stride = 1;
  mux.channels_per_block *= 4;
  ASSERT_TRUE(mux.injective());
  const auto from_spread = pack_linear(conv2, spread, mux, false, true);
  const auto from_cells = pack_linear(conv2, cells, mux, false, true);
  EXPECT_LT(from_cells.diagonals.size(), from_spread.diagonals.size());
  EXPECT_LE(from_cells.diagonals.size(), 4u * 9u);  // frame offsets x taps, no sub-positions
  EXPECT_GE(from_spread.diagonals.size(), 3 * from_cells.diagonals.size());
  const auto want2 = apply_weights(conv2, apply_weights(pool, y));
  EXPECT_LT(max_abs_error(unpack(mux, veil::test::apply_plain(from_cells, pooled)), want2), 1e-12);
  EXPECT_LT(
      max_abs_error(unpack(mux, veil::test::apply_plain(from_spread, pack(spread, apply_weights(pool, y)))),
                    want2),
      1e-12);
}

// The search packs a convolution's positions from one weight per tap (TapPattern); the
// plan's specs must equal the packing of every weight, diagonal for diagonal, in order.
TEST(Packing, SearchPositionsEqualThePackingOfEveryWeight) {
  for (std::uint64_t seed : {8, 9}) {
    const Network net = pooled_network(seed);
    const Packing p = pack_network(net, 512, false);
    int compared = 0;
    for (std::size_t k = 0; k < p.stages.size(); ++k) {
      const PackedStage& ps = p.stages[k];
      if (ps.kind != StageKind::kLinear) continue;
      ++compared;
      const auto want =
          pack_linear(net.stages[k].linear(), ps.in, ps.out, !ps.spec.fold_steps.empty(), false);
      EXPECT_EQ(ps.spec.unit, want.unit) << "stage " << k;
      ASSERT_EQ(ps.spec.diagonals.size(), want.diagonals.size()) << "stage " << k;
      for (std::size_t d = 0; d < want.diagonals.size(); ++d) {
        EXPECT_EQ(ps.spec.diagonals[d].step, want.diagonals[d].step) << "stage " << k;
        EXPECT_EQ(ps.spec.diagonals[d].in_block, want.diagonals[d].in_block);
        EXPECT_EQ(ps.spec.diagonals[d].out_block, want.diagonals[d].out_block);
      }
    }
    EXPECT_GE(compared, 5);
  }
}

std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no refusal)";
}

// decrypt_outputs decrypts only what looks like a result of the plan: an encrypted input
// (never evaluated) and a 3-polynomial ciphertext are refused, each with its reason.
TEST(EncryptedNetwork, DecryptRefusesCiphertextsThatAreNotResults) {
  const Network net = test_network(5);
  const Plan plan = make_plan(net, toy_options(Mode::kLatency, 11));
  Client c(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  EncryptedNetwork server(net, plan, c.ctx);
  std::mt19937_64 g(3);
  const auto in = encrypt_inputs(plan, c.encoder, c.encryptor, {random_input(net, g)});
  const auto out = server.evaluate(in, keys);
  EXPECT_NO_THROW(decrypt_outputs(plan, c.result, out, 1));
  const std::string input = refusal([&] { decrypt_outputs(plan, c.result, in, 1); });
  EXPECT_NE(input.find("not a result of this model"), std::string::npos) << input;
  // A result-shaped ciphertext (level, scale, slots) with three polynomials.
  std::vector<ckks::Ciphertext> unrelinearised;
  for (const auto& ct : out) unrelinearised.emplace_back(*c.ctx, 3, ct.level(), ct.scale(), ct.slots());
  ckks::Evaluator ev(c.ctx);
  const std::string three = refusal([&] { decrypt_outputs(plan, c.result, unrelinearised, 1); });
  EXPECT_NE(three.find("3 polynomials"), std::string::npos) << three;
  // As an input, the same ciphertext gets the same reason, not "other parameters".
  std::vector<ckks::Ciphertext> in3 = in;
  for (auto& ct : in3) ev.multiply_inplace(ct, ct);
  const std::string as_input = refusal([&] { server.evaluate(in3, keys); });
  EXPECT_NE(as_input.find("3 polynomials"), std::string::npos) << as_input;
}

TEST(Planner, RefusesTooDeepModelsNamingTheDepth) {
  Network net = test_network(1);
  for (int i = 0; i < 200; ++i) net.stages.push_back(poly({0.1, 0.2, 1.0}));
  PlanOptions o;
  try {
    make_plan(net, o);
    FAIL() << "expected a refusal";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("needs 206 levels"), std::string::npos) << e.what();
  }
}

// A weight of 1e38 passes every finiteness check but wraps around the modulus once
// encoded: the planner refuses it at load, naming the layer.
TEST(Planner, RefusesWeightsBeyondThePlaintextRangeNamingTheLayer) {
  Network net = test_network(5);
  EXPECT_NO_THROW(make_plan(net, toy_options(Mode::kLatency, 11)));
  net.stages[3].linear().name = "conv2";
  net.stages[3].linear().weights.val[7] = 1e38;
  for (Mode mode : {Mode::kLatency, Mode::kThroughput}) {
    const std::string why = refusal([&] { make_plan(net, toy_options(mode, 11)); });
    EXPECT_NE(why.find("layer 'conv2': a weight of magnitude 1e+38"), std::string::npos) << why;
  }
  // A bias that large, or an activation whose measured inputs exceed the range, likewise.
  Network biased = test_network(5);
  biased.stages[5].linear().name = "fc";
  biased.stages[5].linear().bias.assign(biased.stages[5].linear().bias.size(), 1e30);
  const std::string bias = refusal([&] { make_plan(biased, toy_options(Mode::kLatency, 11)); });
  EXPECT_NE(bias.find("layer 'fc': a bias of magnitude"), std::string::npos) << bias;
  Network wide = test_network(5);
  wide.stages[1].poly().name = "act1";
  wide.stages[1].poly().input_range = 1e80;  // beyond Q / scale even at the top level
  const std::string range = refusal([&] { make_plan(wide, toy_options(Mode::kLatency, 11)); });
  EXPECT_NE(range.find("activation 'act1': its inputs reach"), std::string::npos) << range;
}

// A plan's kept decisions (veil's plan cache) rebuild the same plan without the layout
// search: at 128-bit security, with and without a ring switch (chosen by the planner, and
// forced), through the byte form.
TEST(Planner, KeptChoiceRebuildsTheSamePlan) {
  struct Case {
    Network net;
    PlanOptions options;
  };
  std::vector<Case> cases;
  cases.push_back({test_network(2), PlanOptions{}});
  cases.push_back({pooled_network(14), PlanOptions{}});
  PlanOptions forced = toy_options(Mode::kLatency, 11);
  forced.ring_switch_after = 7;
  cases.push_back({pooled_network(14), forced});
  PlanOptions avoid = toy_options(Mode::kLatency, 10);
  avoid.level_pricing = LevelPricing::kAvoid;
  cases.push_back({pooled_network(8), avoid});
  bool switched = false;
  for (const Case& c : cases) {
    const Plan plan = make_plan(c.net, c.options);
    switched = switched || plan.small_params.has_value();
    const PlanChoice choice = plan_choice(plan);
    const PlanChoice read = load_plan_choice(save_plan_choice(choice));
    EXPECT_TRUE(read == choice);
    test::expect_same_plan(plan_from_choice(c.net, c.options, read), plan);
  }
  EXPECT_TRUE(switched);  // the ring-switch path was exercised
}

// A choice that does not fit the network or the options is refused by name, never
// turned into a plan: another network, a layout with two elements in one slot, a ring
// whose slots disagree, a scale below the minimum, bytes cut short or left over.
TEST(Planner, KeptChoiceThatDoesNotFitIsRefused) {
  const Network net = pooled_network(8);
  const PlanOptions o = toy_options(Mode::kLatency, 10);
  const PlanChoice good = plan_choice(make_plan(net, o));
  EXPECT_NO_THROW(plan_from_choice(net, o, good));
  auto why = [&](const Network& n, const PlanChoice& c) {
    try {
      plan_from_choice(n, o, c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(why(test_network(2), good).find("the network has 6"), std::string::npos)
      << why(test_network(2), good);
  PlanChoice overlap = good;
  overlap.packing.outputs[0].channel_stride = 0;  // every channel on one slot
  EXPECT_NE(why(net, overlap).find("stage 1"), std::string::npos) << why(net, overlap);
  PlanChoice ring = good;
  ring.log_n = 11;
  EXPECT_NE(why(net, ring).find("2^11"), std::string::npos) << why(net, ring);
  PlanChoice scale = good;
  scale.scale_bits = 12;
  EXPECT_NE(why(net, scale).find("scale"), std::string::npos) << why(net, scale);
  PlanChoice stages = good;
  stages.packing.outputs.pop_back();
  stages.packing.folds.pop_back();
  EXPECT_NE(why(net, stages).find("stages"), std::string::npos) << why(net, stages);
  PlanChoice poly_moved = good;
  poly_moved.packing.outputs[1].channels_per_block = 1;  // a block per channel
  poly_moved.packing.outputs[1].mux_rows = poly_moved.packing.outputs[1].mux_cols = 1;
  ASSERT_FALSE(poly_moved.packing.outputs[1] == good.packing.outputs[1]);
  EXPECT_NE(why(net, poly_moved).find("differ in layout"), std::string::npos) << why(net, poly_moved);
  const Bytes bytes = save_plan_choice(good);
  EXPECT_THROW(load_plan_choice(std::span(bytes).first(bytes.size() - 1)), std::runtime_error);
  Bytes longer = bytes;
  longer.push_back(0);
  EXPECT_THROW(load_plan_choice(longer), std::runtime_error);
}

// The smallest ring that holds a network is not always the fastest: a width-16
// cifar10-shallow (six monic squares, depth 13) fits N = 2^14 only with 14 key-switching
// digits, and 2^15, with two, is predicted (and measured) faster. make_plan plans the next
// ring too when the smallest needs more than two digits and keeps the faster.
TEST(Planner, SecureNextRingWinsWhenTheSmallestNeedsManyDigits) {
  std::mt19937_64 g(16);
  Network net;
  net.name = "shallow-16";
  net.input = {3, 32, 32};
  const int w = 16;
  auto conv = [&](Shape in, int cout) {
    // Weights of a normalised network: unit fan-in variance keeps values near 1.
    net.stages.push_back(linear(conv_stage(in, cout, 3, 1, 1, g, 0.5 / std::sqrt(9.0 * in.c))));
    net.stages.push_back(poly({0.05, 0.4, 1.0}));
  };
  conv({3, 32, 32}, w);
  conv({w, 32, 32}, 2 * w);
  net.stages.push_back(linear(sum_pool({2 * w, 32, 32}, 2)));
  conv({2 * w, 16, 16}, 2 * w);
  conv({2 * w, 16, 16}, 4 * w);
  net.stages.push_back(linear(sum_pool({4 * w, 16, 16}, 2)));
  conv({4 * w, 8, 8}, 4 * w);
  net.stages.push_back(linear(sum_pool({4 * w, 8, 8}, 2)));
  conv({4 * w, 4, 4}, 8 * w);
  net.stages.push_back(linear(dense({8 * w, 4, 4}, 10, g, 0.02)));
  // Random weights have none of a trained network's cancellations, so the worst-case
  // precision bound is low: accept it, so that 2^14 counts as precise enough.
  PlanOptions o;
  o.min_precision_bits = -8;
  PlanOptions smallest_only = o;
  smallest_only.log_n = 14;
  const Plan smallest = make_plan(net, smallest_only);
  ASSERT_GT(smallest.params.dnum, 2) << smallest.describe();
  ASSERT_GE(smallest.predicted_precision_bits, o.min_precision_bits);
  const Plan plan = make_plan(net, o);
  EXPECT_EQ(plan.params.log_n, 15) << plan.describe();
  EXPECT_LT(plan.predicted_seconds, smallest.predicted_seconds);
  EXPECT_TRUE(plan.params.is_128_bit_secure());
  // Where the smallest ring has few digits it stays: the network of the tests above.
  const Plan small = make_plan(test_network(2), PlanOptions{});
  EXPECT_LE(small.params.dnum, 2);
  PlanOptions fixed;
  fixed.log_n = small.params.log_n;
  EXPECT_EQ(make_plan(test_network(2), fixed).params.log_n, small.params.log_n);
}

TEST(Planner, DefaultPlansAre128BitSecure) {
  const Network net = test_network(2);
  const Plan plan = make_plan(net, PlanOptions{});
  EXPECT_TRUE(plan.params.is_128_bit_secure());
  EXPECT_TRUE(plan.params.validate().empty());
  EXPECT_GE(plan.params.log_n, 13);
}

}  // namespace
}  // namespace veil::nn
