// The imported model as a small DAG, before lowering to the chain of network.hpp.
//
// The graph keeps one node per ONNX operator we support (BatchNormalization separate
// from its Conv, pools with their 1/k^2, polynomials with their leading coefficient), so
// the plain evaluator can check the import against the exporter's reference logits and
// the merging passes (passes.hpp) can be reported before/after. Tensors are per sample
// (C, H, W) in channel-major order; a flattened tensor of n values has shape (n, 1, 1),
// so Flatten and Reshape change the shape and never the order of the values.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "veil/nn/network.hpp"

namespace veil::nn {

enum class OpKind {
  kConv,               // 2-D convolution, any group count (depthwise included)
  kGemm,               // dense layer y = W x + b (Gemm and MatMul)
  kBatchNorm,          // inference batch norm, stored as per-channel y = scale * x + shift
  kAveragePool,        // 2-D average pool, count_include_pad = 1, ceil_mode = 0
  kGlobalAveragePool,  // mean over H x W per channel
  kFlatten,            // shape change only (Flatten and Reshape)
  kAdd,                // element-wise sum of two tensors of one shape (residual)
  kPoly,               // element-wise polynomial
};

// The ONNX operator name of a kind ("Conv", "Gemm", "BatchNormalization", ...).
const char* op_name(OpKind op);

// Sliding-window geometry shared by Conv and AveragePool (ONNX attribute names).
struct Window {
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int dilation_h = 1, dilation_w = 1;
  // Output extent along one axis: floor((in + pads - dilation*(k-1) - 1) / stride) + 1.
  int out_h(int in_h) const;
  int out_w(int in_w) const;
};

struct Node {
  OpKind op = OpKind::kConv;
  std::string name;         // ONNX node name (unique); for a recognised polynomial, its nodes
  std::string source_op;    // ONNX op it came from ("MatMul", "Reshape", "Relu", ...)
  std::vector<int> inputs;  // producer node indices, -1 = the graph input
  Shape in, out;            // filled by infer_shapes (in = shape of inputs[0])

  // Conv and AveragePool.
  Window window;
  int group = 1;  // Conv: divides in.c and out_features (in.c: depthwise)

  // Conv: [out_c][in_c / group][kernel_h][kernel_w]; Gemm: [out][in] (row-major, so
  // y = W x + b with x the flattened input); BatchNorm: per-channel scale.
  std::vector<double> weights;
  // Conv, Gemm: bias (out channels / outputs, zeros when absent); BatchNorm: per-channel
  // shift. Folding BN with epsilon happens at import: scale = gamma / sqrt(var + eps),
  // shift = beta - mean * scale (in double from the float32 initializers).
  std::vector<double> bias;
  int out_features = 0;  // Conv: output channels; Gemm: outputs

  // Poly. input_range = 0 means unknown (a polynomial recognised from Mul/Add nodes or
  // fitted with --approximate, where no calibration data travelled with the model).
  std::vector<double> coefficients;  // ascending c0 .. cd
  double input_range = 0;
  double fit_range = 0;
  std::string base;  // relu, softplus, silu, gelu, square, poly, ...
};

struct Graph {
  // Metadata (veil.* metadata_props; see docs/model-format.md).
  std::string name;     // veil.model, else the file stem
  std::string dataset;  // veil.dataset
  Shape input;
  std::vector<double> mean, std;  // per input channel
  std::vector<std::string> classes;

  std::vector<Node> nodes;  // topological order
  int output = -1;          // node producing the logits (-1: the input itself)
};

// Appends a node after validating it (input indices, attributes, weight sizes, finite
// values) and filling Node::in / Node::out; returns its index. Throws
// std::invalid_argument naming the node. graph.input must be set first.
int add_node(Graph& graph, Node node);

// Re-validates every node and recomputes the shapes (after editing a graph by hand).
void infer_shapes(Graph& graph);

// Number of nodes per ONNX operator name, as in a model card's "onnx_ops".
std::map<std::string, int> op_counts(const Graph& graph);

}  // namespace veil::nn
