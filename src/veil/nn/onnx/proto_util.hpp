// Internal to the ONNX importer: checked access to TensorProto and AttributeProto.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace veil::nn::detail {

// An initializer or Constant value, converted to double (float, double, int32, int64).
struct Tensor {
  std::string name;
  std::vector<std::int64_t> dims;  // empty for a scalar
  std::vector<double> values;
  // onnx::TensorProto::DataType it was read as (or computed in): integer shape
  // arithmetic divides with truncation, float arithmetic does not.
  int elem_type = onnx::TensorProto::FLOAT;
  bool is_integer() const;
  std::size_t size() const { return values.size(); }
  std::string dims_str() const;  // "[100, 256]"
};

// Throws std::invalid_argument naming `what` for external data, unsupported element
// types, a data size that does not match dims, or NaN/infinite values.
Tensor read_tensor(const onnx::TensorProto& proto, const std::string& what);

// Attribute access for one node; every getter checks the attribute's type.
class Attributes {
 public:
  Attributes(const onnx::NodeProto& node, std::string where);
  // Throws for any attribute not in `known` (a misspelt or newer attribute would
  // otherwise be silently ignored).
  void allow_only(std::initializer_list<const char*> known) const;
  bool has(const char* name) const { return find(name) != nullptr; }
  std::int64_t get_int(const char* name, std::int64_t fallback) const;
  double get_float(const char* name, double fallback) const;
  std::string get_string(const char* name, const std::string& fallback) const;
  std::vector<std::int64_t> get_ints(const char* name, std::vector<std::int64_t> fallback) const;
  std::vector<double> get_floats(const char* name) const;       // required
  const onnx::TensorProto* get_tensor(const char* name) const;  // nullptr when absent

 private:
  const onnx::AttributeProto* find(const char* name) const;
  const onnx::AttributeProto& typed(const char* name, onnx::AttributeProto::AttributeType type,
                                    const char* type_name) const;
  const onnx::NodeProto& node_;
  std::string where_;
};

}  // namespace veil::nn::detail
