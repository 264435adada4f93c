// What stock torch.onnx.export writes around the layers (issue 17), as ONNX fixtures
// built in C++: Pad folded into Conv/AveragePool (checked against padding done by hand),
// the shape subgraphs of x.view(n, -1) and F.pad folded at import, Dropout, Identity,
// ReduceMean, Squeeze/Unsqueeze, affine ops by constants folded into linear layers,
// MatMul + Add, grouped Conv; and the errors, each naming its node.
#include <gtest/gtest.h>

#include <functional>

#include "nn/nn_test_util.hpp"
#include "veil/nn/onnx/constant_fold.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::nn {
namespace {

using detail::Tensor;
using test::OnnxBuilder;

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

void expect_contains(const std::string& message, std::initializer_list<const char*> parts) {
  EXPECT_FALSE(message.empty()) << "no error";
  for (const char* p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
}

void set_opset(OnnxBuilder& b, int version) { b.model.mutable_opset_import(0)->set_version(version); }

// An int64 or float tensor initializer of any shape.
void tensor(OnnxBuilder& b, const std::string& name, std::vector<std::int64_t> dims,
            std::vector<double> values, bool integer = true) {
  auto* t = b.graph().add_initializer();
  t->set_name(name);
  t->set_data_type(integer ? onnx::TensorProto::INT64 : onnx::TensorProto::FLOAT);
  for (auto d : dims) t->add_dims(d);
  for (double v : values)
    integer ? t->add_int64_data(static_cast<std::int64_t>(v)) : t->add_float_data(static_cast<float>(v));
}

// A Constant node holding an int64 tensor, as torch writes its shape arithmetic.
void constant(OnnxBuilder& b, const std::string& output, std::vector<std::int64_t> dims,
              std::vector<std::int64_t> values) {
  auto& n = b.node("Constant", "/Constant_" + output, {}, output);
  auto* a = n.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  auto* t = a->mutable_t();
  t->set_data_type(onnx::TensorProto::INT64);
  for (auto d : dims) t->add_dims(d);
  for (auto v : values) t->add_int64_data(v);
}

std::vector<double> initializer_values(const OnnxBuilder& b, const std::string& name) {
  for (const auto& t : b.model.graph().initializer())
    if (t.name() == name) return std::vector<double>(t.float_data().begin(), t.float_data().end());
  ADD_FAILURE() << name;
  return {};
}

// ---- references computed by hand -------------------------------------------------------

struct Image {
  Shape s;
  std::vector<double> v;
  double at(int c, int y, int x) const { return v[(c * s.h + y) * s.w + x]; }
};

Image pad_ref(const Image& in, int top, int left, int bottom, int right, double value) {
  Image out{{in.s.c, in.s.h + top + bottom, in.s.w + left + right}, {}};
  for (int c = 0; c < out.s.c; ++c)
    for (int y = 0; y < out.s.h; ++y)
      for (int x = 0; x < out.s.w; ++x) {
        const int iy = y - top, ix = x - left;
        const bool inside = iy >= 0 && iy < in.s.h && ix >= 0 && ix < in.s.w;
        out.v.push_back(inside ? in.at(c, iy, ix) : value);
      }
  return out;
}

// Every window divided by k * k (the input is already padded).
Image pool_ref(const Image& in, int k, int stride) {
  Image out{{in.s.c, (in.s.h - k) / stride + 1, (in.s.w - k) / stride + 1}, {}};
  for (int c = 0; c < out.s.c; ++c)
    for (int y = 0; y < out.s.h; ++y)
      for (int x = 0; x < out.s.w; ++x) {
        double sum = 0;
        for (int dy = 0; dy < k; ++dy)
          for (int dx = 0; dx < k; ++dx) sum += in.at(c, y * stride + dy, x * stride + dx);
        out.v.push_back(sum / (k * k));
      }
  return out;
}

// Valid convolution, stride 1, weights [out][in / group][k][k].
Image conv_ref(const Image& in, const std::vector<double>& w, const std::vector<double>& bias, int k,
               int group = 1) {
  const int outs = static_cast<int>(bias.size()), per_in = in.s.c / group, per_out = outs / group;
  Image out{{outs, in.s.h - k + 1, in.s.w - k + 1}, {}};
  for (int o = 0; o < outs; ++o)
    for (int y = 0; y < out.s.h; ++y)
      for (int x = 0; x < out.s.w; ++x) {
        double sum = bias[o];
        for (int i = 0; i < per_in; ++i)
          for (int dy = 0; dy < k; ++dy)
            for (int dx = 0; dx < k; ++dx)
              sum +=
                  w[((o * per_in + i) * k + dy) * k + dx] * in.at((o / per_out) * per_in + i, y + dy, x + dx);
        out.v.push_back(sum);
      }
  return out;
}

// Imports b (output "out", a 4-D map, flattened by the test) and evaluates it on x.
std::vector<double> run(OnnxBuilder& b, const std::vector<double>& x, Graph* graph = nullptr) {
  const Graph g = parse_onnx(b.bytes(), "torch.onnx");
  const auto y = evaluate(g, x);
  EXPECT_LT(test::max_rel_diff(evaluate(lower(g), x), y), 1e-12);  // the lowered form agrees
  if (graph) *graph = g;
  return y;
}

Image random_image(Shape s, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  return {s, test::random_vector(s.size(), rng)};
}

// ---- Pad -----------------------------------------------------------------------------

TEST(TorchExport, ZeroWidthPadBeforeAveragePoolVanishes) {
  OnnxBuilder b({2, 6, 6});
  constant(b, "pads", {8}, {0, 0, 0, 0, 0, 0, 0, 0});
  auto& pad = b.node("Pad", "/Pad", {"input", "pads"}, "p");
  OnnxBuilder::string(pad, "mode", "constant");
  auto& pool = b.node("AveragePool", "/pool/AveragePool", {"p"}, "out");
  OnnxBuilder::ints(pool, "kernel_shape", {2, 2});
  OnnxBuilder::ints(pool, "strides", {2, 2});
  OnnxBuilder::integer(pool, "ceil_mode", 1);  // no partial window on 6x6: no effect
  b.output("out");
  const Image x = random_image({2, 6, 6}, 1);
  Graph g;
  EXPECT_LT(test::max_rel_diff(run(b, x.v, &g), pool_ref(x, 2, 2).v), 1e-12);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].window.pad_top + g.nodes[0].window.pad_right, 0);
}

