// Double-precision reference evaluation of the imported graph and of the lowered
// network. Every encrypted evaluator is checked against these (ncnn's habit of testing
// each optimised layer against a naive one), and the per-stage outputs and polynomial
// input ranges feed the per-layer precision and range reports.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/nn/graph.hpp"
#include "veil/nn/linear.hpp"  // evaluate(const LinearStage&, x)
#include "veil/nn/network.hpp"

namespace veil::nn {

// Graph evaluation, node by node with direct loops (independent of the sparse matrices
// of the lowered form, so the two check each other). input: one normalised image, C x H
// x W channel-major. Returns the output node's values. node_outputs, when given,
// receives every node's output.
std::vector<double> evaluate(const Graph& graph, const std::vector<double>& input,
                             std::vector<std::vector<double>>* node_outputs = nullptr);

struct PlainTrace {
  std::vector<std::vector<double>> stage_outputs;  // one per stage
  // Per stage: max |x| over the values entering it. For a polynomial stage, compare with
  // its input_range / fit_range: beyond fit_range the polynomial no longer tracks the
  // activation it approximates, and values grow quickly.
  std::vector<double> max_abs_input;
};

// y = p(x) element-wise by Horner's rule.
std::vector<double> evaluate(const PolyStage& stage, const std::vector<double>& x);

// Lowered network evaluation in stage order along its edges: sparse mat-vec plus bias,
// polynomials by Horner, Add stages element-wise. Returns the last stage's output.
std::vector<double> evaluate(const Network& network, const std::vector<double>& input,
                             PlainTrace* trace = nullptr);

// (pixel / 255 - mean[c]) / std[c] for channel-major pixels (IDX rows, CIFAR records).
std::vector<double> normalize(const Network& network, const std::vector<std::uint8_t>& pixels_chw);
std::vector<double> normalize(const Graph& graph, const std::vector<std::uint8_t>& pixels_chw);

}  // namespace veil::nn
