#include "veil/nn/graph.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::nn {

const char* op_name(OpKind op) {
  switch (op) {
    case OpKind::kConv:
      return "Conv";
    case OpKind::kGemm:
      return "Gemm";
    case OpKind::kBatchNorm:
      return "BatchNormalization";
    case OpKind::kAveragePool:
      return "AveragePool";
    case OpKind::kGlobalAveragePool:
      return "GlobalAveragePool";
    case OpKind::kFlatten:
      return "Flatten";
    case OpKind::kAdd:
      return "Add";
    case OpKind::kPoly:
      return "Poly";
  }
  return "?";
}

namespace {
// floor(span / stride) + 1 windows fit when span >= 0, none otherwise (C++ division
// truncates towards zero, so a negative span must not reach it).
int windows(int span, int stride) { return span < 0 ? 0 : span / stride + 1; }
}  // namespace

int Window::out_h(int in_h) const {
  return windows(in_h + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1, stride_h);
}

int Window::out_w(int in_w) const {
  return windows(in_w + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1, stride_w);
}

namespace {

bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

std::string shape_str(const Shape& s) {
  return std::to_string(s.c) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
}

void check_window(const Node& n, const Shape& in) {
  const Window& w = n.window;
  VEIL_REQUIRE(w.kernel_h >= 1 && w.kernel_w >= 1, "node '" << n.name << "': kernel must be at least 1x1");
  VEIL_REQUIRE(w.stride_h >= 1 && w.stride_w >= 1, "node '" << n.name << "': strides must be at least 1");
  VEIL_REQUIRE(w.dilation_h >= 1 && w.dilation_w >= 1,
               "node '" << n.name << "': dilations must be at least 1");
  VEIL_REQUIRE(w.pad_top >= 0 && w.pad_left >= 0 && w.pad_bottom >= 0 && w.pad_right >= 0,
               "node '" << n.name << "': pads must be non-negative");
  VEIL_REQUIRE(w.out_h(in.h) >= 1 && w.out_w(in.w) >= 1, "node '" << n.name << "': kernel " << w.kernel_h
                                                                  << "x" << w.kernel_w << " does not fit the "
                                                                  << shape_str(in) << " input");
}

Shape infer_node(const Node& n, const std::vector<Shape>& ins) {
  const Shape& in = ins[0];
  switch (n.op) {
    case OpKind::kConv: {
      check_window(n, in);
      // Any group count dividing the channels: the lowered matrix simply has zero blocks
      // between groups (linear.cpp), which the packing handles like any sparsity.
      VEIL_REQUIRE(n.group >= 1 && in.c % n.group == 0, "node '" << n.name << "': Conv group " << n.group
                                                                 << " does not divide the " << in.c
                                                                 << " input channels");
      VEIL_REQUIRE(n.out_features >= 1 && n.out_features % n.group == 0,
                   "node '" << n.name << "': " << n.out_features << " output channels do not divide into "
                            << n.group << " groups");
      const std::size_t expect =
          static_cast<std::size_t>(n.out_features) * (in.c / n.group) * n.window.kernel_h * n.window.kernel_w;
      VEIL_REQUIRE(n.weights.size() == expect, "node '" << n.name << "': Conv weight has " << n.weights.size()
                                                        << " values, expected " << expect << " for a "
                                                        << shape_str(in) << " input");
      VEIL_REQUIRE(n.bias.size() == static_cast<std::size_t>(n.out_features),
                   "node '" << n.name << "': Conv bias has " << n.bias.size() << " values, expected "
                            << n.out_features);
      return {n.out_features, n.window.out_h(in.h), n.window.out_w(in.w)};
    }
    case OpKind::kGemm: {
      VEIL_REQUIRE(n.out_features >= 1, "node '" << n.name << "': Gemm needs at least one output");
      const std::size_t expect = static_cast<std::size_t>(n.out_features) * in.size();
      VEIL_REQUIRE(n.weights.size() == expect, "node '" << n.name << "': weight has " << n.weights.size()
                                                        << " values, expected " << n.out_features << "x"
                                                        << in.size() << " for an input of " << in.size()
                                                        << " values");
      VEIL_REQUIRE(
          n.bias.size() == static_cast<std::size_t>(n.out_features),
          "node '" << n.name << "': bias has " << n.bias.size() << " values, expected " << n.out_features);
      return {n.out_features, 1, 1};
    }
    case OpKind::kBatchNorm:
      VEIL_REQUIRE(n.weights.size() == static_cast<std::size_t>(in.c) && n.bias.size() == n.weights.size(),
                   "node '" << n.name << "': BatchNormalization has " << n.weights.size()
                            << " channels, input has " << in.c);
      return in;
    case OpKind::kAveragePool:
      check_window(n, in);
      VEIL_REQUIRE(n.window.dilation_h == 1 && n.window.dilation_w == 1,
                   "node '" << n.name << "': AveragePool dilations must be 1");
      return {in.c, n.window.out_h(in.h), n.window.out_w(in.w)};
    case OpKind::kGlobalAveragePool:
      return {in.c, 1, 1};
    case OpKind::kFlatten:
      return {in.size(), 1, 1};
    case OpKind::kAdd:
      VEIL_REQUIRE(ins[0] == ins[1], "node '" << n.name << "': Add of tensors of different shapes "
                                              << shape_str(ins[0]) << " and " << shape_str(ins[1])
                                              << " (broadcasting is not supported)");
      return in;
    case OpKind::kPoly:
      VEIL_REQUIRE(!n.coefficients.empty(), "node '" << n.name << "': Poly has no coefficients");
      VEIL_REQUIRE(all_finite(n.coefficients), "node '" << n.name << "': Poly coefficients must be finite");
      VEIL_REQUIRE(std::isfinite(n.input_range) && n.input_range >= 0 && std::isfinite(n.fit_range) &&
                       n.fit_range >= 0,
                   "node '" << n.name << "': Poly input_range and fit_range must be finite and non-negative");
      return in;
  }
  return in;
}

}  // namespace

