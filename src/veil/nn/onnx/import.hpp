// ONNX import: docs/model-format.md files (and torch exports close to it) -> Graph.
//
// Everything is validated on the way in, with errors that name the node, the operator
// and what to do: a model that imports is a model the plain and encrypted evaluators can
// run. File problems (missing, unreadable, not ONNX) throw std::runtime_error naming the
// file; model problems (unsupported operator, bad attribute, missing or non-finite
// initializer, ...) throw std::invalid_argument naming the file and the node.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "veil/nn/approximate.hpp"
#include "veil/nn/graph.hpp"

namespace veil::nn {

struct ImportOptions {
  // Activations to replace by a fitted polynomial (parse_approx_spec), e.g. from
  // `--approximate relu:deg4:range8`. Without a matching spec a non-polynomial
  // activation is an error. A "poly:rangeB" spec sets input_range and fit_range of
  // polynomials recognised from elementwise Mul/Add nodes (otherwise 0 = unknown).
  std::vector<ApproxSpec> approximations;
};

// Reads and imports an ONNX file. name defaults to the file stem when the model has no
// veil.model metadata.
Graph load_onnx(const std::string& path, const ImportOptions& options = {});

// Imports a serialised ModelProto held in memory; source names it in messages and is
// the default model name.
Graph parse_onnx(std::string_view bytes, const std::string& source, const ImportOptions& options = {});

}  // namespace veil::nn
