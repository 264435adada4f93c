// Internal to the ONNX importer: evaluation of nodes whose inputs are all constants.
//
// torch.onnx.export writes `x.view(x.size(0), -1)` as Shape -> Gather -> Unsqueeze ->
// Concat -> Reshape, and `F.pad` as a ConstantOfShape/Concat/Reshape/Slice/Transpose/
// Cast chain that computes the pads. The importer knows every tensor's shape, so Shape
// yields a constant and these chains fold to constants at import time (as onnx's
// constant-folding passes do); the data path never sees them.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "veil/nn/onnx/proto_util.hpp"

namespace veil::nn::detail {

// True for the operators fold_constant evaluates.
bool is_constant_foldable(const std::string& onnx_op);

// The output of node (an is_constant_foldable operator) for constant inputs; inputs[k] is
// nullptr where the optional input k is absent. Throws std::invalid_argument starting
// with `where` for bad attributes or inputs, and for results over 2^26 values.
Tensor fold_constant(const onnx::NodeProto& node, const std::vector<const Tensor*>& inputs,
                     const std::string& where);

// The values of t as integers (shape and index tensors); throws naming `what` when one
// is not integral.
std::vector<std::int64_t> to_ints(const Tensor& t, const std::string& what);

// An int64 tensor of rank 1 holding values.
Tensor int_vector(const std::vector<std::int64_t>& values);

}  // namespace veil::nn::detail
