// Plain reference evaluation: the shipped models against the exporter's float64
// reference logits, hand-checked convolution geometry, residual graphs, normalisation.
#include "veil/nn/plain_eval.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "nn/nn_test_util.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"

namespace veil::nn {
namespace {

struct Sample {
  std::vector<std::vector<std::uint8_t>> images;
  std::vector<std::vector<double>> logits;
  std::vector<int> predictions;
};

Sample read_sample(const std::string& model) {
  const auto ref = nlohmann::json::parse(
      test::read_file(test::source_path("models/samples/" + model + "-first16-logits.json")));
  Sample s;
  const std::string input = ref["inputs"][0].get<std::string>();
  s.images = input.ends_with(".bin") ? test::read_cifar_records(test::source_path(input))
                                     : test::read_idx_images(test::source_path(input));
  s.logits = ref["logits"].get<std::vector<std::vector<double>>>();
  s.predictions = ref["predictions"].get<std::vector<int>>();
  return s;
}

int argmax(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(PlainEval, ShippedModelsReproduceReferenceLogits) {
  for (const char* model :
       {"mnist-cryptonets", "mnist-delphi", "fashion-delphi", "cifar10-shallow", "cifar10-resnet20"}) {
    SCOPED_TRACE(model);
    const Graph g = load_onnx(test::source_path(std::string("models/") + model + ".onnx"));
    const Sample s = read_sample(model);
    ASSERT_EQ(s.images.size(), 16u);
    ASSERT_EQ(s.logits.size(), 16u);
    // The reference (python/check_onnx.py) rounds the normalised image to float32 and
    // then evaluates the float32 weights in float64, as we do: with the same rounded
    // input only the summation order differs (~1e-13). With our double-precision
    // normalisation the logits move by the input rounding (~1e-6), far inside what a
    // float32 model promises.
    const Network merged = lower(g);
    for (std::size_t i = 0; i < s.images.size(); ++i) {
      const auto x = normalize(g, s.images[i]);
      std::vector<double> x32(x);
      for (double& v : x32) v = static_cast<float>(v);
      EXPECT_LT(max_abs_diff(evaluate(g, x32), s.logits[i]), 1e-9) << "image " << i;
      EXPECT_LT(max_abs_diff(evaluate(merged, x32), s.logits[i]), 1e-9) << "image " << i;
      const auto from_network = evaluate(merged, x);
      EXPECT_LT(max_abs_diff(from_network, s.logits[i]), 1e-4) << "image " << i;
      EXPECT_EQ(argmax(from_network), s.predictions[i]) << "image " << i;
    }
  }
}

TEST(PlainEval, UnmergedNetworkAgreesWithMerged) {
  const Graph g = load_onnx(test::source_path("models/mnist-delphi.onnx"));
  const Sample s = read_sample("mnist-delphi");
  const Network before = lower(g, LowerOptions::none());
  const Network after = lower(g);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto x = normalize(after, s.images[i]);
    EXPECT_LT(test::max_rel_diff(evaluate(before, x), evaluate(g, x)), 1e-9);
    EXPECT_LT(test::max_rel_diff(evaluate(after, x), evaluate(g, x)), 1e-9);
  }
}

TEST(PlainEval, TraceRecordsStagesAndPolynomialInputs) {
  const Graph g = load_onnx(test::source_path("models/mnist-cryptonets.onnx"));
  const Network net = lower(g);
  const auto x = normalize(net, read_sample("mnist-cryptonets").images[0]);
  PlainTrace trace;
  const auto y = evaluate(net, x, &trace);
  ASSERT_EQ(trace.stage_outputs.size(), net.stages.size());
  ASSERT_EQ(trace.max_abs_input.size(), net.stages.size());
  EXPECT_EQ(trace.stage_outputs.back(), y);
  double m = 0;
  for (double v : trace.stage_outputs[0]) m = std::max(m, std::abs(v));
  EXPECT_EQ(trace.max_abs_input[1], m);  // the first polynomial sees the first stage's output
  EXPECT_GT(m, 0.1);
  // Trained models keep pre-activations near their measured range on test images.
  EXPECT_LT(trace.max_abs_input[1], 2 * net.stages[1].poly().input_range);
}

TEST(PlainEval, NormalizeUsesPerChannelMeanAndStd) {
  Network net;
  net.input = {2, 1, 2};
  net.mean = {0.5, 0.25};
  net.std = {0.5, 2.0};
  const auto x = normalize(net, {0, 255, 51, 255});
  ASSERT_EQ(x.size(), 4u);
  EXPECT_DOUBLE_EQ(x[0], -1.0);
  EXPECT_DOUBLE_EQ(x[1], 1.0);
  EXPECT_DOUBLE_EQ(x[2], (0.2 - 0.25) / 2.0);
  EXPECT_DOUBLE_EQ(x[3], 0.375);
  EXPECT_THROW(normalize(net, {0, 1, 2}), std::invalid_argument);
}

TEST(PlainEval, StridedPaddedConvolutionByHand) {
  // 1 channel 4x4 input 0..15, 3x3 kernel of ones except the centre 2, stride 2, pad 1:
  // a 2x2 output; (0,0) sees input rows/cols 0..1 (the rest is padding).
  Graph g = test::empty_graph({1, 4, 4});
  Node n;
  n.op = OpKind::kConv;
  n.name = "conv";
  n.inputs = {-1};
  n.out_features = 1;
  n.window.kernel_h = n.window.kernel_w = 3;
  n.window.stride_h = n.window.stride_w = 2;
  n.window.pad_top = n.window.pad_left = n.window.pad_bottom = n.window.pad_right = 1;
  n.weights = {1, 1, 1, 1, 2, 1, 1, 1, 1};
  n.bias = {0.5};
  g.output = add_node(g, n);
  EXPECT_EQ(g.nodes[0].out, (Shape{1, 2, 2}));
  std::vector<double> x(16);
  for (int i = 0; i < 16; ++i) x[i] = i;
  const auto y = evaluate(g, x);
  // (0,0): rows 0-1, cols 0-1: 0+1+4+5 + centre 0 again = 10; (0,1): rows 0-1, cols 1-3
  // = 1+2+3+5+6+7 + centre 2 = 26; (1,0): rows 1-3, cols 0-1 = 4+5+8+9+12+13 + 8 = 59;
  // (1,1): rows 1-3, cols 1-3 = 5+6+7+9+10+11+13+14+15 + 10 = 100.
  EXPECT_EQ(y, (std::vector<double>{10.5, 26.5, 59.5, 100.5}));
  const Network net = lower(g);
  EXPECT_EQ(evaluate(net, x), y);
  EXPECT_TRUE(net.stages[0].linear().spatial);
  EXPECT_EQ(net.stages[0].linear().stride_y, 2);
}

TEST(PlainEval, DilatedConvolutionByHand) {
  // 2x2 kernel with dilation 2 on a 3x3 input: the single output reads the four corners.
  Graph g = test::empty_graph({1, 3, 3});
  Node n;
  n.op = OpKind::kConv;
  n.name = "dilated";
  n.inputs = {-1};
  n.out_features = 1;
  n.window.kernel_h = n.window.kernel_w = 2;
  n.window.dilation_h = n.window.dilation_w = 2;
  n.weights = {1, 10, 100, 1000};
  n.bias = {0};
  g.output = add_node(g, n);
  EXPECT_EQ(g.nodes[0].out, (Shape{1, 1, 1}));
  const std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(evaluate(g, x), (std::vector<double>{1 + 30 + 700 + 9000}));
  EXPECT_EQ(evaluate(lower(g), x), evaluate(g, x));
}

TEST(PlainEval, DepthwiseConvolutionActsPerChannel) {
  Graph g = test::empty_graph({2, 3, 3});
  Node n;
  n.op = OpKind::kConv;
  n.name = "dw";
  n.inputs = {-1};
  n.out_features = 2;
  n.group = 2;
  n.window.kernel_h = n.window.kernel_w = 1;
  n.weights = {2, -3};  // [C, 1, 1, 1]
  n.bias = {1, 0};
  g.output = add_node(g, n);
  std::vector<double> x(18);
  for (int i = 0; i < 18; ++i) x[i] = i;
  const auto y = evaluate(g, x);
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(y[i], 2 * i + 1);
    EXPECT_EQ(y[9 + i], -3 * (9 + i));
  }
  EXPECT_EQ(evaluate(lower(g), x), y);
  // Depthwise 3x3 with padding on random data, graph vs lowered.
  std::mt19937_64 rng(11);
  Graph r = test::empty_graph({3, 7, 7});
  r.output = test::add_conv(r, -1, 3, 3, 2, 1, 3, rng);
  const auto xr = test::random_vector(r.input.size(), rng);
  EXPECT_LT(test::max_rel_diff(evaluate(lower(r), xr), evaluate(r, xr)), 1e-12);
  // Output rows 0..3 see 2, 3, 3, 2 input rows (padding drops out), columns likewise:
  // 10 x 10 taps per channel, and no weights across channels.
  EXPECT_EQ(lower(r).stages[0].linear().weights.nnz(), 3 * 10 * 10);
}

TEST(PlainEval, ResidualAddInTheGraph) {
  std::mt19937_64 rng(5);
  Graph g = test::empty_graph({2, 5, 5});
  const int c1 = test::add_conv(g, -1, 2, 3, 1, 1, 1, rng);
  const int p = test::add_poly(g, c1, {0.1, 0.9, 0.3});
  Node add;
  add.op = OpKind::kAdd;
  add.name = "/res/Add";
  add.inputs = {p, -1};
  const int a = add_node(g, add);
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, a, "flat"), 3, rng);
  const auto x = test::random_vector(g.input.size(), rng);
  std::vector<std::vector<double>> outs;
  const auto y = evaluate(g, x, &outs);
  ASSERT_EQ(outs.size(), g.nodes.size());
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_DOUBLE_EQ(outs[a][i], outs[p][i] + x[i]);
  // Same as the chain with the input added by hand before the Gemm.
  EXPECT_EQ(y.size(), 3u);
  std::vector<double> manual(3);
  const Node& fc = g.nodes.back();
  for (int o = 0; o < 3; ++o) {
    manual[o] = fc.bias[o];
    for (int i = 0; i < 50; ++i) manual[o] += fc.weights[o * 50 + i] * outs[a][i];
  }
  EXPECT_LT(test::max_rel_diff(y, manual), 1e-14);
  Node bad = add;
  bad.inputs = {c1, g.output};  // 2x5x5 + 3x1x1
  EXPECT_THROW(add_node(g, bad), std::invalid_argument);
}

