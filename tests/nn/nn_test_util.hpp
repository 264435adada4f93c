// Shared helpers for the model tests: shipped models and samples, random graphs built in
// C++, and ONNX ModelProto fixtures built in C++ (no Python at test time).
#pragma once

#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "veil/nn/graph.hpp"

namespace veil::nn::test {

inline std::string source_path(const std::string& relative) {
  return std::string(VEIL_SOURCE_DIR) + "/" + relative;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.is_open()) << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The shipped sample images as channel-major bytes: IDX3 (MNIST, Fashion-MNIST) or
// CIFAR-10 binary records (label byte + 3072 pixel bytes).
inline std::vector<std::vector<std::uint8_t>> read_idx_images(const std::string& path) {
  const std::string bytes = read_file(path);
  auto be32 = [&](std::size_t at) {
    return (std::uint32_t(std::uint8_t(bytes[at])) << 24) |
           (std::uint32_t(std::uint8_t(bytes[at + 1])) << 16) |
           (std::uint32_t(std::uint8_t(bytes[at + 2])) << 8) | std::uint32_t(std::uint8_t(bytes[at + 3]));
  };
  EXPECT_EQ(be32(0), 0x803u);
  const std::size_t n = be32(4), size = std::size_t(be32(8)) * be32(12);
  std::vector<std::vector<std::uint8_t>> images;
  for (std::size_t i = 0; i < n; ++i)
    images.emplace_back(bytes.begin() + 16 + i * size, bytes.begin() + 16 + (i + 1) * size);
  return images;
}

// The first `count` images of the shipped MNIST test samples.
inline std::vector<std::vector<std::uint8_t>> mnist_samples(std::size_t count) {
  auto images = read_idx_images(source_path("models/samples/mnist-test-first16-images-idx3-ubyte"));
  EXPECT_GE(images.size(), count);
  images.resize(std::min(images.size(), count));
  return images;
}

inline std::vector<std::vector<std::uint8_t>> read_cifar_records(const std::string& path) {
  const std::string bytes = read_file(path);
  std::vector<std::vector<std::uint8_t>> images;
  for (std::size_t at = 0; at + 3073 <= bytes.size(); at += 3073)
    images.emplace_back(bytes.begin() + at + 1, bytes.begin() + at + 3073);
  return images;
}

inline std::vector<double> random_vector(std::size_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return v;
}

// Largest |a - b| relative to max(1, |b|), element-wise.
inline double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    m = std::max(m, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return m;
}

// ---- graphs built in C++ ------------------------------------------------------------

inline Graph empty_graph(Shape input) {
  Graph g;
  g.name = "test";
  g.input = input;
  g.mean.assign(input.c, 0.0);
  g.std.assign(input.c, 1.0);
  return g;
}

inline int last(const Graph& g) { return static_cast<int>(g.nodes.size()) - 1; }

inline int add_conv(Graph& g, int input, int out_c, int k, int stride, int pad, int group,
                    std::mt19937_64& rng) {
  Node n;
  n.op = OpKind::kConv;
  n.name = "conv" + std::to_string(g.nodes.size());
  n.inputs = {input};
  const Shape in = input < 0 ? g.input : g.nodes[input].out;
  n.out_features = out_c;
  n.group = group;
  n.window.kernel_h = n.window.kernel_w = k;
  n.window.stride_h = n.window.stride_w = stride;
  n.window.pad_top = n.window.pad_left = n.window.pad_bottom = n.window.pad_right = pad;
  n.weights =
      random_vector(std::size_t(out_c) * (in.c / group) * k * k, rng, 1.0 / std::sqrt(k * k * in.c / group));
  n.bias = random_vector(out_c, rng, 0.1);
  return add_node(g, n);
}

inline int add_simple(Graph& g, OpKind op, int input, const std::string& name) {
  Node n;
  n.op = op;
  n.name = name;
  n.inputs = {input};
  return add_node(g, n);
}

inline int add_batch_norm(Graph& g, int input, std::mt19937_64& rng) {
  Node n;
  n.op = OpKind::kBatchNorm;
  n.name = "bn" + std::to_string(g.nodes.size());
  n.inputs = {input};
  const int c = (input < 0 ? g.input : g.nodes[input].out).c;
  for (int i = 0; i < c; ++i) {
    n.weights.push_back(0.5 + std::uniform_real_distribution<double>(0, 1)(rng));
    n.bias.push_back(std::normal_distribution<double>(0, 0.2)(rng));
  }
  return add_node(g, n);
}

inline int add_pool(Graph& g, int input, int k, int stride, int pad = 0) {
  Node n;
  n.op = OpKind::kAveragePool;
  n.name = "pool" + std::to_string(g.nodes.size());
  n.inputs = {input};
  n.window.kernel_h = n.window.kernel_w = k;
  n.window.stride_h = n.window.stride_w = stride;
  n.window.pad_top = n.window.pad_left = n.window.pad_bottom = n.window.pad_right = pad;
  return add_node(g, n);
}

inline int add_gemm(Graph& g, int input, int outputs, std::mt19937_64& rng) {
  Node n;
  n.op = OpKind::kGemm;
  n.name = "fc" + std::to_string(g.nodes.size());
  n.inputs = {input};
  const int in = (input < 0 ? g.input : g.nodes[input].out).size();
  n.out_features = outputs;
  n.weights = random_vector(std::size_t(outputs) * in, rng, 1.0 / std::sqrt(in));
  n.bias = random_vector(outputs, rng, 0.1);
  return add_node(g, n);
}

inline int add_poly(Graph& g, int input, std::vector<double> coefficients) {
  Node n;
  n.op = OpKind::kPoly;
  n.name = "act" + std::to_string(g.nodes.size());
  n.inputs = {input};
  n.coefficients = std::move(coefficients);
  n.base = "poly";
  return add_node(g, n);
}

// A 1x4x4 input, a 3x3 convolution to two channels, the polynomial, flatten and a dense
// layer of `outputs`: the smallest chain with every stage kind.
inline Graph conv_poly_dense(std::mt19937_64& rng, std::vector<double> coefficients, int outputs) {
  Graph g = empty_graph({1, 4, 4});
  const int c = add_conv(g, -1, 2, 3, 1, 1, 1, rng);
  const int p = add_poly(g, c, std::move(coefficients));
  g.output = add_gemm(g, add_simple(g, OpKind::kFlatten, p, "flat"), outputs, rng);
  return g;
}

// ---- ONNX fixtures built in C++ -----------------------------------------------------

struct OnnxBuilder {
  onnx::ModelProto model;

