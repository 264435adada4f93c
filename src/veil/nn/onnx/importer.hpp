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

// A constant-mode Pad not applied yet: the Conv or AveragePool reading the value takes
// it into its own pads (torch writes a Pad, often of width 0, before AveragePool).
struct PendingPad {
  std::string node;  // the Pad node, for messages
  int top = 0, left = 0, bottom = 0, right = 0;
  double value = 0;  // non-zero: the padded value is x - value (see import_pad)
};

// One named value of the ONNX graph during import.
struct Value {
  enum class Kind { kTensor, kConstant, kExpr } kind = Kind::kTensor;
  int node = -1;                   // kTensor: producer node (-1 = graph input); kExpr: the tensor x
  int rank = 4;                    // kTensor, kExpr: 4 for [N, C, H, W], 2 for [N, features]
                                   // (3: [N, features, 1] between Unsqueeze/Squeeze)
  Tensor constant;                 // kConstant
  ExprPtr expr;                    // kExpr: the value as a function of x
  std::vector<std::string> nodes;  // kExpr: the ONNX nodes that computed it
  std::set<std::string> ops;       // kExpr: their op types
  std::optional<PendingPad> pad;   // kTensor, kExpr: a Pad for the next Conv/AveragePool
  // kTensor: the value is the output its node was created for (not an alias made by
  // Identity, Dropout or a no-op Reshape), so the readers of this name are all the
  // readers of the node. An affine op may then be folded into the node in place.
  bool owner = false;
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
  // A pending Pad is handed to `pad` when given, and refused otherwise.
  std::pair<int, int> tensor_input(const onnx::NodeProto& node, int k,
                                   std::optional<PendingPad>* pad = nullptr);
  // Per-sample shape of graph node `node` (-1: the input).
  Shape shape_of(int node) const;
  // The ONNX dims of a data value with the batch as 1 (veil evaluates one sample at a time).
  std::vector<std::int64_t> dims_of(const Value& v) const;
  void define(const onnx::NodeProto& node, Value v);
  void define_output(const onnx::NodeProto& node, const std::string& name, Value v);
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
  void import_folded(const onnx::NodeProto& node);
  bool all_constant(const onnx::NodeProto& node);

  // Shape plumbing and the other operators of stock torch exports (import_shape.cpp).
  void import_shape(const onnx::NodeProto& node);
  void import_reshape(const onnx::NodeProto& node);
  void import_unsqueeze(const onnx::NodeProto& node);
  void import_dropout(const onnx::NodeProto& node);
  void import_reduce_mean(const onnx::NodeProto& node);
  void import_pad(const onnx::NodeProto& node);
  // Applies a pending Pad to the window of the Conv or AveragePool `node` reads.
  void apply_pad(const onnx::NodeProto& node, const PendingPad& pad, Window& window, bool own_pads);
  // Output of a shape change that keeps every value in place: the same node seen with
  // another rank, or a Flatten node from rank 4 to 2 (as a model card counts them).
  void define_alias(const onnx::NodeProto& node, int input, int in_rank, int rank);

  // Affine operations by constants (import_affine.cpp): y = a * x + b with a, b scalars or
  // per channel, folded into the Conv/Gemm/BatchNormalization producing x when it has no
  // other reader, else a BatchNormalization node (per channel) or a polynomial (scalars).
  bool import_affine(const onnx::NodeProto& node);
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
  std::unordered_map<std::string, int> uses_;  // readers of each value name (+1 per graph output)
  int current_index_ = 0;
};

}  // namespace veil::nn::detail