// Same-padded 3x3 convolution written out for the hand computation below (c_in -> c_out
// channels on an n x n map, weights [o][i][ky][kx]).
std::vector<double> naive_conv3(const std::vector<double>& x, int c_in, int c_out, int n, const Node& conv) {
  std::vector<double> y(static_cast<std::size_t>(c_out) * n * n);
  for (int o = 0; o < c_out; ++o)
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) {
        double v = conv.bias[o];
        for (int i = 0; i < c_in; ++i)
          for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
              if (r + dy < 0 || r + dy >= n || c + dx < 0 || c + dx >= n) continue;
              v +=
                  conv.weights[((o * c_in + i) * 3 + dy + 1) * 3 + dx + 1] * x[(i * n + r + dy) * n + c + dx];
            }
        y[(o * n + r) * n + c] = v;
      }
  return y;
}

// The residual block: conv -> act -> conv, plus the skip from the act, add, global pool,
// fc; the graph and its lowered network (every pass combination) against a hand
// computation.
TEST(PlainEval, ResidualBlockByHand) {
  std::mt19937_64 rng(31);
  const int n = 4;
  Graph g = test::empty_graph({1, n, n});
  const int c0 = test::add_conv(g, -1, 2, 3, 1, 1, 1, rng);
  const int act = test::add_poly(g, c0, {0.2, 0.7, 0.3});
  const int c1 = test::add_conv(g, act, 2, 3, 1, 1, 1, rng);
  Node add;
  add.op = OpKind::kAdd;
  add.name = "/block/Add";
  add.inputs = {c1, act};
  const int a = add_node(g, add);
  const int gap = test::add_simple(g, OpKind::kGlobalAveragePool, a, "gap");
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, gap, "flat"), 3, rng);
  const auto x = test::random_vector(n * n, rng);

  std::vector<double> h = naive_conv3(x, 1, 2, n, g.nodes[c0]);
  for (double& v : h) v = 0.2 + 0.7 * v + 0.3 * v * v;
  std::vector<double> sum = naive_conv3(h, 2, 2, n, g.nodes[c1]);
  for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += h[i];
  double pooled[2] = {0, 0};
  for (int ch = 0; ch < 2; ++ch)
    for (int p = 0; p < n * n; ++p) pooled[ch] += sum[ch * n * n + p] / (n * n);
  const Node& fc = g.nodes.back();
  std::vector<double> expected(3);
  for (int o = 0; o < 3; ++o)
    expected[o] = fc.bias[o] + fc.weights[o * 2] * pooled[0] + fc.weights[o * 2 + 1] * pooled[1];

  EXPECT_LT(max_abs_diff(evaluate(g, x), expected), 1e-12);
  for (const LowerOptions& o : {LowerOptions::none(), LowerOptions{}}) {
    const Network net = lower(g, o);
    EXPECT_FALSE(net.is_chain());
    PlainTrace trace;
    EXPECT_LT(max_abs_diff(evaluate(net, x, &trace), expected), 1e-12);
    ASSERT_EQ(trace.stage_outputs.size(), net.stages.size());
    // The Add stage's output is the hand-computed sum.
    for (std::size_t k = 0; k < net.stages.size(); ++k) {
      if (net.stages[k].is<AddStage>()) {
        EXPECT_LT(max_abs_diff(trace.stage_outputs[k], sum), 1e-12);
      }
    }
  }
}

