// Graph validation and shape inference for graphs built by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/nn_test_util.hpp"

namespace veil::nn {
namespace {

Node conv_node(int out_c, int in_c, int k, int stride) {
  Node n;
  n.op = OpKind::kConv;
  n.name = "conv";
  n.inputs = {-1};
  n.out_features = out_c;
  n.window.kernel_h = n.window.kernel_w = k;
  n.window.stride_h = n.window.stride_w = stride;
  n.weights.assign(static_cast<std::size_t>(out_c) * in_c * k * k, 0.5);
  n.bias.assign(out_c, 0.0);
  return n;
}

TEST(Graph, InfersConvolutionAndPoolShapes) {
  Graph g = test::empty_graph({3, 11, 9});
  Node c = conv_node(4, 3, 3, 2);
  c.window.pad_top = 1;
  c.window.pad_bottom = 2;
  const int conv = add_node(g, c);
  // (11 + 3 - 2 - 1) / 2 + 1 = 6 rows, (9 - 2 - 1) / 2 + 1 = 4 columns.
  EXPECT_EQ(g.nodes[conv].out, (Shape{4, 6, 4}));
  const int pool = test::add_pool(g, conv, 3, 3);
  EXPECT_EQ(g.nodes[pool].out, (Shape{4, 2, 1}));
  const int flat = test::add_simple(g, OpKind::kFlatten, pool, "flat");
  EXPECT_EQ(g.nodes[flat].out, (Shape{8, 1, 1}));
  EXPECT_EQ(op_counts(g), (std::map<std::string, int>{{"AveragePool", 1}, {"Conv", 1}, {"Flatten", 1}}));
}

TEST(Graph, RejectsInvalidNodes) {
  Graph g = test::empty_graph({2, 2, 2});
  // A 4x4 kernel with stride 3 on a 2x2 map: the span is negative, no window fits.
  EXPECT_THROW(add_node(g, conv_node(1, 2, 4, 3)), std::invalid_argument);
  Node grouped = conv_node(2, 1, 1, 1);
  grouped.group = 2;  // depthwise on 2 channels: fine
  EXPECT_NO_THROW(add_node(g, grouped));
  Node bad_group = conv_node(4, 1, 1, 1);
  bad_group.group = 3;
  EXPECT_THROW(add_node(g, bad_group), std::invalid_argument);
  Node short_weights = conv_node(1, 2, 1, 1);
  short_weights.weights.pop_back();
  EXPECT_THROW(add_node(g, short_weights), std::invalid_argument);
  Node nan = conv_node(1, 2, 1, 1);
  nan.weights[0] = std::nan("");
  EXPECT_THROW(add_node(g, nan), std::invalid_argument);
  Node forward = conv_node(1, 2, 1, 1);
  forward.inputs = {5};  // not an earlier node
  EXPECT_THROW(add_node(g, forward), std::invalid_argument);
  Node zero_stride = conv_node(1, 2, 1, 0);
  EXPECT_THROW(add_node(g, zero_stride), std::invalid_argument);
  Node poly;
  poly.op = OpKind::kPoly;
  poly.name = "p";
  poly.inputs = {-1};
  EXPECT_THROW(add_node(g, poly), std::invalid_argument);  // no coefficients
  EXPECT_EQ(g.nodes.size(), 1u);                           // failed nodes are not kept
  g.std[0] = 0;
  EXPECT_THROW(infer_shapes(g), std::invalid_argument);
}

}  // namespace
}  // namespace veil::nn
