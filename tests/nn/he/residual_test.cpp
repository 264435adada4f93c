// Residual networks under CKKS: a small pre-activation ResNet built in C++ (an identity
// block, then a downsampling block with a strided 1x1 projection shortcut) evaluated fully
// encrypted in both modes and compared with the plain evaluator of the same lowered
// network; the planner's level bookkeeping at the joins; and the refusals of graphs the
// encrypted evaluators cannot run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "nn/he/he_test_util.hpp"
#include "nn/nn_test_util.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::nn {
namespace {

using test::Client;
using test::max_abs_error;

int add_join(Graph& g, int a, int b, const std::string& name) {
  Node add;
  add.op = OpKind::kAdd;
  add.name = name;
  add.inputs = {a, b};
  return add_node(g, add);
}

// 2x8x8 -> conv 4 -> [act, conv, act, conv] + identity -> act -> [conv stride 2, act,
// conv] + conv 1x1 stride 2 (projection of the pre-activated input, as in PreAct ResNet)
// -> act -> global average pool -> dense 10. The two activations after a join have a
// batch norm before them, as in PreAct ResNet; lowering makes each a shift and a square.
Network preact_resnet(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::vector<double> act = {0.1, 0.5, 0.25};
  Graph g = test::empty_graph({2, 8, 8});
  const int stem = test::add_conv(g, -1, 4, 3, 1, 1, 1, rng);
  int x = test::add_poly(g, stem, act);
  x = test::add_conv(g, x, 4, 3, 1, 1, 1, rng);
  x = test::add_poly(g, x, act);
  x = test::add_conv(g, x, 4, 3, 1, 1, 1, rng);
  const int block1 = add_join(g, x, stem, "/layer1/Add");
  // The pre-activation BN on the residual stream (passes.hpp (e) makes it a shift).
  const int pre = test::add_poly(g, test::add_batch_norm(g, block1, rng), act);
  g.nodes[pre].input_range = 4;
  x = test::add_conv(g, pre, 8, 3, 2, 1, 1, rng);
  x = test::add_poly(g, x, act);
  x = test::add_conv(g, x, 8, 3, 1, 1, 1, rng);
  const int shortcut = test::add_conv(g, pre, 8, 1, 2, 0, 1, rng);
  const int block2 = add_join(g, x, shortcut, "/layer2/Add");
  x = test::add_poly(g, test::add_batch_norm(g, block2, rng), act);
  g.nodes[x].input_range = 4;
  x = test::add_simple(g, OpKind::kGlobalAveragePool, x, "gap");
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, x, "flat"), 10, rng);
  return lower(g);
}

PlanOptions toy_options(Mode mode, int log_n) {
  PlanOptions o;
  o.mode = mode;
  o.log_n = log_n;
  o.allow_insecure = true;  // toy ring: tests only
  o.target_scale_bits = 36;
  return o;
}

std::size_t argmax(const std::vector<double>& v) {
  return static_cast<std::size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no refusal)";
}

int find_stage(const Network& net, const std::string& name) {
  for (std::size_t k = 0; k < net.stages.size(); ++k)
    if (net.stages[k].name() == name) return static_cast<int>(k);
  ADD_FAILURE() << "no stage " << name;
  return 0;
}

TEST(Residual, LoweredNetworkHasBothShortcuts) {
  const Network net = preact_resnet(1);
  EXPECT_FALSE(net.is_chain());
  const int add1 = find_stage(net, "/layer1/Add"), add2 = find_stage(net, "/layer2/Add");
  const auto in1 = net.inputs_of(add1), in2 = net.inputs_of(add2);
  ASSERT_EQ(in2.size(), 2u);
  // The projection: a strided 1x1 convolution, spatial, stride 2.
  const Stage& proj = net.stages[in2[1]];
  ASSERT_EQ(proj.kind(), StageKind::kLinear);
  EXPECT_TRUE(proj.linear().spatial);
  EXPECT_EQ(proj.linear().stride_y, 2);
  EXPECT_EQ(proj.linear().out, (Shape{8, 4, 4}));
  EXPECT_EQ(net.stages[in1[1]].kind(), StageKind::kLinear);  // the stem, read twice
  int shifts = 0;
  for (const Stage& s : net.stages) shifts += s.kind() == StageKind::kLinear && s.linear().unit_weights;
  EXPECT_EQ(shifts, 2);
}

