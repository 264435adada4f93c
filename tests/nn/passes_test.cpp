// Lowering and the merging passes: every combination of passes computes what the graph
// computes (random models covering each pass's cases), the passes produce the intended
// structure, and cost() counts levels as documented.
#include "veil/nn/passes.hpp"

#include <gtest/gtest.h>

#include "nn/nn_test_util.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::nn {
namespace {

using test::add_batch_norm;
using test::add_conv;
using test::add_gemm;
using test::add_poly;
using test::add_pool;
using test::add_simple;

// delphi-like: Conv-BN-Poly-Pool-Conv(stride 2)-BN-Poly-Pool-Flatten-Gemm-BN-Poly-Gemm.
Graph delphi_like(std::mt19937_64& rng) {
  Graph g = test::empty_graph({2, 12, 12});
  int x = add_conv(g, -1, 4, 3, 1, 1, 1, rng);
  x = add_poly(g, add_batch_norm(g, x, rng), {0.2, 0.5, 0.3});
  x = add_pool(g, x, 2, 2);
  x = add_conv(g, x, 4, 3, 2, 1, 1, rng);
  x = add_poly(g, add_batch_norm(g, x, rng), {-0.1, 0.8, 0.6});
  x = add_pool(g, x, 2, 2);
  x = add_gemm(g, add_simple(g, OpKind::kFlatten, x, "flatten"), 6, rng);
  x = add_poly(g, add_batch_norm(g, x, rng), {0.1, 1.2, -0.7});
  g.output = add_gemm(g, x, 3, rng);
  return g;
}

// Conv(stride 2)-Conv with nothing between, then Poly-GAP-Gemm.
Graph conv_conv_gap(std::mt19937_64& rng) {
  Graph g = test::empty_graph({3, 9, 9});
  int x = add_conv(g, -1, 4, 3, 2, 1, 1, rng);
  x = add_conv(g, x, 5, 3, 1, 1, 1, rng);
  x = add_poly(g, x, {0.0, 1.0, 0.5});
  x = add_simple(g, OpKind::kGlobalAveragePool, x, "gap");
  g.output = add_gemm(g, add_simple(g, OpKind::kFlatten, x, "flatten"), 4, rng);
  return g;
}

// Depthwise conv, degree-4 poly with c3 = 0, padded 3x3/2 pool, 1x1 conv, final poly.
Graph depthwise_tail_poly(std::mt19937_64& rng) {
  Graph g = test::empty_graph({3, 8, 8});
  int x = add_conv(g, -1, 3, 3, 1, 1, 3, rng);
  x = add_poly(g, add_batch_norm(g, x, rng), {0.7, 0.5, 0.09, 0.0, -0.002});
  x = add_pool(g, x, 3, 2, 1);
  x = add_conv(g, x, 2, 1, 1, 0, 1, rng);
  g.output = add_poly(g, x, {0.1, 0.4, 0.25});  // nothing linear follows
  return g;
}

// Poly on the input, two pools in a row, a poly with a zero leading coefficient, two
// dense layers in a row.
Graph pools_and_dense(std::mt19937_64& rng) {
  Graph g = test::empty_graph({2, 8, 8});
  int x = add_poly(g, -1, {0.0, 1.0, 0.25});
  x = add_pool(g, x, 2, 2);
  x = add_pool(g, x, 2, 1);
  x = add_conv(g, x, 3, 2, 1, 0, 1, rng);
  x = add_poly(g, x, {0.3, 0.6, 0.2, 0.0});
  x = add_gemm(g, add_simple(g, OpKind::kFlatten, x, "flatten"), 5, rng);
  g.output = add_gemm(g, x, 2, rng);
  return g;
}

// BN straight on the input, a pool followed by a polynomial (its 1/k^2 cannot move).
Graph bn_first_pool_poly(std::mt19937_64& rng) {
  Graph g = test::empty_graph({2, 6, 6});
  int x = add_batch_norm(g, -1, rng);
  x = add_conv(g, x, 3, 3, 1, 0, 1, rng);
  x = add_poly(g, x, {0.1, 0.9, 0.4});
  x = add_pool(g, x, 2, 2);
  x = add_poly(g, x, {0.0, 1.1, 0.3});
  g.output = add_gemm(g, add_simple(g, OpKind::kFlatten, x, "flatten"), 3, rng);
  return g;
}

LowerOptions options_from_bits(int bits) {
  LowerOptions o;
  o.fold_batch_norm = bits & 1;
  o.fold_pool_scale = bits & 2;
  o.fold_poly_leading = bits & 4;
  o.merge_linear = bits & 8;
  o.square_batch_norm = bits & 16;
  return o;
}

int count_linear(const Network& n) {
  int c = 0;
  for (const Stage& s : n.stages) c += s.is<LinearStage>();
  return c;
}

TEST(Passes, EveryCombinationComputesTheGraph) {
  for (std::uint64_t seed : {1, 2, 3}) {
    std::mt19937_64 rng(seed);
    const Graph graphs[] = {delphi_like(rng), conv_conv_gap(rng), depthwise_tail_poly(rng),
                            pools_and_dense(rng), bn_first_pool_poly(rng)};
    for (std::size_t k = 0; k < std::size(graphs); ++k) {
      const Graph& g = graphs[k];
      std::vector<std::vector<double>> inputs, want;
      for (int i = 0; i < 3; ++i) {
        inputs.push_back(test::random_vector(g.input.size(), rng));
        want.push_back(evaluate(g, inputs.back()));
      }
      for (int bits = 0; bits < 32; ++bits) {
        SCOPED_TRACE("seed " + std::to_string(seed) + " graph " + std::to_string(k) + " passes " +
                     std::to_string(bits));
        const Network n = lower(g, options_from_bits(bits));
        for (int i = 0; i < 3; ++i) EXPECT_LT(test::max_rel_diff(evaluate(n, inputs[i]), want[i]), 1e-9);
      }
    }
  }
}

TEST(Passes, NoPassesKeepsEveryStage) {
  std::mt19937_64 rng(1);
  const Graph g = delphi_like(rng);
  const Network n = lower(g, LowerOptions::none());
  ASSERT_EQ(n.stages.size(), g.nodes.size() - 1);  // all but Flatten
  const LinearStage& pool = n.stages[3].linear();
  EXPECT_FALSE(pool.unit_weights);
  for (double v : pool.weights.val) EXPECT_EQ(v, 0.25);
  EXPECT_EQ(n.stages[2].poly().coefficients, (std::vector<double>{0.2, 0.5, 0.3}));
  EXPECT_EQ(n.stages[1].linear().name, g.nodes[1].name);  // BN on its own
  EXPECT_EQ(count_linear(n), 9);
}

TEST(Passes, AllPassesOnADelphiLikeModel) {
  std::mt19937_64 rng(1);
  const Graph g = delphi_like(rng);
  const Network n = lower(g);
  // conv+bn | poly | sum pool | conv+bn | poly | pool+gemm+bn | poly | gemm
  ASSERT_EQ(n.stages.size(), 8u);
  const StageKind L = StageKind::kLinear, P = StageKind::kPoly;
  const StageKind kinds[] = {L, P, L, L, P, L, P, L};
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(n.stages[i].kind(), kinds[i]) << i;
  EXPECT_EQ(n.stages[0].linear().name, "conv0+bn1");
  const LinearStage& sum_pool = n.stages[2].linear();
  EXPECT_TRUE(sum_pool.unit_weights);
  EXPECT_TRUE(sum_pool.spatial);
  EXPECT_EQ(sum_pool.stride_y, 2);
  for (double v : sum_pool.weights.val) EXPECT_EQ(v, 1.0);
  for (double v : sum_pool.bias) EXPECT_EQ(v, 0.0);
  // (d) leaves the sum pool in front of the conv; the conv keeps its own geometry.
  EXPECT_EQ(n.stages[3].linear().name, "conv4+bn5");
  EXPECT_TRUE(n.stages[3].linear().spatial);
  EXPECT_EQ(n.stages[3].linear().stride_y, 2);
  EXPECT_EQ(n.stages[5].linear().name, "pool7+fc9+bn10");
  EXPECT_FALSE(n.stages[5].linear().spatial);
  for (int i : {1, 4, 6}) {
    EXPECT_EQ(n.stages[i].poly().coefficients.back(), 1.0) << "poly " << i << " is monic";
    EXPECT_EQ(n.stages[i].poly().degree(), 2);
  }
  // p(x) = 0.3 (x^2 + 5/3 x + 2/3).
  EXPECT_NEAR(n.stages[1].poly().coefficients[1], 0.5 / 0.3, 1e-15);
  EXPECT_NEAR(n.stages[1].poly().coefficients[0], 0.2 / 0.3, 1e-15);
}

TEST(Passes, PoolScaleMovesIntoTheNextConvolution) {
  std::mt19937_64 rng(1);
  const Graph g = delphi_like(rng);
  LowerOptions only_pools = LowerOptions::none();
  only_pools.fold_pool_scale = true;
  const Network before = lower(g, LowerOptions::none());
  const Network after = lower(g, only_pools);
  // pool1 -> conv: sum pool, conv weights x 1/4. pool2 -> Gemm (dense): one stage.
  ASSERT_EQ(after.stages.size(), before.stages.size() - 1);
  EXPECT_TRUE(after.stages[3].linear().unit_weights);
  const auto& w_before = before.stages[4].linear().weights.val;
  const auto& w_after = after.stages[4].linear().weights.val;
  ASSERT_EQ(w_before.size(), w_after.size());
  for (std::size_t i = 0; i < w_before.size(); ++i) EXPECT_DOUBLE_EQ(w_after[i], w_before[i] / 4);
  EXPECT_EQ(after.stages[7].linear().name, "pool7+fc9");
}

TEST(Passes, MergesConsecutiveConvolutionsAndGlobalPoolIntoDense) {
  std::mt19937_64 rng(2);
  const Graph g = conv_conv_gap(rng);
  const Network n = lower(g);
  ASSERT_EQ(n.stages.size(), 3u);
  const LinearStage& convs = n.stages[0].linear();
  EXPECT_EQ(convs.name, "conv0+conv1");
  EXPECT_TRUE(convs.spatial);
  EXPECT_EQ(convs.stride_y, 2);  // 2 x 1
  EXPECT_EQ(convs.in, (Shape{3, 9, 9}));
  EXPECT_EQ(convs.out, (Shape{5, 5, 5}));
  const LinearStage& head = n.stages[2].linear();
  EXPECT_EQ(head.name, "gap+fc5");
  EXPECT_FALSE(head.spatial);
  EXPECT_EQ(head.weights.nnz(), 4 * 5 * 25);
  // Without (d) but with (b), GAP + Gemm still become one stage.
  LowerOptions no_merge;
  no_merge.merge_linear = false;
  EXPECT_EQ(lower(g, no_merge).stages.size(), 4u);
}

TEST(Passes, LeadingCoefficientNeedsAFollowingLinearStage) {
  std::mt19937_64 rng(3);
  const Network tail = lower(depthwise_tail_poly(rng));
  ASSERT_EQ(tail.stages.back().kind(), StageKind::kPoly);
  EXPECT_EQ(tail.stages.back().poly().coefficients, (std::vector<double>{0.1, 0.4, 0.25}));  // untouched
  const PolyStage& quartic = tail.stages[1].poly();
  EXPECT_EQ(quartic.degree(), 4);
  EXPECT_EQ(quartic.coefficients.back(), 1.0);
  EXPECT_EQ(quartic.coefficients[3], 0.0);
  // The padded 3x3 pool in front of a 1x1 conv: sum pool, 1/9 moved into the conv.
  EXPECT_TRUE(tail.stages[2].linear().unit_weights);

  const Network pools = lower(pools_and_dense(rng));
  // The zero leading coefficient is trimmed before folding: degree 3 -> monic degree 2.
  bool found = false;
  for (const Stage& s : pools.stages)
    if (s.is<PolyStage>() && s.poly().name == "act4") {
      found = true;
      EXPECT_EQ(s.poly().degree(), 2);
      EXPECT_EQ(s.poly().coefficients.back(), 1.0);
    }
  EXPECT_TRUE(found);
  // The first poly is monic already; the scale of the two pools lands in the conv, the
  // first pool stays a sum pool, the second (after a sum pool) is not merged into it.
  EXPECT_EQ(pools.stages[0].poly().coefficients, (std::vector<double>{0.0, 4.0, 1.0}));  // 0.25 moved on
  EXPECT_TRUE(pools.stages[1].linear().unit_weights);
  EXPECT_TRUE(pools.stages[2].linear().unit_weights);
}

TEST(Passes, PoolFollowedByPolynomialKeepsItsScale) {
  std::mt19937_64 rng(4);
  const Network n = lower(bn_first_pool_poly(rng));
  // bn+conv | poly | pool (1/4) | poly | gemm
  ASSERT_EQ(n.stages.size(), 5u);
  EXPECT_EQ(n.stages[0].linear().name, "bn0+conv1");
  const LinearStage& pool = n.stages[2].linear();
  EXPECT_FALSE(pool.unit_weights);
  for (double v : pool.weights.val) EXPECT_NEAR(v, 0.25 * 0.4, 1e-15);  // 1/k^2 and the poly's c2
}

TEST(Passes, ResidualAddLowersToAnAddStage) {
  std::mt19937_64 rng(5);
  Graph g = test::empty_graph({1, 4, 4});
  const int c = add_conv(g, -1, 1, 3, 1, 1, 1, rng);
  Node add;
  add.op = OpKind::kAdd;
  add.name = "/layer1/Add";
  add.inputs = {c, -1};
  g.output = add_node(g, add);
  const Network net = lower(g);
  ASSERT_EQ(net.stages.size(), 2u);
  EXPECT_EQ(net.stages[1].kind(), StageKind::kAdd);
  EXPECT_EQ(net.stages[1].add().name, "/layer1/Add");
  EXPECT_EQ(net.stages[1].inputs, (std::vector<int>{0, -1}));
  EXPECT_FALSE(net.is_chain());
  const auto x = test::random_vector(16, rng);
  EXPECT_LT(test::max_rel_diff(evaluate(net, x), evaluate(g, x)), 1e-12);
  EXPECT_EQ(cost(net).depth, 1);

  Graph skip = test::empty_graph({1, 4, 4});
  const int c0 = add_conv(skip, -1, 1, 3, 1, 1, 1, rng);
  add_poly(skip, c0, {0, 1, 1});
  skip.output = add_gemm(skip, c0, 2, rng);  // reads the conv, not the poly: a dead node
  EXPECT_THROW(lower(skip), std::invalid_argument);
}

// conv -> BN, with the conv's output also on the skip path: folding BN into the conv
// would change what the Add reads. Every pass combination must still compute the graph,
// and BN must stay a stage of its own.
TEST(Passes, BatchNormDoesNotFoldAcrossAFork) {
  std::mt19937_64 rng(21);
  Graph g = test::empty_graph({2, 5, 5});
  const int c0 = add_conv(g, -1, 2, 3, 1, 1, 1, rng);
  const int bn = add_batch_norm(g, c0, rng);
  Node add;
  add.op = OpKind::kAdd;
  add.name = "join";
  add.inputs = {bn, c0};
  const int a = add_node(g, add);
  const int bn2 = add_batch_norm(g, a, rng);  // after the join: nothing to fold into
  g.output = add_gemm(g, add_simple(g, OpKind::kFlatten, bn2, "flat"), 3, rng);
  const auto x = test::random_vector(50, rng);
  const auto expected = evaluate(g, x);
  for (int bits = 0; bits < 32; ++bits) {
    SCOPED_TRACE(bits);
    const Network net = lower(g, options_from_bits(bits));
    EXPECT_LT(test::max_rel_diff(evaluate(net, x), expected), 1e-10);
  }
  const Network net = lower(g);
  // conv, BN, add, then BN2 merged with the Gemm (a chain again after the join).
  ASSERT_EQ(net.stages.size(), 4u);
  EXPECT_EQ(net.stages[1].linear().name, g.nodes[bn].name);
  EXPECT_EQ(net.stages[2].kind(), StageKind::kAdd);
  EXPECT_EQ(net.stages[2].inputs, (std::vector<int>{1, 0}));
  EXPECT_EQ(net.stages[3].inputs, (std::vector<int>{2}));
}

// The residual block of the issue: conv -> act -> conv, plus the skip from the act, add,
// global pool, fc. The polynomial's leading coefficient must not move into the second
// conv (the skip reads the polynomial too); the pool and fc may merge after the join.
TEST(Passes, ResidualBlockKeepsThePolynomialWhole) {
  std::mt19937_64 rng(22);
  Graph g = test::empty_graph({1, 6, 6});
  const int c0 = add_conv(g, -1, 3, 3, 1, 1, 1, rng);
  const int act = add_poly(g, c0, {0.1, 0.5, 0.25});
  const int c1 = add_conv(g, act, 3, 3, 1, 1, 1, rng);
  Node add;
  add.op = OpKind::kAdd;
  add.name = "join";
  add.inputs = {c1, act};
  const int a = add_node(g, add);
  const int gap = add_simple(g, OpKind::kGlobalAveragePool, a, "gap");
  g.output = add_gemm(g, add_simple(g, OpKind::kFlatten, gap, "flat"), 4, rng);
  const auto x = test::random_vector(36, rng);
  const auto expected = evaluate(g, x);
  for (int bits = 0; bits < 32; ++bits) {
    SCOPED_TRACE(bits);
    EXPECT_LT(test::max_rel_diff(evaluate(lower(g, options_from_bits(bits)), x), expected), 1e-10);
  }
  const Network net = lower(g);
  ASSERT_EQ(net.stages.size(), 5u);  // conv, poly, conv, add, gap+fc
  EXPECT_EQ(net.stages[1].poly().coefficients, (std::vector<double>{0.1, 0.5, 0.25}));
  EXPECT_EQ(net.stages[3].inputs, (std::vector<int>{2, 1}));
  // Depth: conv 1, poly 2 (not monic), conv 1, add 0, gap+fc 1.
  EXPECT_EQ(cost(net).depth, 5);
  EXPECT_NE(describe(net).find("add join"), std::string::npos);
}

// A pre-activation block's activation feeds both the branch convolution and the 1x1
// projection shortcut: its leading coefficient moves into both, so the quadratic costs one
// level; an activation also read by an Add (above) keeps it.
TEST(Passes, ForkIntoTwoConvolutionsMakesThePolynomialMonic) {
  std::mt19937_64 rng(23);
  Graph g = test::empty_graph({2, 6, 6});
  const int c0 = add_conv(g, -1, 3, 3, 1, 1, 1, rng);
  const int act = add_poly(g, c0, {0.1, 0.5, 0.25});
  const int branch = add_conv(g, act, 4, 3, 2, 1, 1, rng);
  const int shortcut = add_conv(g, act, 4, 1, 2, 0, 1, rng);
  Node add;
  add.op = OpKind::kAdd;
  add.name = "join";
  add.inputs = {branch, shortcut};
  const int a = add_node(g, add);
  g.output = add_gemm(g, add_simple(g, OpKind::kFlatten, a, "flat"), 4, rng);
  const auto x = test::random_vector(72, rng);
  const auto expected = evaluate(g, x);
  for (int bits = 0; bits < 32; ++bits) {
    SCOPED_TRACE(bits);
    EXPECT_LT(test::max_rel_diff(evaluate(lower(g, options_from_bits(bits)), x), expected), 1e-10);
  }
  const Network net = lower(g);
  ASSERT_EQ(net.stages[1].kind(), StageKind::kPoly);
  EXPECT_EQ(net.stages[1].poly().coefficients, (std::vector<double>{0.4, 2.0, 1.0}));
  // conv 1, poly 1 (monic), conv 1, add 0, fc 1.
  EXPECT_EQ(cost(net).depth, 4);
}

TEST(Cost, ShippedModelsBeforeAndAfterMerging) {
  struct Expect {
    const char* model;
    int depth_before, depth_after, stages_before, stages_after;
  };
  for (const Expect& e : {Expect{"mnist-cryptonets", 9, 5, 7, 5}, Expect{"mnist-delphi", 15, 7, 12, 8},
                          Expect{"fashion-delphi", 15, 7, 12, 8}}) {
    SCOPED_TRACE(e.model);
    const Graph g = load_onnx(test::source_path(std::string("models/") + e.model + ".onnx"));
    const CostReport before = cost(lower(g, LowerOptions::none()));
    const Network merged = lower(g);
    const CostReport after = cost(merged);
    EXPECT_EQ(before.depth, e.depth_before);
    EXPECT_EQ(after.depth, e.depth_after);
    EXPECT_EQ(before.num_stages(), e.stages_before);
    EXPECT_EQ(after.num_stages(), e.stages_after);
    EXPECT_EQ(after.poly_stages, before.poly_stages);
    std::int64_t nnz = 0;
    for (const Stage& s : merged.stages)
      if (s.is<LinearStage>() && !s.linear().unit_weights) nnz += s.linear().weights.nnz();
    EXPECT_EQ(after.plaintext_mults, nnz);
    // Each value of a monic degree-2 polynomial: one square, one c1 x, two additions.
    EXPECT_EQ(after.ciphertext_mults, before.ciphertext_mults);
    EXPECT_EQ(after.constant_mults, after.ciphertext_mults);
  }
}

TEST(Cost, PolynomialDepthRules) {
  Network n;
  n.input = {1, 1, 2};
  auto poly = [&](std::vector<double> c) {
    PolyStage p;
    p.name = "p";
    p.coefficients = std::move(c);
    n.stages = {Stage(p)};
    return cost(n).stages[0];
  };
  EXPECT_EQ(poly({0.1, 0.5, 0.3}).depth, 2);       // c2 x^2: one more level
  EXPECT_EQ(poly({0.1, 0.5, 1.0}).depth, 1);       // monic
  EXPECT_EQ(poly({0.1, 0.5, 1.0, 0.0}).depth, 1);  // trailing zero ignored
  EXPECT_EQ(poly({0.1, 0.5, 0.1, 0.0, 1.0}).depth, 2);
  EXPECT_EQ(poly({0.1, 0.5, 0.1, 0.0, 0.5}).depth, 3);
  EXPECT_EQ(poly({0.1, 0.5, 0.1, 1.0}).depth, 2);
  EXPECT_EQ(poly({0.1, 1.0}).depth, 0);
  EXPECT_EQ(poly({0.1, 2.0}).depth, 1);
  EXPECT_EQ(poly({0.7}).depth, 0);
  const StageCost even = poly({0.7, 0.5, 0.09, 0.0, 1.0});
  EXPECT_EQ(even.ciphertext_mults, 2 * 2);  // x^2, x^4 for each of 2 values
  EXPECT_EQ(even.constant_mults, 2 * 2);    // 0.5 x, 0.09 x^2
  EXPECT_EQ(even.plaintext_mults, 0);
  EXPECT_EQ(even.additions, 3 * 2);
  EXPECT_EQ(poly({0, 0, 0, 0, 0, 1.0}).ciphertext_mults, 3 * 2);  // x^2, x^4, x^5
}

TEST(Cost, SumPoolCostsNoLevel) {
  std::mt19937_64 rng(1);
  const Network n = lower(delphi_like(rng));
  const CostReport c = cost(n);
  const StageCost& pool = c.stages[2];
  EXPECT_EQ(pool.depth, 0);
  EXPECT_EQ(pool.plaintext_mults, 0);
  EXPECT_EQ(pool.additions, n.stages[2].linear().weights.nnz() - n.stages[2].linear().out.size());
  EXPECT_EQ(c.depth, 1 + 1 + 0 + 1 + 1 + 1 + 1 + 1);
  EXPECT_EQ(c.linear_stages + c.poly_stages, 8);
}

// A pre-activation block opening: the residual stream (an Add's output, also read by the
// next Add) -> BN -> quadratic -> conv. BN has nothing to fold into, so pass (e) turns BN
// + quadratic into a shift and a plain square, one level instead of two, and the graph
// still computes the same values; the conv carries a^2 and the constant.
Graph block_opening(std::mt19937_64& rng, double gamma_scale) {
  Graph g = test::empty_graph({2, 5, 5});
  const int c0 = add_conv(g, -1, 3, 3, 1, 1, 1, rng);
  const int c1 = add_conv(g, c0, 3, 3, 1, 1, 1, rng);
  Node add;
  add.op = OpKind::kAdd;
  add.name = "join";
  add.inputs = {c1, c0};
  const int a = add_node(g, add);
  const int bn = add_batch_norm(g, a, rng);
  for (double& w : g.nodes[bn].weights) w *= gamma_scale;
  const int act = add_poly(g, bn, {0.3, -0.7, 0.4});
  g.nodes[act].input_range = 6;
  const int c2 = add_conv(g, act, 2, 3, 1, 1, 1, rng);
  Node add2 = add;
  add2.name = "join2";
  add2.inputs = {add_conv(g, c2, 3, 1, 1, 0, 1, rng), a};
  const int j2 = add_node(g, add2);
  g.output = add_gemm(g, add_simple(g, OpKind::kFlatten, j2, "flat"), 4, rng);
  return g;
}

TEST(Passes, BatchNormBeforeAQuadraticBecomesAShiftAndASquare) {
  std::mt19937_64 rng(31);
  const Graph g = block_opening(rng, 1.0);
  const Network with = lower(g);
  LowerOptions off;
  off.square_batch_norm = false;
  const Network without = lower(g, off);
  EXPECT_EQ(cost(with).depth, cost(without).depth - 1);
  int shifts = 0;
  for (const Stage& s : with.stages) {
    if (s.kind() == StageKind::kPoly) {
      EXPECT_EQ(s.poly().coefficients, (std::vector<double>{0, 0, 1}));
    }
    if (s.kind() == StageKind::kLinear && s.linear().unit_weights) {
      ++shifts;
      EXPECT_EQ(cost(with).stages[&s - with.stages.data()].depth, 0);
    }
  }
  EXPECT_EQ(shifts, 1);
  for (int i = 0; i < 4; ++i) {
    const auto x = test::random_vector(50, rng);
    const auto expected = evaluate(g, x);
    EXPECT_LT(test::max_rel_diff(evaluate(with, x), expected), 1e-10);
    EXPECT_LT(test::max_rel_diff(evaluate(without, x), expected), 1e-10);
  }
}

// A channel with a tiny gamma would shift values by b/gamma, far beyond what the chain
// has room for: the pass leaves such a pair as it is.
TEST(Passes, BatchNormWithATinyScaleIsNotSquared) {
  std::mt19937_64 rng(32);
  const Graph g = block_opening(rng, 1e-4);
  const Network net = lower(g);
  for (const Stage& s : net.stages) {
    if (s.kind() == StageKind::kLinear) {
      EXPECT_FALSE(s.linear().unit_weights) << s.linear().name;
    }
  }
  const auto x = test::random_vector(50, rng);
  EXPECT_LT(test::max_rel_diff(evaluate(net, x), evaluate(g, x)), 1e-10);
}

}  // namespace
}  // namespace veil::nn