// What a server keeps once its evaluator holds the weights: the same structure, every
// linear stage an all-zero matrix of its size (its outputs then just the biases).
TEST(PlainEval, DroppedWeightsKeepTheStructure) {
  std::mt19937_64 rng(32);
  const Graph g = test::conv_poly_dense(rng, {0.2, 0.7, 0.3}, 3);
  const Network full = lower(g, LowerOptions{});
  Network net = full;
  net.drop_linear_weights();
  ASSERT_EQ(net.stages.size(), full.stages.size());
  EXPECT_EQ(net.num_outputs(), full.num_outputs());
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    EXPECT_EQ(net.stages[k].name(), full.stages[k].name());
    EXPECT_EQ(net.inputs_of(static_cast<int>(k)), full.inputs_of(static_cast<int>(k)));
    if (!net.stages[k].is<LinearStage>()) continue;
    const LinearStage &a = net.stages[k].linear(), &b = full.stages[k].linear();
    EXPECT_GT(b.weights.nnz(), 0);
    EXPECT_EQ(a.weights.nnz(), 0);
    EXPECT_EQ(a.weights.rows, b.weights.rows);
    EXPECT_EQ(a.weights.cols, b.weights.cols);
    EXPECT_EQ(a.weights.row_ptr.size(), b.weights.row_ptr.size());
    EXPECT_EQ(a.bias, b.bias);
    EXPECT_EQ(a.weights.col.capacity(), 0u);  // freed, not just cleared
  }
  // Still well formed: the last stage's outputs are its biases.
  const auto y = evaluate(net, test::random_vector(16, rng));
  EXPECT_EQ(y, full.stages.back().linear().bias);
}