class ResidualLatency : public ::testing::TestWithParam<int> {};

// log_n 10: 256 slots, several ciphertexts per tensor; 11: one.
TEST_P(ResidualLatency, MatchesPlainEvaluator) {
  const Network net = preact_resnet(2);
  const Plan plan = make_plan(net, toy_options(Mode::kLatency, GetParam()));
  // The joins cost no level: the depth is the deepest path's, as in the clear.
  EXPECT_EQ(plan.depth, cost(net).depth) << plan.describe();
  // Both inputs of each Add are packed in its layout.
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    if (!net.stages[k].is<AddStage>()) continue;
    for (int src : net.inputs_of(static_cast<int>(k)))
      EXPECT_EQ(plan.packing.stages[src].out, plan.packing.stages[k].out) << net.stages[k].name();
  }
  // The identity shortcut leaves the stem early: its levels are dropped at the join.
  const StagePlan& join = plan.stages[find_stage(net, "/layer1/Add")];
  EXPECT_GT(join.dropped_levels, 0) << plan.describe();
  EXPECT_EQ(join.level_in, join.level_out);

  Client c(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  EncryptedNetwork server(net, plan, c.ctx);
  std::mt19937_64 g(11);
  for (int trial = 0; trial < 2; ++trial) {
    const auto x = test::random_vector(net.input.size(), g, 0.5);
    PlainTrace trace;
    const auto want = evaluate(net, x, &trace);
    // Every stage's output, Adds included, against the plain trace.
    std::vector<double> stage_error(net.stages.size(), -1);
    auto observe = [&](std::size_t k, const std::vector<ckks::Ciphertext>& cts) {
      std::vector<std::vector<double>> dec;
      for (const auto& ct : cts) dec.push_back(c.encoder.decode_real(c.decryptor.decrypt(ct)));
      stage_error[k] = max_abs_error(unpack(plan.packing.stages[k].out, dec), trace.stage_outputs[k]);
    };
    auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, {x}), keys, nullptr, observe);
    const auto logits = decrypt_outputs(plan, c.result, out, 1);
    ASSERT_EQ(logits[0].size(), want.size());
    EXPECT_GT(-std::log2(max_abs_error(logits[0], want)), 12) << plan.describe();
    EXPECT_EQ(argmax(logits[0]), argmax(want));
    for (std::size_t k = 0; k < net.stages.size(); ++k)
      EXPECT_LT(stage_error[k], std::exp2(-12)) << "stage " << k + 1 << " " << net.stages[k].name();
  }
}

INSTANTIATE_TEST_SUITE_P(Rings, ResidualLatency, ::testing::Values(10, 11));

// A residual network's kept decisions rebuild its plan: the Adds' inputs keep one layout.
TEST(Residual, KeptChoiceRebuildsTheSamePlan) {
  const Network net = preact_resnet(5);
  for (const PlanOptions& o : {toy_options(Mode::kLatency, 10), PlanOptions{}}) {
    const Plan plan = make_plan(net, o);
    test::expect_same_plan(plan_from_choice(net, o, load_plan_choice(save_plan_choice(plan_choice(plan)))),
                           plan);
  }
}

TEST(Residual, ThroughputModeMatchesPlainForEveryImage) {
  const Network net = preact_resnet(3);
  const Plan plan = make_plan(net, toy_options(Mode::kThroughput, 10));
  EXPECT_EQ(plan.depth, cost(net).depth);
  Client c(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
  EncryptedNetwork server(net, plan, c.ctx);
  std::mt19937_64 g(12);
  std::vector<std::vector<double>> images;
  for (int i = 0; i < 4; ++i) images.push_back(test::random_vector(net.input.size(), g, 0.5));
  auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, images), keys);
  const auto logits = decrypt_outputs(plan, c.result, out, images.size());
  ASSERT_EQ(logits.size(), images.size());
  for (std::size_t i = 0; i < images.size(); ++i) {
    const auto want = evaluate(net, images[i]);
    EXPECT_GT(-std::log2(max_abs_error(logits[i], want)), 12) << "image " << i;
    EXPECT_EQ(argmax(logits[i]), argmax(want)) << "image " << i;
  }
}

