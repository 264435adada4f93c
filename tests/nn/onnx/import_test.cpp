// ONNX import: the shipped models against their model cards, fixtures built in C++ for
// every supported operator and pattern, and the errors for everything else.
#include "veil/nn/onnx/import.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "nn/nn_test_util.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::nn {
namespace {

using test::OnnxBuilder;

const char* kModels[] = {"mnist-cryptonets", "mnist-delphi", "fashion-delphi", "cifar10-shallow"};

// Runs f and returns the message of the exception of type E it throws ("" if none).
template <typename E, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

void expect_contains(const std::string& message, std::initializer_list<const char*> parts) {
  EXPECT_FALSE(message.empty()) << "no error";
  for (const char* p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
}

TEST(OnnxImport, ShippedModelsMatchTheirCards) {
  for (const char* model : kModels) {
    SCOPED_TRACE(model);
    const Graph g = load_onnx(test::source_path(std::string("models/") + model + ".onnx"));
    const auto card =
        nlohmann::json::parse(test::read_file(test::source_path(std::string("models/") + model + ".json")));
    EXPECT_EQ(g.name, card["name"].get<std::string>());
    std::map<std::string, int> ops;
    for (const auto& [op, count] : card["onnx_ops"].items()) ops[op] = count.get<int>();
    EXPECT_EQ(op_counts(g), ops);
    EXPECT_EQ(g.nodes[g.output].out.size(), 10);
    EXPECT_EQ(g.classes.size(), 10u);
    // Poly nodes in graph order carry the card's folded coefficients and ranges.
    std::size_t layer = 0;
    for (const Node& n : g.nodes) {
      if (n.op != OpKind::kPoly) continue;
      ASSERT_LT(layer, card["layers"].size());
      const auto& l = card["layers"][layer++];
      EXPECT_EQ(n.name, l["onnx_node"].get<std::string>());
      EXPECT_EQ(n.base, l["base"].get<std::string>());
      EXPECT_NEAR(n.input_range, l["input_range"].get<double>(), 1e-6);
      EXPECT_NEAR(n.fit_range, l["fit_range"].get<double>(), 1e-6);
      const auto coef = l["coefficients_folded"].get<std::vector<double>>();
      ASSERT_EQ(n.coefficients.size(), coef.size());
      for (std::size_t k = 0; k < coef.size(); ++k) EXPECT_NEAR(n.coefficients[k], coef[k], 1e-6);
    }
    EXPECT_EQ(layer, card["layers"].size());
  }
}

TEST(OnnxImport, ShippedModelMetadataAndShapes) {
  const Graph g = load_onnx(test::source_path("models/cifar10-shallow.onnx"));
  EXPECT_EQ(g.dataset, "cifar10");
  EXPECT_EQ(g.input, (Shape{3, 32, 32}));
  ASSERT_EQ(g.mean.size(), 3u);
  EXPECT_DOUBLE_EQ(g.mean[0], 0.4914);
  EXPECT_DOUBLE_EQ(g.std[2], 0.2616);
  EXPECT_EQ(g.classes[0], "airplane");
  EXPECT_EQ(g.classes[9], "truck");
  EXPECT_EQ(g.nodes[0].out, (Shape{32, 32, 32}));            // 3x3 conv, pad 1
  EXPECT_EQ(g.nodes[6].out, (Shape{64, 16, 16}));            // 2x2 average pool
  EXPECT_EQ(g.nodes[g.output - 2].out, (Shape{256, 1, 1}));  // global average pool

  const Graph c = load_onnx(test::source_path("models/mnist-cryptonets.onnx"));
  EXPECT_EQ(c.nodes[0].out, (Shape{5, 13, 13}));  // 5x5 conv, stride 2, pad 1
  EXPECT_EQ(c.nodes[0].window.stride_h, 2);
  EXPECT_EQ(c.nodes[0].window.pad_top, 1);
  const Graph f = load_onnx(test::source_path("models/fashion-delphi.onnx"));
  EXPECT_EQ(f.classes[9], "Ankle boot");
  EXPECT_EQ(f.dataset, "fashion-mnist");
}

// ---- file errors ----------------------------------------------------------------------

TEST(OnnxImport, MissingCorruptAndTruncatedFilesNameTheFile) {
  expect_contains(error_of<std::runtime_error>([] { load_onnx("/nonexistent/model.onnx"); }),
                  {"/nonexistent/model.onnx", "cannot open"});
  const std::string bytes = test::read_file(test::source_path("models/mnist-delphi.onnx"));
  const auto dir = std::filesystem::temp_directory_path();
  const std::string path = (dir / ("veil-nn-test-" + std::to_string(::getpid()) + ".onnx")).string();
  auto write = [&](const std::string& content) {
    std::ofstream(path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(content.size()));
  };
  for (std::size_t cut : {bytes.size() / 2, bytes.size() - 7, std::size_t{10}}) {
    write(bytes.substr(0, cut));
    expect_contains(error_of<std::runtime_error>([&] { load_onnx(path); }), {path.c_str()});
  }
  write("");
  expect_contains(error_of<std::runtime_error>([&] { load_onnx(path); }), {path.c_str(), "empty"});
  write("ir_version: 7\ngraph { name: 'text format is not the binary format' }\n");
  expect_contains(error_of<std::runtime_error>([&] { load_onnx(path); }), {path.c_str()});
  std::string flipped = bytes;
  for (std::size_t i = 0; i < 64; ++i) flipped[i] = static_cast<char>(0xff);
  write(flipped);
  expect_contains(error_of<std::runtime_error>([&] { load_onnx(path); }), {path.c_str()});
  std::remove(path.c_str());
}

// ---- fixtures -------------------------------------------------------------------------

// input [N,1,8,8] -> Conv 3x3 (2 channels) -> <activation> -> Flatten -> Gemm 3.
struct SmallModel {
  OnnxBuilder b;
  std::mt19937_64 rng{7};
  SmallModel() { b.conv("/conv/Conv", "input", "c", 1, 2, 3, rng); }
  void finish(const std::string& act_out) {
    b.node("Flatten", "/Flatten", {act_out}, "f");
    b.random_initializer("fc.weight", {3, 72}, rng);
    b.random_initializer("fc.bias", {3}, rng);
    auto& fc = b.node("Gemm", "/fc/Gemm", {"f", "fc.weight", "fc.bias"}, "logits");
    OnnxBuilder::integer(fc, "transB", 1);
    b.output("logits");
  }
  Graph load(const ImportOptions& options = {}) { return parse_onnx(b.bytes(), "small.onnx", options); }
};

TEST(OnnxImport, RecognisesPolynomialsWrittenWithMulAndAdd) {
  // torch.onnx.export of `0.25 * x * x + 0.5 * x + 0.125` (x is the conv output "c").
  SmallModel m;
  m.b.initializer("a", {}, {0.25f});
  m.b.initializer("b", {}, {0.5f});
  m.b.initializer("c0", {1}, {0.125f});
  m.b.node("Mul", "/act/Mul", {"c", "a"}, "m1");
  m.b.node("Mul", "/act/Mul_1", {"m1", "c"}, "m2");
  m.b.node("Mul", "/act/Mul_2", {"b", "c"}, "m3");
  m.b.node("Add", "/act/Add", {"m2", "m3"}, "s1");
  m.b.node("Add", "/act/Add_1", {"s1", "c0"}, "act");
  m.finish("act");
  const Graph g = m.load();
  ASSERT_EQ(g.nodes.size(), 4u);
  const Node& p = g.nodes[1];
  EXPECT_EQ(p.op, OpKind::kPoly);
  EXPECT_EQ(p.base, "poly");
  EXPECT_EQ(p.input_range, 0.0);  // unknown
  ASSERT_EQ(p.coefficients.size(), 3u);
  EXPECT_DOUBLE_EQ(p.coefficients[0], 0.125);
  EXPECT_DOUBLE_EQ(p.coefficients[1], 0.5);
  EXPECT_DOUBLE_EQ(p.coefficients[2], 0.25);
  EXPECT_EQ(p.name, "/act/Mul+/act/Mul_1+/act/Mul_2+/act/Add+/act/Add_1");

  ImportOptions options;
  options.approximations = {parse_approx_spec("poly:range5")};
  const Graph r = m.load(options);
  EXPECT_EQ(r.nodes[1].input_range, 5.0);
  EXPECT_EQ(r.nodes[1].fit_range, 5.0);
}

TEST(OnnxImport, RecognisesPowSubDivNeg) {
  // y = -((x - 1)^2 / 4) + x  ->  -0.25 + 1.5 x - 0.25 x^2
  SmallModel m;
  m.b.initializer("one", {}, {1.0f});
  m.b.initializer("two", {1}, {2.0f});
  m.b.initializer("four", {}, {4.0f});
  m.b.node("Sub", "/act/Sub", {"c", "one"}, "s");
  m.b.node("Pow", "/act/Pow", {"s", "two"}, "p");
  m.b.node("Div", "/act/Div", {"p", "four"}, "d");
  m.b.node("Neg", "/act/Neg", {"d"}, "n");
  m.b.node("Add", "/act/Add", {"n", "c"}, "act");
  m.finish("act");
  const Graph g = m.load();
  ASSERT_EQ(g.nodes.size(), 4u);
  const auto& c = g.nodes[1].coefficients;
  ASSERT_EQ(c.size(), 3u);
  EXPECT_DOUBLE_EQ(c[0], -0.25);
  EXPECT_DOUBLE_EQ(c[1], 1.5);
  EXPECT_DOUBLE_EQ(c[2], -0.25);
}

TEST(OnnxImport, ReluNeedsAnApproximationSpec) {
  SmallModel m;
  m.b.node("Relu", "/act/Relu", {"c"}, "act");
  m.finish("act");
  expect_contains(
      error_of<std::invalid_argument>([&] { m.load(); }),
      {"small.onnx", "/act/Relu", "Relu", "no polynomial form", "--approximate relu:deg4:range8"});
  ImportOptions options;
  options.approximations = {parse_approx_spec("relu:deg4:range8")};
  const Graph g = m.load(options);
  const Node& p = g.nodes[1];
  EXPECT_EQ(p.op, OpKind::kPoly);
  EXPECT_EQ(p.base, "relu");
  EXPECT_EQ(p.fit_range, 8.0);
  EXPECT_EQ(p.coefficients, fit_polynomial(activation_function("relu"), 4, 8.0));
  // The other specs do not apply to Relu.
  options.approximations = {parse_approx_spec("silu:deg4:range8")};
  EXPECT_FALSE(error_of<std::invalid_argument>([&] { m.load(options); }).empty());
}

TEST(OnnxImport, RecognisesSiluAndGeluPatterns) {
  SmallModel silu;
  silu.b.node("Sigmoid", "/act/Sigmoid", {"c"}, "s");
  silu.b.node("Mul", "/act/Mul", {"c", "s"}, "act");
  silu.finish("act");
  expect_contains(error_of<std::invalid_argument>([&] { silu.load(); }),
                  {"/act/Sigmoid", "silu", "--approximate silu:deg4:range8"});
  ImportOptions options;
  options.approximations = {parse_approx_spec("silu:deg6:range6")};
  const Graph g = silu.load(options);
  EXPECT_EQ(g.nodes[1].base, "silu");
  EXPECT_EQ(g.nodes[1].coefficients.size(), 7u);

  // torch's GELU: x * 0.5 * (1 + erf(x / sqrt(2))) with float32 constants.
  SmallModel gelu;
  gelu.b.initializer("sqrt2", {}, {1.4142135381698608f});
  gelu.b.initializer("one", {}, {1.0f});
  gelu.b.initializer("half", {}, {0.5f});
  gelu.b.node("Div", "/act/Div", {"c", "sqrt2"}, "d");
  gelu.b.node("Erf", "/act/Erf", {"d"}, "e");
  gelu.b.node("Add", "/act/Add", {"e", "one"}, "a");
  gelu.b.node("Mul", "/act/Mul", {"c", "a"}, "m");
  gelu.b.node("Mul", "/act/Mul_1", {"m", "half"}, "act");
  gelu.finish("act");
  options.approximations = {parse_approx_spec("gelu:deg4:range4")};
  EXPECT_EQ(gelu.load(options).nodes[1].base, "gelu");

  // Exp alone is no activation we know.
  SmallModel exp;
  exp.b.node("Exp", "/act/Exp", {"c"}, "act");
  exp.finish("act");
  expect_contains(error_of<std::invalid_argument>([&] { exp.load(); }),
                  {"/act/Exp", "none of the activations"});
}

TEST(OnnxImport, RefusesUnsupportedOperatorsWithAdvice) {
  SmallModel maxpool;
  auto& mp = maxpool.b.node("MaxPool", "/pool/MaxPool", {"c"}, "act");
  OnnxBuilder::ints(mp, "kernel_shape", {2, 2});
  maxpool.finish("act");
  expect_contains(
      error_of<std::invalid_argument>([&] { maxpool.load(); }),
      {"node '/pool/MaxPool'", "MaxPool has no polynomial form", "AveragePool", "docs/model-format.md"});

  SmallModel softmax;
  softmax.b.node("Softmax", "/Softmax", {"c"}, "act");
  softmax.finish("act");
  expect_contains(error_of<std::invalid_argument>([&] { softmax.load(); }), {"/Softmax", "logits"});

  SmallModel lrn;
  lrn.b.node("LRN", "/lrn/LRN", {"c"}, "act");
  lrn.finish("act");
  expect_contains(error_of<std::invalid_argument>([&] { lrn.load(); }), {"/lrn/LRN", "LRN is not supported"});

  SmallModel other_domain;
  other_domain.b.node("Poly", "/act/Poly", {"c"}, "act", "com.example");
  other_domain.finish("act");
  expect_contains(error_of<std::invalid_argument>([&] { other_domain.load(); }), {"com.example::Poly"});
}

TEST(OnnxImport, RejectsBadAttributesAndWeights) {
  auto check = [](const std::function<void(SmallModel&)>& edit, std::initializer_list<const char*> parts) {
    SmallModel m;
    m.b.node("Relu", "/act/Relu", {"c"}, "act");
    m.finish("act");
    edit(m);
    ImportOptions options;
    options.approximations = {parse_approx_spec("relu:deg2:range4")};
    expect_contains(error_of<std::invalid_argument>([&] { m.load(options); }), parts);
  };
  auto conv = [](SmallModel& m) -> onnx::NodeProto& { return *m.b.graph().mutable_node(0); };
  check([&](SmallModel& m) { OnnxBuilder::string(conv(m), "auto_pad", "SAME_UPPER"); },
        {"/conv/Conv", "auto_pad"});
  check([&](SmallModel& m) { OnnxBuilder::integer(conv(m), "group", 2); }, {"/conv/Conv", "group"});
  check([&](SmallModel& m) { OnnxBuilder::ints(conv(m), "strides", {1, 1, 1}); }, {"/conv/Conv", "strides"});
  check([&](SmallModel& m) { OnnxBuilder::integer(conv(m), "foo", 1); },
        {"/conv/Conv", "unknown attribute 'foo'"});
  check(
      [&](SmallModel& m) {
        conv(m).mutable_attribute(0)->set_ints(0, 5);
        conv(m).mutable_attribute(0)->set_ints(1, 5);
      },
      {"/conv/Conv", "kernel_shape"});
  check([&](SmallModel& m) { OnnxBuilder::ints(conv(m), "kernel_shape", {3, 3}); }, {"/conv/Conv", "twice"});
  check([&](SmallModel& m) { m.b.graph().mutable_initializer(0)->set_float_data(3, std::nanf("")); },
        {"initializer '/conv/Conv.weight'", "NaN"});
  check([&](SmallModel& m) { m.b.graph().mutable_initializer(0)->set_float_data(0, INFINITY); },
        {"'/conv/Conv.weight'", "infinity"});
  check([&](SmallModel& m) { conv(m).set_input(1, "missing.weight"); }, {"/conv/Conv", "missing.weight"});
  check([&](SmallModel& m) { m.b.graph().mutable_initializer(0)->add_float_data(1.0f); },
        {"'/conv/Conv.weight'", "19 values"});
  check([&](SmallModel& m) { OnnxBuilder::integer(*m.b.graph().mutable_node(3), "transA", 1); },
        {"/fc/Gemm", "transA"});
  check(
      [&](SmallModel& m) {
        auto* extra = m.b.graph().add_input();
        extra->set_name("second");
      },
      {"2 inputs"});
  check([&](SmallModel& m) { m.b.graph().add_output()->set_name("f"); }, {"2 outputs"});
  check([&](SmallModel& m) { OnnxBuilder::integer(*m.b.graph().mutable_node(2), "axis", 2); },
        {"/Flatten", "axis 2"});
  check([&](SmallModel& m) { m.b.graph().mutable_node(1)->set_input(0, "nothing"); },
        {"/act/Relu", "'nothing'"});
}

TEST(OnnxImport, ChecksShapesAgainstWeights) {
  SmallModel m;
  m.b.node("Flatten", "/Flatten", {"c"}, "f");
  m.b.random_initializer("fc.weight", {3, 71}, m.rng);  // conv output has 72 values
  auto& fc = m.b.node("Gemm", "/fc/Gemm", {"f", "fc.weight"}, "logits");
  OnnxBuilder::integer(fc, "transB", 1);
  m.b.output("logits");
  expect_contains(error_of<std::invalid_argument>([&] { m.load(); }), {"/fc/Gemm", "72"});

  SmallModel pool;
  auto& p = pool.b.node("AveragePool", "/pool/AveragePool", {"c"}, "act");
  OnnxBuilder::ints(p, "kernel_shape", {2, 2});
  OnnxBuilder::ints(p, "pads", {1, 1, 1, 1});
  pool.finish("act");  // fc expects 72 inputs, the pool gives 2x4x4
  expect_contains(error_of<std::invalid_argument>([&] { pool.load(); }),
                  {"/pool/AveragePool", "count_include_pad"});

  SmallModel ceil;
  auto& c = ceil.b.node("AveragePool", "/pool/AveragePool", {"c"}, "act");
  OnnxBuilder::ints(c, "kernel_shape", {3, 3});  // 6x6: windows at 0, 2 and a partial one at 4
  OnnxBuilder::ints(c, "strides", {2, 2});
  OnnxBuilder::integer(c, "ceil_mode", 1);
  ceil.finish("act");
  expect_contains(error_of<std::invalid_argument>([&] { ceil.load(); }), {"/pool/AveragePool", "ceil_mode"});
}

TEST(OnnxImport, ResidualAddBecomesAGraphNode) {
  OnnxBuilder b({2, 6, 6});
  std::mt19937_64 rng(3);
  b.conv("/conv1/Conv", "input", "c1", 2, 2, 3, rng);
  OnnxBuilder::ints(b.graph().mutable_node()->at(0), "pads", {1, 1, 1, 1});
  auto& p = b.node("Poly", "/act/Poly", {"c1"}, "a", "veil");
  OnnxBuilder::floats(p, "coefficients", {0.1f, 0.5f, 0.2f});
  b.node("Add", "/res/Add", {"a", "input"}, "r");
  b.node("GlobalAveragePool", "/gap/GlobalAveragePool", {"r"}, "g");
  b.node("Flatten", "/Flatten", {"g"}, "f");
  b.random_initializer("fc.weight", {2, 4}, rng);  // [in, out] for MatMul
  b.node("MatMul", "/fc/MatMul", {"f", "fc.weight"}, "logits");
  b.output("logits");
  const Graph g = parse_onnx(b.bytes(), "residual.onnx");
  ASSERT_EQ(g.nodes.size(), 6u);
  EXPECT_EQ(g.nodes[2].op, OpKind::kAdd);
  EXPECT_EQ(g.nodes[2].inputs, (std::vector<int>{1, -1}));
  EXPECT_EQ(g.nodes[5].out, (Shape{4, 1, 1}));
  EXPECT_EQ(g.nodes[5].source_op, "MatMul");
}

TEST(OnnxImport, ReshapeIdentityAndConstantNodes) {
  OnnxBuilder b({1, 4, 4});
  std::mt19937_64 rng(9);
  b.conv("/conv/Conv", "input", "c", 1, 2, 3, rng);
  b.node("Identity", "/Identity", {"c"}, "i");
  b.int64_initializer("shape", {0, -1});
  b.node("Reshape", "/Reshape", {"i", "shape"}, "r");
  auto& k = b.node("Constant", "/Constant", {}, "k");
  OnnxBuilder::real(k, "value_float", 3.0f);
  b.node("Mul", "/scale/Mul", {"r", "k"}, "m");
  b.random_initializer("fc.weight", {8, 2}, rng);
  b.node("MatMul", "/fc/MatMul", {"m", "fc.weight"}, "logits");
  b.output("logits");
  const Graph g = parse_onnx(b.bytes(), "reshape.onnx");
  ASSERT_EQ(g.nodes.size(), 4u);  // Conv, Flatten (Reshape), Poly 3x, MatMul
  EXPECT_EQ(g.nodes[1].op, OpKind::kFlatten);
  EXPECT_EQ(g.nodes[1].source_op, "Reshape");
  EXPECT_EQ(g.nodes[2].coefficients, (std::vector<double>{0.0, 3.0}));
  // MatMul weights [in, out] are stored as [out][in].
  const auto& w = b.model.graph().initializer(3);
  EXPECT_EQ(g.nodes[3].weights[1 * 8 + 5], static_cast<double>(w.float_data(5 * 2 + 1)));

  b.graph().mutable_initializer(2)->set_int64_data(1, 4);  // Reshape to [N, 4]: 8 values do not fit
  expect_contains(error_of<std::invalid_argument>([&] { parse_onnx(b.bytes(), "reshape.onnx"); }),
                  {"/Reshape", "[N, 8]"});
}

TEST(OnnxImport, DeadBranchesArePruned) {
  SmallModel m;
  m.b.node("Relu", "/unused/Relu", {"c"}, "unused");  // never consumed: never fitted
  auto& p = m.b.node("Poly", "/act/Poly", {"c"}, "act", "veil");
  OnnxBuilder::floats(p, "coefficients", {0.0f, 1.0f, 1.0f});
  m.finish("act");
  const Graph g = m.load();
  EXPECT_EQ(g.nodes.size(), 4u);
  EXPECT_EQ(g.output, 3);
}

}  // namespace
}  // namespace veil::nn
