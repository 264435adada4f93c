// Linear stages as explicit sparse matrices: built from graph nodes, composed, scaled and
// applied. Rows of every matrix built here keep their columns in ascending order.
#pragma once

#include "veil/nn/graph.hpp"
#include "veil/nn/network.hpp"

namespace veil::nn {

// The stage computing a Conv, Gemm, BatchNormalization, AveragePool or GlobalAveragePool
// node (node.in / node.out must be filled). Conv and AveragePool are spatial with their
// strides; BatchNormalization is spatial (stride 1) when it acts on an H x W map with
// more than one pixel; Gemm and GlobalAveragePool are dense. Pools carry their 1/k^2.
LinearStage linear_stage(const Node& node);

// second(first(x)): the sparse product second.W * first.W and bias second.W * first.b +
// second.b. Spatial with multiplied strides when both are spatial, dense otherwise.
LinearStage compose(const LinearStage& first, const LinearStage& second);

// W <- factor * W with the bias unchanged: a factor the previous stage left on its
// output (a pool's 1/k^2, a polynomial's leading coefficient) is absorbed here.
void scale_columns(LinearStage& stage, double factor);

// y = W x + b.
std::vector<double> evaluate(const LinearStage& stage, const std::vector<double>& x);

// Checks the CSR invariants (sizes, row_ptr monotone, columns in range) and the stage's
// shapes; throws std::invalid_argument naming the stage.
void validate(const LinearStage& stage);

}  // namespace veil::nn