// conv -> act -> BN -> act -> conv: the BN has only a polynomial to fold into, so pass (e)
// makes it a shift that follows a polynomial. The throughput evaluator's shortcuts for a
// polynomial followed by sum pools (lazy relinearisation, fused pooling) must not take
// the shift for a pool: it adds a constant. Both modes against the plain evaluator.
TEST(Residual, ShiftAfterAPolynomialInBothModes) {
  std::mt19937_64 rng(8);
  Graph g = test::empty_graph({2, 4, 4});
  int x = test::add_conv(g, -1, 3, 3, 1, 1, 1, rng);
  x = test::add_poly(g, x, {0.1, 0.5, 0.25});
  x = test::add_poly(g, test::add_batch_norm(g, x, rng), {0.2, -0.4, 0.3});
  g.nodes[x].input_range = 4;
  x = test::add_conv(g, x, 2, 3, 1, 1, 1, rng);
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, x, "flat"), 3, rng);
  const Network net = lower(g);
  int shifts = 0;
  for (const Stage& s : net.stages) shifts += s.kind() == StageKind::kLinear && s.linear().unit_weights;
  ASSERT_EQ(shifts, 1);
  for (Mode mode : {Mode::kLatency, Mode::kThroughput}) {
    const Plan plan = make_plan(net, toy_options(mode, 10));
    Client c(plan);
    const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
    EncryptedNetwork server(net, plan, c.ctx);
    const std::vector<std::vector<double>> images = {test::random_vector(net.input.size(), rng, 0.5)};
    auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, images), keys);
    const auto logits = decrypt_outputs(plan, c.result, out, 1);
    EXPECT_GT(-std::log2(max_abs_error(logits[0], evaluate(net, images[0]))), 12) << mode_name(mode);
  }
}

// A residual block straight on the network input (the input is read twice) still packs
// and runs: the input is sent without copies (both readers must see one layout) and the
// branch's last convolution writes the input's layout.
TEST(Residual, IdentityShortcutFromTheInput) {
  std::mt19937_64 rng(5);
  Graph g = test::empty_graph({1, 4, 4});
  const int c = test::add_conv(g, -1, 1, 3, 1, 1, 1, rng);
  const int a = add_join(g, c, -1, "/layer1/Add");
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, a, "flat"), 2, rng);
  const Network net = lower(g);
  const Plan plan = make_plan(net, toy_options(Mode::kLatency, 10));
  EXPECT_EQ(plan.packing.stages[0].out, plan.packing.input);
  EXPECT_EQ(plan.packing.input.replicas, 1);  // no copies: the Add reads the input too
  Client cl(plan);
  const EvaluationKeys keys = make_evaluation_keys(plan, cl.keygen);
  EncryptedNetwork server(net, plan, cl.ctx);
  const auto x = test::random_vector(net.input.size(), rng);
  auto out = server.evaluate(encrypt_inputs(plan, cl.encoder, cl.encryptor, {x}), keys);
  const auto logits = decrypt_outputs(plan, cl.result, out, 1);
  EXPECT_GT(-std::log2(max_abs_error(logits[0], evaluate(net, x))), 12) << plan.describe();
}