namespace {

void check_metadata(const Graph& graph) {
  VEIL_REQUIRE(graph.input.c >= 1 && graph.input.h >= 1 && graph.input.w >= 1,
               "graph input shape " << shape_str(graph.input) << " must be positive");
  VEIL_REQUIRE(graph.mean.empty() || graph.mean.size() == static_cast<std::size_t>(graph.input.c),
               "normalize mean has " << graph.mean.size() << " values for " << graph.input.c << " channels");
  VEIL_REQUIRE(graph.std.size() == graph.mean.size(),
               "normalize std has " << graph.std.size() << " values, mean has " << graph.mean.size());
  for (double s : graph.std)
    VEIL_REQUIRE(std::isfinite(s) && s > 0, "normalize std must be positive, got " << s);
  for (double m : graph.mean) VEIL_REQUIRE(std::isfinite(m), "normalize mean must be finite");
}

// Validates node i against the nodes before it and fills its shapes.
void infer_at(Graph& graph, int i) {
  Node& n = graph.nodes[i];
  const std::size_t arity = n.op == OpKind::kAdd ? 2 : 1;
  VEIL_REQUIRE(n.inputs.size() == arity, "node '" << n.name << "': " << op_name(n.op) << " takes " << arity
                                                  << " input(s), got " << n.inputs.size());
  std::vector<Shape> ins;
  for (int src : n.inputs) {
    // Topological order is what lets a single forward sweep evaluate the graph.
    VEIL_REQUIRE(src >= -1 && src < i, "node '"
                                           << n.name << "': input " << src
                                           << " is not an earlier node (graph must be in topological order)");
    ins.push_back(src < 0 ? graph.input : graph.nodes[src].out);
  }
  VEIL_REQUIRE(all_finite(n.weights) && all_finite(n.bias),
               "node '" << n.name << "': weights must be finite (found NaN or infinity)");
  n.in = ins[0];
  n.out = infer_node(n, ins);
}

}  // namespace

int add_node(Graph& graph, Node node) {
  check_metadata(graph);
  graph.nodes.push_back(std::move(node));
  const int index = static_cast<int>(graph.nodes.size()) - 1;
  try {
    infer_at(graph, index);
  } catch (...) {
    graph.nodes.pop_back();
    throw;
  }
  return index;
}

void infer_shapes(Graph& graph) {
  check_metadata(graph);
  const int count = static_cast<int>(graph.nodes.size());
  VEIL_REQUIRE(graph.output >= -1 && graph.output < count,
               "graph output index " << graph.output << " out of range");
  for (int i = 0; i < count; ++i) infer_at(graph, i);
}

std::map<std::string, int> op_counts(const Graph& graph) {
  std::map<std::string, int> counts;
  for (const Node& n : graph.nodes) ++counts[op_name(n.op)];
  return counts;
}

}  // namespace veil::nn
