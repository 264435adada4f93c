// Internal to the ONNX importer: the importer's state, shared by import.cpp (model
// checks, value bookkeeping, output) and import_ops.cpp (one method per operator).
#pragma once

#include <onnx/onnx_pb.h>

#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "veil/nn/onnx/elementwise.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/onnx/proto_util.hpp"

namespace veil::nn::detail {

// One named value of the ONNX graph during import.
struct Value {
  enum class Kind { kTensor, kConstant, kExpr } kind = Kind::kTensor;
  int node = -1;                   // kTensor: producer node (-1 = graph input); kExpr: the tensor x
  int rank = 4;                    // kTensor, kExpr: 4 for [N, C, H, W], 2 for [N, features]
  Tensor constant;                 // kConstant
  ExprPtr expr;                    // kExpr: the value as a function of x
  std::vector<std::string> nodes;  // kExpr: the ONNX nodes that computed it
  std::set<std::string> ops;       // kExpr: their op types
};

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const ImportOptions& options) : model_(model), options_(options) {}
  Graph run(const std::string& default_name);

 private:
  // Model-level checks (import.cpp).
  void check_opsets();
  void read_metadata(const std::string& default_name);
  void read_input();
  void finish();
  void prune();

  // Value access (import.cpp).
  std::string where(const onnx::NodeProto& node) const;
  std::string name_of(const onnx::NodeProto& node) const;
  Value& lookup(const onnx::NodeProto& node, int k);
  const Tensor& constant_input(const onnx::NodeProto& node, int k, const char* role);
  bool has_input(const onnx::NodeProto& node, int k) const;
  // The data input k as {graph node, rank} (materialising a pending element-wise function).
  std::pair<int, int> tensor_input(const onnx::NodeProto& node, int k);
  void define(const onnx::NodeProto& node, Value v);
  int add(Node n, int rank, const onnx::NodeProto& onnx_node);
  Node make(OpKind op, const onnx::NodeProto& node, int input) const;
  void import_node(const onnx::NodeProto& node, int index);
  [[noreturn]] void refuse(const onnx::NodeProto& node) const;

  // Operators (import_ops.cpp).
  void import_conv(const onnx::NodeProto& node);
  Window window(const onnx::NodeProto& node, const Attributes& attrs, int kernel_h, int kernel_w) const;
  void import_dense(const onnx::NodeProto& node);
  void import_batch_norm(const onnx::NodeProto& node);
  void import_average_pool(const onnx::NodeProto& node);
  void import_global_pool(const onnx::NodeProto& node);
  void import_flatten(const onnx::NodeProto& node);
  void import_identity(const onnx::NodeProto& node);
  void import_constant(const onnx::NodeProto& node);
  void import_poly(const onnx::NodeProto& node);
  void import_elementwise(const onnx::NodeProto& node);
  // Turns a pending element-wise function into a Poly node, in place, so later uses of
  // the value share the node.
  void materialise(Value& v);

  const onnx::ModelProto& model_;
  const ImportOptions& options_;
  Graph graph_;
  std::optional<Shape> meta_shape_;
  std::unordered_map<std::string, Value> values_;
  int current_index_ = 0;
};

}  // namespace veil::nn::detail