  explicit OnnxBuilder(std::vector<std::int64_t> input_chw = {1, 8, 8}) {
    model.set_ir_version(7);
    model.set_producer_name("veil-test");
    auto* op = model.add_opset_import();
    op->set_domain("");
    op->set_version(13);
    auto* veil = model.add_opset_import();
    veil->set_domain("veil");
    veil->set_version(1);
    auto* g = model.mutable_graph();
    g->set_name("test");
    auto* in = g->add_input();
    in->set_name("input");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("N");
    for (std::int64_t d : input_chw) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }

  onnx::GraphProto& graph() { return *model.mutable_graph(); }

  void initializer(const std::string& name, std::vector<std::int64_t> dims,
                   const std::vector<float>& values) {
    auto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
  }

  void random_initializer(const std::string& name, std::vector<std::int64_t> dims, std::mt19937_64& rng,
                          double scale = 0.3) {
    std::size_t n = 1;
    for (auto d : dims) n *= static_cast<std::size_t>(d);
    std::vector<float> v;
    for (double x : random_vector(n, rng, scale)) v.push_back(static_cast<float>(x));
    initializer(name, dims, v);
  }

  void int64_initializer(const std::string& name, const std::vector<std::int64_t>& values) {
    auto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<std::int64_t>(values.size()));
    for (auto v : values) t->add_int64_data(v);
  }

  onnx::NodeProto& node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                        const std::string& output, const std::string& domain = "") {
    auto* n = graph().add_node();
    n->set_op_type(op);
    n->set_name(name);
    n->set_domain(domain);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    return *n;
  }

  static void ints(onnx::NodeProto& n, const std::string& name, std::vector<std::int64_t> values) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto v : values) a->add_ints(v);
  }
  static void integer(onnx::NodeProto& n, const std::string& name, std::int64_t value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void floats(onnx::NodeProto& n, const std::string& name, std::vector<float> values) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOATS);
    for (auto v : values) a->add_floats(v);
  }
  static void real(onnx::NodeProto& n, const std::string& name, float value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }
  static void string(onnx::NodeProto& n, const std::string& name, const std::string& value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(value);
  }

  // A Conv node with random weights [out_c, in_c / group, k, k] and bias.
  onnx::NodeProto& conv(const std::string& name, const std::string& input, const std::string& output,
                        int in_c, int out_c, int k, std::mt19937_64& rng, int group = 1) {
    random_initializer(name + ".weight", {out_c, in_c / group, k, k}, rng);
    random_initializer(name + ".bias", {out_c}, rng, 0.1);
    auto& n = node("Conv", name, {input, name + ".weight", name + ".bias"}, output);
    ints(n, "kernel_shape", {k, k});
    if (group != 1) integer(n, "group", group);
    return n;
  }

  void output(const std::string& name) {
    auto* o = graph().add_output();
    o->set_name(name);
    o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }

  std::string bytes() const { return model.SerializeAsString(); }
};

}  // namespace veil::nn::test