// Weights moved out and back (the server hands them to its evaluator this way and keeps
// the structure): the network in between is what drop_linear_weights leaves, and after
// putting them back it computes what it did; a matrix count or size that does not fit is
// refused. Dropping one stage leaves the others.
TEST(PlainEval, WeightsTakenOutAndPutBack) {
  std::mt19937_64 rng(33);
  const Graph g = test::conv_poly_dense(rng, {0.2, 0.7, 0.3}, 3);
  const Network full = lower(g, LowerOptions{});
  const std::vector<double> x = test::random_vector(16, rng);
  Network net = full;
  std::vector<SparseMatrix> weights = net.take_linear_weights();
  Network dropped = full;
  dropped.drop_linear_weights();
  EXPECT_EQ(evaluate(net, x), evaluate(dropped, x));
  std::size_t linear = 0;
  for (const Stage& s : full.stages) linear += s.is<LinearStage>() ? 1 : 0;
  ASSERT_EQ(weights.size(), linear);
  ASSERT_GE(linear, 2u);
  Network wrong = net;
  std::vector<SparseMatrix> fewer(weights.begin(), weights.end() - 1);
  EXPECT_THROW(wrong.put_linear_weights(fewer), std::invalid_argument);
  std::vector<SparseMatrix> swapped = weights;
  std::swap(swapped.front(), swapped.back());
  EXPECT_THROW(wrong.put_linear_weights(swapped), std::invalid_argument);
  net.put_linear_weights(std::move(weights));
  EXPECT_EQ(evaluate(net, x), evaluate(full, x));
  // One stage dropped: its nnz is gone, every other stage keeps its weights.
  std::size_t first = 0;
  while (!net.stages[first].is<LinearStage>()) ++first;
  net.drop_linear_weights(first);
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    if (!net.stages[k].is<LinearStage>()) continue;
    EXPECT_EQ(net.stages[k].linear().weights.nnz(), k == first ? 0 : full.stages[k].linear().weights.nnz());
  }
}

TEST(PlainEval, RejectsWrongInputSizes) {
  const Graph g = load_onnx(test::source_path("models/mnist-cryptonets.onnx"));
  EXPECT_THROW(evaluate(g, std::vector<double>(10)), std::invalid_argument);
  EXPECT_THROW(evaluate(lower(g), std::vector<double>(785)), std::invalid_argument);
}

}  // namespace
}  // namespace veil::nn