TEST(TorchExport, PadFoldsIntoAveragePoolWithThePadsCounted) {
  // F.avg_pool2d(x, 3, stride=2, padding=1) exports Pad + AveragePool without pads: the
  // padded zeros count in every divisor (count_include_pad), whatever the pool's attribute.
  for (int own : {0, 1}) {
    SCOPED_TRACE(own);
    OnnxBuilder b({2, 5, 5});
    tensor(b, "pads", {8}, {0, 0, 1, 0, 0, 0, 0, 2});  // top 1, left 0, bottom 0, right 2
    b.node("Pad", "/Pad", {"input", "pads"}, "p");
    auto& pool = b.node("AveragePool", "/pool/AveragePool", {"p"}, "out");
    OnnxBuilder::ints(pool, "kernel_shape", {3, 3});
    OnnxBuilder::ints(pool, "strides", {2, 2});
    if (own) {
      OnnxBuilder::ints(pool, "pads", {1, 1, 1, 1});
      OnnxBuilder::integer(pool, "count_include_pad", 1);
    }
    b.output("out");
    const Image x = random_image({2, 5, 5}, 2);
    const Image want = pool_ref(pad_ref(pad_ref(x, 1, 0, 0, 2, 0.0), own, own, own, own, 0.0), 3, 2);
    Graph g;
    EXPECT_LT(test::max_rel_diff(run(b, x.v, &g), want.v), 1e-12);
    ASSERT_EQ(g.nodes.size(), 1u);
    EXPECT_EQ(g.nodes[0].window.pad_top, 1 + own);
    EXPECT_EQ(g.nodes[0].window.pad_right, 2 + own);
    EXPECT_EQ(g.nodes[0].out, want.s);
  }
  // Its own pads not counted (count_include_pad = 0) next to counted Pad zeros: no single
  // pool computes that.
  OnnxBuilder b({1, 5, 5});
  tensor(b, "pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
  b.node("Pad", "/Pad", {"input", "pads"}, "p");
  auto& pool = b.node("AveragePool", "/pool/AveragePool", {"p"}, "out");
  OnnxBuilder::ints(pool, "kernel_shape", {3, 3});
  OnnxBuilder::ints(pool, "pads", {1, 1, 1, 1});
  b.output("out");
  expect_contains(error_of([&] { parse_onnx(b.bytes(), "m.onnx"); }),
                  {"/pool/AveragePool", "count_include_pad"});
}

TEST(TorchExport, PadFoldsIntoConvPads) {
  // nn.ZeroPad2d((1, 2, 0, 1)) before a Conv that pads 1 itself.
  OnnxBuilder b({2, 5, 6});
  std::mt19937_64 rng(3);
  tensor(b, "pads", {8}, {0, 0, 0, 1, 0, 0, 1, 2});
  b.node("Pad", "/Pad", {"input", "pads"}, "p");
  auto& conv = b.conv("/conv/Conv", "p", "out", 2, 3, 3, rng);
  OnnxBuilder::ints(conv, "pads", {1, 1, 1, 1});
  b.output("out");
  const Image x = random_image({2, 5, 6}, 4);
  const Image want =
      conv_ref(pad_ref(pad_ref(x, 0, 1, 1, 2, 0.0), 1, 1, 1, 1, 0.0),
               initializer_values(b, "/conv/Conv.weight"), initializer_values(b, "/conv/Conv.bias"), 3);
  Graph g;
  EXPECT_LT(test::max_rel_diff(run(b, x.v, &g), want.v), 1e-12);
  ASSERT_EQ(g.nodes.size(), 1u);
  const Window& w = g.nodes[0].window;
  EXPECT_EQ((std::vector<int>{w.pad_top, w.pad_left, w.pad_bottom, w.pad_right}),
            (std::vector<int>{1, 2, 2, 3}));
}

TEST(TorchExport, NonZeroPadIsExact) {
  // F.pad(x, ..., value=0.5) before a Conv, after an x*x, and before an AveragePool.
  for (int square : {0, 1}) {
    SCOPED_TRACE(square);
    OnnxBuilder b({2, 5, 5});
    std::mt19937_64 rng(5);
    tensor(b, "pads", {8}, {0, 0, 1, 2, 0, 0, 2, 1});
    b.initializer("value", {}, {0.5f});
    std::string in = "input";
    if (square) {
      b.node("Mul", "/Mul", {"input", "input"}, "sq");
      in = "sq";
    }
    b.node("Pad", "/Pad", {in, "pads", "value"}, "p");
    b.conv("/conv/Conv", "p", "out", 2, 3, 3, rng);
    b.output("out");
    Image x = random_image({2, 5, 5}, 6);
    Image x_in = x;
    if (square)
      for (double& v : x_in.v) v *= v;
    const Image want = conv_ref(pad_ref(x_in, 1, 2, 2, 1, 0.5), initializer_values(b, "/conv/Conv.weight"),
                                initializer_values(b, "/conv/Conv.bias"), 3);
    Graph g;
    EXPECT_LT(test::max_rel_diff(run(b, x.v, &g), want.v), 1e-12);
    ASSERT_EQ(g.nodes.size(), 2u);  // the shifted input (x - 0.5, or x^2 - 0.5), the Conv
    EXPECT_EQ(g.nodes[0].op, OpKind::kPoly);
  }
  OnnxBuilder b({1, 4, 4});
  tensor(b, "pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
  b.initializer("value", {1}, {-0.25f});
  b.node("Pad", "/Pad", {"input", "pads", "value"}, "p");
  auto& pool = b.node("AveragePool", "/pool/AveragePool", {"p"}, "out");
  OnnxBuilder::ints(pool, "kernel_shape", {2, 2});
  OnnxBuilder::ints(pool, "strides", {2, 2});
  b.output("out");
  const Image x = random_image({1, 4, 4}, 7);
  EXPECT_LT(test::max_rel_diff(run(b, x.v), pool_ref(pad_ref(x, 1, 1, 1, 1, -0.25), 2, 2).v), 1e-12);
}

TEST(TorchExport, PadAttributesOfOpset10) {
  OnnxBuilder b({1, 4, 4});
  set_opset(b, 10);
  std::mt19937_64 rng(8);
  auto& pad = b.node("Pad", "/Pad", {"input"}, "p");
  OnnxBuilder::ints(pad, "pads", {0, 0, 2, 0, 0, 0, 0, 1});
  OnnxBuilder::real(pad, "value", 1.5f);
  b.conv("/conv/Conv", "p", "out", 1, 2, 3, rng);
  b.output("out");
  const Image x = random_image({1, 4, 4}, 9);
  const Image want = conv_ref(pad_ref(x, 2, 0, 0, 1, 1.5), initializer_values(b, "/conv/Conv.weight"),
                              initializer_values(b, "/conv/Conv.bias"), 3);
  EXPECT_LT(test::max_rel_diff(run(b, x.v), want.v), 1e-12);
}

TEST(TorchExport, RefusesPadsWithoutAnExactFormNamingTheNode) {
  auto check = [](const std::function<void(OnnxBuilder&)>& edit, const std::string& reader,
                  std::initializer_list<const char*> parts) {
    OnnxBuilder b({1, 6, 6});
    std::mt19937_64 rng(10);
    tensor(b, "pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
    b.node("Pad", "/Pad", {"input", "pads"}, "p");
    if (reader == "Conv") b.conv("/conv/Conv", "p", "out", 1, 2, 3, rng);
    if (reader == "Flatten") b.node("Flatten", "/Flatten", {"p"}, "out");
    if (reader == "Mul") b.node("Mul", "/Mul", {"p", "p"}, "out");
    b.output("out");
    edit(b);
    expect_contains(error_of([&] { parse_onnx(b.bytes(), "m.onnx"); }), parts);
  };
  auto pad = [](OnnxBuilder& b) -> onnx::NodeProto& { return *b.graph().mutable_node(0); };
  check([&](OnnxBuilder& b) { OnnxBuilder::string(pad(b), "mode", "reflect"); }, "Conv",
        {"node '/Pad'", "mode=reflect"});
  check([&](OnnxBuilder& b) { OnnxBuilder::string(pad(b), "mode", "edge"); }, "Conv",
        {"node '/Pad'", "edge"});
  check([&](OnnxBuilder& b) { b.graph().mutable_initializer(0)->set_int64_data(1, 1); }, "Conv",
        {"node '/Pad'", "channel axis"});
  check([&](OnnxBuilder& b) { b.graph().mutable_initializer(0)->set_int64_data(0, 1); }, "Conv",
        {"node '/Pad'", "batch axis"});
  check([&](OnnxBuilder& b) { b.graph().mutable_initializer(0)->set_int64_data(2, -1); }, "Conv",
        {"node '/Pad'", "negative pads"});
  check([](OnnxBuilder&) {}, "Flatten", {"node '/Pad'", "right before a Conv or AveragePool", "/Flatten"});
  check([](OnnxBuilder&) {}, "Mul", {"node '/Pad'", "/Mul"});
  // A non-zero pad and the Conv's own zero pads are two different paddings.
  check(
      [&](OnnxBuilder& b) {
        b.initializer("value", {}, {1.0f});
        pad(b).add_input("value");
        OnnxBuilder::ints(*b.graph().mutable_node(1), "pads", {1, 1, 1, 1});
      },
      "Conv", {"/conv/Conv", "own pads", "/Pad"});
}

TEST(TorchExport, FPadConstantSubgraphFolds) {
  // torch 1.13's F.pad(x, (1, 2, 0, 1)) at opsets 11-17: the ONNX pads are computed from
  // the torch ones by ConstantOfShape, Concat, Reshape, Slice (reversed), Transpose, Cast.
  OnnxBuilder b({1, 5, 5});
  std::mt19937_64 rng(11);
  constant(b, "n", {1}, {4});
  constant(b, "torch_pads", {4}, {1, 2, 0, 1});
  auto& zeros = b.node("ConstantOfShape", "/ConstantOfShape", {"n"}, "zeros");
  auto* v = zeros.add_attribute();
  v->set_name("value");
  v->set_type(onnx::AttributeProto::TENSOR);
  v->mutable_t()->set_data_type(onnx::TensorProto::INT64);
  v->mutable_t()->add_dims(1);
  v->mutable_t()->add_int64_data(0);
  OnnxBuilder::integer(b.node("Concat", "/Concat", {"torch_pads", "zeros"}, "all"), "axis", 0);
  constant(b, "pairs_shape", {2}, {-1, 2});
  b.node("Reshape", "/Reshape", {"all", "pairs_shape"}, "pairs");
  constant(b, "starts", {1}, {-1});
  constant(b, "ends", {1}, {-9223372036854775807});
  constant(b, "axes", {1}, {0});
  constant(b, "steps", {1}, {-1});
  b.node("Slice", "/Slice", {"pairs", "starts", "ends", "axes", "steps"}, "reversed");
  OnnxBuilder::ints(b.node("Transpose", "/Transpose", {"reversed"}, "t"), "perm", {1, 0});
  constant(b, "flat", {1}, {-1});
  b.node("Reshape", "/Reshape_1", {"t", "flat"}, "onnx_pads");
  OnnxBuilder::integer(b.node("Cast", "/Cast", {"onnx_pads"}, "pads"), "to", onnx::TensorProto::INT64);
  b.node("Pad", "/Pad", {"input", "pads", ""}, "p");
  b.conv("/conv/Conv", "p", "out", 1, 2, 3, rng);
  b.output("out");
  Graph g;
  const Image x = random_image({1, 5, 5}, 12);
  const Image want = conv_ref(pad_ref(x, 0, 1, 1, 2, 0.0), initializer_values(b, "/conv/Conv.weight"),
                              initializer_values(b, "/conv/Conv.bias"), 3);
  EXPECT_LT(test::max_rel_diff(run(b, x.v, &g), want.v), 1e-12);
  ASSERT_EQ(g.nodes.size(), 1u);
  const Window& w = g.nodes[0].window;
  EXPECT_EQ((std::vector<int>{w.pad_top, w.pad_left, w.pad_bottom, w.pad_right}),
            (std::vector<int>{0, 1, 1, 2}));
}

// ---- shape plumbing --------------------------------------------------------------------

// x.view(x.size(0), -1) at opset 11 (Unsqueeze axes attribute) and 13 (axes input), then a
// Gemm with 3 outputs; with `split`, x.view(x.size(0), 3, -1).
OnnxBuilder view_model(int opset, bool split = false) {
  OnnxBuilder b({2, 4, 4});
  set_opset(b, opset);
  std::mt19937_64 rng(13);
  b.conv("/conv/Conv", "input", "c", 2, 3, 3, rng);  // 3 x 2 x 2
  b.node("Shape", "/Shape", {"c"}, "shape");
  constant(b, "zero", {}, {0});
  OnnxBuilder::integer(b.node("Gather", "/Gather", {"shape", "zero"}, "n"), "axis", 0);
  if (opset >= 13) {
    constant(b, "axes", {1}, {0});
    b.node("Unsqueeze", "/Unsqueeze", {"n", "axes"}, "n1");
  } else {
    OnnxBuilder::ints(b.node("Unsqueeze", "/Unsqueeze", {"n"}, "n1"), "axes", {0});
  }
  constant(b, "three", {1}, {3});
  constant(b, "minus_one", {1}, {-1});
  std::vector<std::string> parts = {"n1", "minus_one"};
  if (split) parts = {"n1", "three", "minus_one"};
  OnnxBuilder::integer(b.node("Concat", "/Concat", parts, "target"), "axis", 0);
  b.node("Reshape", "/Reshape", {"c", "target"}, "flat");
  b.random_initializer("fc.weight", {3, 12}, rng);
  auto& fc = b.node("Gemm", "/fc/Gemm", {"flat", "fc.weight"}, "out");
  OnnxBuilder::integer(fc, "transB", 1);
  b.output("out");
  return b;
}

TEST(TorchExport, ViewShapeSubgraphBecomesAFlatten) {
  for (int opset : {11, 13, 17}) {
    SCOPED_TRACE(opset);
    OnnxBuilder b = view_model(opset);
    const Graph g = parse_onnx(b.bytes(), "view.onnx");
    ASSERT_EQ(g.nodes.size(), 3u);  // Conv, Flatten, Gemm: the shape arithmetic is gone
    EXPECT_EQ(g.nodes[1].op, OpKind::kFlatten);
    EXPECT_EQ(g.nodes[1].source_op, "Reshape");
    EXPECT_EQ(g.nodes[2].out, (Shape{3, 1, 1}));
  }
  // x.view(n, 3, -1) is not [N, features] (nor the tensor's own shape).
  OnnxBuilder b = view_model(13, true);
  expect_contains(error_of([&] { parse_onnx(b.bytes(), "view.onnx"); }),
                  {"node '/Reshape'", "[1, 3, -1]", "[N, 12]"});
}

// GlobalAveragePool -> Squeeze [2, 3] -> Unsqueeze `axes` -> Reshape [0, C, 1, 1] ->
// Flatten -> MatMul.
OnnxBuilder squeeze_model(std::vector<std::int64_t> unsqueeze_axes) {
  OnnxBuilder b({3, 4, 4});
  std::mt19937_64 rng(14);
  b.node("GlobalAveragePool", "/gap", {"input"}, "g");
  constant(b, "hw", {2}, {2, 3});
  constant(b, "axes", {static_cast<std::int64_t>(unsqueeze_axes.size())}, unsqueeze_axes);
  b.node("Squeeze", "/Squeeze", {"g", "hw"}, "s");
  b.node("Unsqueeze", "/Unsqueeze", {"s", "axes"}, "u");
  constant(b, "same", {4}, {0, 3, 1, 1});
  b.node("Reshape", "/Reshape", {"u", "same"}, "r");
  b.node("Flatten", "/Flatten", {"r"}, "f");
  b.random_initializer("fc.weight", {3, 2}, rng);
  b.node("MatMul", "/fc/MatMul", {"f", "fc.weight"}, "out");
  b.output("out");
  return b;
}

TEST(TorchExport, ReshapeToTheSameShapeAndSqueezeUnsqueeze) {
  OnnxBuilder b = squeeze_model({2, 3});
  const Graph g = parse_onnx(b.bytes(), "squeeze.onnx");
  std::vector<OpKind> ops;
  for (const Node& n : g.nodes) ops.push_back(n.op);
  EXPECT_EQ(ops, (std::vector<OpKind>{OpKind::kGlobalAveragePool, OpKind::kFlatten, OpKind::kGemm}));
  // Unsqueeze before the channel axis would make the channels a spatial axis.
  OnnxBuilder bad = squeeze_model({1, 3});
  expect_contains(error_of([&] { parse_onnx(bad.bytes(), "squeeze.onnx"); }),
                  {"node '/Unsqueeze'", "size-1 axes after the channel axis"});
}

TEST(TorchExport, DropoutIdentityAndReduceMean) {
  for (int keep : {0, 1}) {
    SCOPED_TRACE(keep);
    OnnxBuilder b({2, 5, 5});
    std::mt19937_64 rng(15);
    b.conv("/conv/Conv", "input", "c", 2, 4, 3, rng);
    b.initializer("ratio", {}, {0.3f});
    tensor(b, "training", {}, {0});
    auto& drop = b.node("Dropout", "/Dropout", {"c", "ratio", "training"}, "d");
    drop.add_output("mask");
    b.node("Identity", "/Identity", {"d"}, "i");
    auto& mean = b.node("ReduceMean", "/ReduceMean", {"i"}, "m");
    OnnxBuilder::ints(mean, "axes", {-1, 2});
    OnnxBuilder::integer(mean, "keepdims", keep);
    std::string flat = "m";
    if (keep) {
      b.node("Flatten", "/Flatten", {"m"}, "f");
      flat = "f";
    }
    b.random_initializer("fc.weight", {4, 3}, rng);
    b.node("MatMul", "/fc/MatMul", {flat, "fc.weight"}, "out");
    b.output("out");
    Graph g;
    const Image x = random_image({2, 5, 5}, 16);
    const auto y = run(b, x.v, &g);
    ASSERT_EQ(g.nodes.size(), keep ? 4u : 3u);
    EXPECT_EQ(g.nodes[1].op, OpKind::kGlobalAveragePool);
    EXPECT_EQ(g.nodes[1].source_op, "ReduceMean");
    // By hand: the mean of each conv channel, then the MatMul.
    const Image c =
        conv_ref(x, initializer_values(b, "/conv/Conv.weight"), initializer_values(b, "/conv/Conv.bias"), 3);
    const auto w = initializer_values(b, "fc.weight");
    for (int o = 0; o < 3; ++o) {
      double want = 0;
      for (int ch = 0; ch < 4; ++ch) {
        double mean_c = 0;
        for (int p = 0; p < 9; ++p) mean_c += c.v[ch * 9 + p] / 9;
        want += w[ch * 3 + o] * mean_c;
      }
      EXPECT_NEAR(y[o], want, 1e-12);
    }
    // Dropout in training mode and a mean over channels are refused by name.
    b.graph().mutable_initializer(3)->set_int64_data(0, 1);
    expect_contains(error_of([&] { parse_onnx(b.bytes(), "m.onnx"); }), {"node '/Dropout'", "training mode"});
    b.graph().mutable_initializer(3)->set_int64_data(0, 0);
    b.graph().mutable_node(3)->mutable_attribute(0)->set_ints(0, 1);
    expect_contains(error_of([&] { parse_onnx(b.bytes(), "m.onnx"); }), {"node '/ReduceMean'", "H and W"});
  }
}

// ---- affine operations by constants -----------------------------------------------------

TEST(TorchExport, AffineOpsFoldIntoTheLinearLayerBefore) {
  // conv(x) / 2 - 0.5, squared, then x @ W + b (MatMul + Add) times 3.
  OnnxBuilder b({1, 4, 4});
  std::mt19937_64 rng(17);
  b.conv("/conv/Conv", "input", "c", 1, 2, 3, rng);
  b.initializer("two", {}, {2.0f});
  b.initializer("half", {1}, {0.5f});
  b.node("Div", "/Div", {"c", "two"}, "d");
  b.node("Sub", "/Sub", {"d", "half"}, "s");
  b.node("Mul", "/Mul", {"s", "s"}, "sq");
  b.node("Flatten", "/Flatten", {"sq"}, "f");
  b.random_initializer("w", {8, 3}, rng);
  b.random_initializer("bias", {3}, rng);
  b.initializer("three", {}, {3.0f});
  b.node("MatMul", "/fc/MatMul", {"f", "w"}, "mm");
  b.node("Add", "/fc/Add", {"bias", "mm"}, "fc");
  b.node("Mul", "/scale/Mul", {"fc", "three"}, "out");
  b.output("out");
  Graph g;
  const Image x = random_image({1, 4, 4}, 18);
  const auto y = run(b, x.v, &g);
  ASSERT_EQ(g.nodes.size(), 4u);  // Conv, Poly (x^2), Flatten, Gemm
  EXPECT_EQ(g.nodes[0].name, "/conv/Conv+/Div+/Sub");
  EXPECT_EQ(g.nodes[3].name, "/fc/MatMul+/fc/Add+/scale/Mul");
  const auto cw = initializer_values(b, "/conv/Conv.weight"), cb = initializer_values(b, "/conv/Conv.bias");
  EXPECT_DOUBLE_EQ(g.nodes[0].weights[4], cw[4] / 2);
  EXPECT_DOUBLE_EQ(g.nodes[0].bias[1], cb[1] / 2 - 0.5);
  // By hand.
  Image c = conv_ref(x, cw, cb, 3);
  for (double& v : c.v) v = (v / 2 - 0.5) * (v / 2 - 0.5);
  const auto w = initializer_values(b, "w"), bias = initializer_values(b, "bias");
  for (int o = 0; o < 3; ++o) {
    double want = bias[o];
    for (int i = 0; i < 8; ++i) want += w[i * 3 + o] * c.v[i];
    EXPECT_NEAR(y[o], 3 * want, 1e-12);
  }
}

TEST(TorchExport, AffineOpsOnSharedOrNonLinearValuesStayExact) {
  // The conv output is read twice (Div and Add): nothing folds into it, c + c / 2 is an
  // element-wise polynomial. The per-channel Mul after the pool becomes a
  // BatchNormalization, and k - x folds into that.
  OnnxBuilder b({2, 4, 4});
  std::mt19937_64 rng(19);
  b.conv("/conv/Conv", "input", "c", 2, 2, 1, rng);
  b.initializer("two", {}, {2.0f});
  b.node("Div", "/Div", {"c", "two"}, "d");
  b.node("Add", "/Add", {"c", "d"}, "r");
  auto& pool = b.node("AveragePool", "/pool/AveragePool", {"r"}, "p");
  OnnxBuilder::ints(pool, "kernel_shape", {2, 2});
  OnnxBuilder::ints(pool, "strides", {2, 2});
  b.initializer("scale", {2, 1, 1}, {1.5f, -2.0f});
  b.node("Mul", "/scale/Mul", {"p", "scale"}, "m");
  b.initializer("k", {1, 2, 1, 1}, {0.25f, 4.0f});
  b.node("Sub", "/shift/Sub", {"k", "m"}, "out");
  b.output("out");
  Graph g;
  const Image x = random_image({2, 4, 4}, 20);
  const auto y = run(b, x.v, &g);
  std::vector<OpKind> ops;
  for (const Node& n : g.nodes) ops.push_back(n.op);
  EXPECT_EQ(ops,
            (std::vector<OpKind>{OpKind::kConv, OpKind::kPoly, OpKind::kAveragePool, OpKind::kBatchNorm}));
  EXPECT_EQ(g.nodes[1].coefficients, (std::vector<double>{0.0, 1.5}));  // c + c / 2
  EXPECT_EQ(g.nodes[3].weights, (std::vector<double>{-1.5, 2.0}));      // k - 1.5 x, k + 2 x
  EXPECT_EQ(g.nodes[3].bias, (std::vector<double>{0.25, 4.0}));
  Image c =
      conv_ref(x, initializer_values(b, "/conv/Conv.weight"), initializer_values(b, "/conv/Conv.bias"), 1);
  for (double& v : c.v) v *= 1.5;
  const Image p = pool_ref(c, 2, 2);
  for (int ch = 0; ch < 2; ++ch)
    for (int i = 0; i < 4; ++i)
      EXPECT_NEAR(y[ch * 4 + i], (ch ? 4.0 : 0.25) - (ch ? -2.0 : 1.5) * p.v[ch * 4 + i], 1e-12);
}

TEST(TorchExport, RefusesAffineConstantsWithoutAnExactForm) {
  auto check = [](const std::string& op, std::vector<std::int64_t> dims, std::vector<float> values,
                  bool constant_first, std::initializer_list<const char*> parts) {
    OnnxBuilder b({2, 2, 2});
    b.node("AveragePool", "/pool", {"input"}, "p");
    OnnxBuilder::ints(*b.graph().mutable_node(0), "kernel_shape", {1, 1});
    b.initializer("k", dims, values);
    b.node(op, "/op",
           constant_first ? std::vector<std::string>{"k", "p"} : std::vector<std::string>{"p", "k"}, "out");
    b.output("out");
    expect_contains(error_of([&] { parse_onnx(b.bytes(), "m.onnx"); }), parts);
  };
  check("Div", {2, 1, 1}, {1.0f, 0.0f}, false, {"node '/op'", "division by zero"});
  check("Mul", {2, 2, 2}, std::vector<float>(8, 1.0f), false, {"node '/op'", "only scalars"});
  check("Div", {2, 1, 1}, {1.0f, 2.0f}, true, {"node '/op'", "only scalars"});
}

// ---- grouped convolution ----------------------------------------------------------------

TEST(TorchExport, GroupedConvEqualsDenseConvWithZeroBlocks) {
  // groups = 2: 4 input channels, 6 outputs, each output reads the 2 channels of its group.
  OnnxBuilder grouped({4, 5, 5});
  std::mt19937_64 rng(21);
  grouped.conv("/g/Conv", "input", "out", 4, 6, 3, rng, 2);
  grouped.output("out");
  const auto w = initializer_values(grouped, "/g/Conv.weight");  // [6][2][3][3]
  const auto bias = initializer_values(grouped, "/g/Conv.bias");
  std::vector<float> dense(6 * 4 * 9, 0.0f);
  for (int o = 0; o < 6; ++o)
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 9; ++k)
        dense[(o * 4 + (o / 3) * 2 + i) * 9 + k] = static_cast<float>(w[(o * 2 + i) * 9 + k]);
  OnnxBuilder full({4, 5, 5});
  full.initializer("w", {6, 4, 3, 3}, dense);
  full.initializer("b", {6}, std::vector<float>(bias.begin(), bias.end()));
  OnnxBuilder::ints(full.node("Conv", "/full/Conv", {"input", "w", "b"}, "out"), "kernel_shape", {3, 3});
  full.output("out");
  const Image x = random_image({4, 5, 5}, 22);
  const auto y = run(grouped, x.v);
  EXPECT_LT(test::max_rel_diff(y, run(full, x.v)), 1e-12);
  EXPECT_LT(test::max_rel_diff(y, conv_ref(x, w, bias, 3, 2).v), 1e-12);
  // The lowered matrix keeps only the group's blocks: 2 of 4 input channels per row.
  const Network net = lower(parse_onnx(grouped.bytes(), "g.onnx"));
  EXPECT_EQ(net.stages[0].linear().weights.nnz(), 6 * 3 * 3 * 2 * 9);
}

// ---- the constant folder on its own ----------------------------------------------------

Tensor ints(std::vector<std::int64_t> dims, std::vector<double> values) {
  Tensor t;
  t.dims = std::move(dims);
  t.values = std::move(values);
  t.elem_type = onnx::TensorProto::INT64;
  return t;
}

Tensor fold(const std::string& op, std::vector<const Tensor*> inputs,
            const std::function<void(onnx::NodeProto&)>& attrs = {}) {
  onnx::NodeProto node;
  node.set_op_type(op);
  if (attrs) attrs(node);
  return detail::fold_constant(node, inputs, "node '/" + op + "'");
}

TEST(ConstantFold, ShapeArithmetic) {
  const Tensor m = ints({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor last = ints({}, {-1});
  Tensor g = fold("Gather", {&m, &last}, [](onnx::NodeProto& n) { OnnxBuilder::integer(n, "axis", 1); });
  EXPECT_EQ(g.dims, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(g.values, (std::vector<double>{3, 6}));
  const Tensor t = fold("Transpose", {&m});
  EXPECT_EQ(t.dims, (std::vector<std::int64_t>{3, 2}));
  EXPECT_EQ(t.values, (std::vector<double>{1, 4, 2, 5, 3, 6}));
  const Tensor starts = ints({1}, {-1}), ends = ints({1}, {-1e19}), axes = ints({1}, {1}),
               steps = ints({1}, {-2});
  const Tensor s = fold("Slice", {&m, &starts, &ends, &axes, &steps});
  EXPECT_EQ(s.values, (std::vector<double>{3, 1, 6, 4}));
  Tensor f = m;
  f.elem_type = onnx::TensorProto::FLOAT;
  f.values = {-1.5, 2.5, 3.9, -0.2, 7, 8};
  const Tensor c = fold("Cast", {&f}, [](onnx::NodeProto& n) { OnnxBuilder::integer(n, "to", 7); });
  EXPECT_EQ(c.values, (std::vector<double>{-1, 2, 3, 0, 7, 8}));
  const Tensor seven = ints({}, {-7}), two = ints({}, {2});
  EXPECT_EQ(fold("Div", {&seven, &two}).values, (std::vector<double>{-3}));  // truncates, as int64
  const Tensor col = ints({2, 1}, {10, 20}), row = ints({3}, {1, 2, 3});
  const Tensor sum = fold("Add", {&col, &row});
  EXPECT_EQ(sum.dims, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(sum.values, (std::vector<double>{11, 12, 13, 21, 22, 23}));
  const Tensor cat = fold("Concat", {&m, &m}, [](onnx::NodeProto& n) { OnnxBuilder::integer(n, "axis", 1); });
  EXPECT_EQ(cat.values, (std::vector<double>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
  const Tensor zero_axis = ints({1}, {0});
  EXPECT_EQ(fold("Unsqueeze", {&m, &zero_axis}).dims, (std::vector<std::int64_t>{1, 2, 3}));
}

TEST(ConstantFold, ErrorsNameTheNode) {
  const Tensor huge = ints({3}, {1 << 20, 1 << 20, 4});
  expect_contains(error_of([&] { fold("ConstantOfShape", {&huge}); }),
                  {"node '/ConstantOfShape'", "too large"});
  const Tensor v = ints({3}, {1, 2, 3}), bad = ints({}, {3});
  expect_contains(error_of([&] { fold("Gather", {&v, &bad}); }), {"node '/Gather'", "out of range"});
  const Tensor m = ints({2, 2}, {1, 2, 3, 4});
  expect_contains(error_of([&] {
                    fold("Concat", {&v, &m}, [](onnx::NodeProto& n) { OnnxBuilder::integer(n, "axis", 0); });
                  }),
                  {"node '/Concat'", "[3]", "[2, 2]"});
  const Tensor zero = ints({}, {0});
  expect_contains(error_of([&] { fold("Div", {&v, &zero}); }), {"node '/Div'", "division by zero"});
  // Hostile sizes: a product past int64 and a step past any dimension.
  const Tensor one = ints({1}, {7}), giant = ints({3}, {1LL << 40, 1LL << 40, 0});
  expect_contains(error_of([&] { fold("Reshape", {&one, &giant}); }), {"node '/Reshape'", "too large"});
  const Tensor from = ints({1}, {1}), to = ints({1}, {3}), axis = ints({1}, {0}), step = ints({1}, {9.2e18});
  EXPECT_EQ(fold("Slice", {&v, &from, &to, &axis, &step}).values, (std::vector<double>{2}));
}

}  // namespace
}  // namespace veil::nn