// A post-activation block, x + conv(act(conv(x))) with x = act(stem): the shortcut arrives
// at the scale the activation left (not the plan's), so the branch's last convolution
// lands on that scale instead. Both modes.
TEST(Residual, PostActivationShortcutInBothModes) {
  std::mt19937_64 rng(9);
  Graph g = test::empty_graph({1, 6, 6});
  const int x = test::add_poly(g, test::add_conv(g, -1, 3, 3, 1, 1, 1, rng), {0.1, 0.5, 0.25});
  const int h = test::add_poly(g, test::add_conv(g, x, 3, 3, 1, 1, 1, rng), {0.0, 0.3, 0.5});
  const int a = add_join(g, test::add_conv(g, h, 3, 3, 1, 1, 1, rng), x, "/Add");
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, a, "flat"), 4, rng);
  const Network net = lower(g);
  for (Mode mode : {Mode::kLatency, Mode::kThroughput}) {
    const Plan plan = make_plan(net, toy_options(mode, 10));
    Client c(plan);
    const EvaluationKeys keys = make_evaluation_keys(plan, c.keygen);
    EncryptedNetwork server(net, plan, c.ctx);
    std::vector<std::vector<double>> images;
    for (int i = 0; i < (mode == Mode::kLatency ? 1 : 3); ++i)
      images.push_back(test::random_vector(net.input.size(), rng, 0.5));
    auto out = server.evaluate(encrypt_inputs(plan, c.encoder, c.encryptor, images), keys);
    const auto logits = decrypt_outputs(plan, c.result, out, images.size());
    for (std::size_t i = 0; i < images.size(); ++i)
      EXPECT_GT(-std::log2(max_abs_error(logits[i], evaluate(net, images[i]))), 12)
          << mode_name(mode) << " image " << i << "\n"
          << plan.describe();
  }
}

// An Add of tensors of different shapes is refused with a message naming the node, the
// shapes and the fix, by the planner, the packer and the evaluator alike.
TEST(Residual, AddOfMismatchedShapesIsRefused) {
  std::mt19937_64 rng(6);
  Graph g = test::empty_graph({2, 8, 8});
  const int c = test::add_conv(g, -1, 4, 3, 2, 1, 1, rng);  // 4x4x4
  const int s = test::add_conv(g, -1, 4, 3, 1, 1, 1, rng);  // 4x8x8
  (void)s;
  // The graph itself refuses it ...
  const std::string graph_why = refusal([&] { add_join(g, c, s, "/bad/Add"); });
  EXPECT_NE(graph_why.find("/bad/Add"), std::string::npos) << graph_why;
  // ... and so do the encrypted evaluators for a lowered network edited by hand.
  Network net = preact_resnet(7);
  const int add2 = find_stage(net, "/layer2/Add");
  net.stages[add2].inputs[1] = find_stage(net, "/layer1/Add");  // 4x8x8 into an 8x4x4 Add
  for (int which = 0; which < 2; ++which) {
    const std::string why = refusal([&] {
      if (which == 0)
        make_plan(net, toy_options(Mode::kLatency, 10));
      else
        pack_network(net, 512, false);
    });
    EXPECT_NE(why.find("node '/layer2/Add': residual Add of tensors of different shapes"), std::string::npos)
        << why;
    EXPECT_NE(why.find("gives 4x8x8, the Add takes 8x4x4"), std::string::npos) << why;
    EXPECT_NE(why.find("projection"), std::string::npos) << why;
  }
}

TEST(CheckGraph, ChainsPassWithOrWithoutExplicitEdges) {
  std::mt19937_64 rng(6);
  const Graph g = test::conv_poly_dense(rng, {0, 0, 1}, 2);
  Network net = lower(g);
  EXPECT_TRUE(net.is_chain());
  EXPECT_NO_THROW(check_graph(net));
  for (Stage& s : net.stages) s.inputs.clear();  // the chain default
  EXPECT_TRUE(net.is_chain());
  EXPECT_NO_THROW(check_graph(net));
  // The dense layer reads the convolution: the polynomial's output is read by nobody.
  net.stages[2].inputs = {0};
  EXPECT_FALSE(net.is_chain());
  EXPECT_NE(refusal([&] { check_graph(net); }).find("stage 2 'act1' is read by no later stage"),
            std::string::npos)
      << refusal([&] { check_graph(net); });
  net.stages[2].inputs = {1};
  net.stages[1].inputs = {-1};  // the polynomial reads the 1x4x4 input, the dense layer wants 32
  EXPECT_NE(refusal([&] { check_graph(net); }).find("takes 32 values"), std::string::npos);
  net.stages[1].inputs = {2};  // a later stage
  EXPECT_NE(refusal([&] { check_graph(net); }).find("does not come before it"), std::string::npos);
}

}  // namespace
}  // namespace veil::nn
