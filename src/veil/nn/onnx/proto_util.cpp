#include "veil/nn/onnx/proto_util.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "veil/common/error.hpp"

namespace veil::nn::detail {

namespace {

// raw_data is little-endian by the ONNX specification; copying it as host values is
// only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "raw_data decoding assumes a little-endian host");

template <typename T>
std::vector<double> from_raw(const std::string& raw, std::size_t count, const std::string& what) {
  VEIL_REQUIRE(raw.size() == count * sizeof(T),
               what << ": raw_data holds " << raw.size() << " bytes, dims need " << count * sizeof(T));
  std::vector<double> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(v);
  }
  return out;
}

template <typename Repeated>
std::vector<double> from_field(const Repeated& field, std::size_t count, const std::string& what) {
  VEIL_REQUIRE(static_cast<std::size_t>(field.size()) == count,
               what << ": holds " << field.size() << " values, dims need " << count);
  return std::vector<double>(field.begin(), field.end());
}

}  // namespace

std::string Tensor::dims_str() const {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

bool Tensor::is_integer() const {
  return elem_type == onnx::TensorProto::INT64 || elem_type == onnx::TensorProto::INT32 ||
         elem_type == onnx::TensorProto::BOOL;
}

Tensor read_tensor(const onnx::TensorProto& proto, const std::string& what) {
  VEIL_REQUIRE(
      proto.data_location() != onnx::TensorProto::EXTERNAL,
      what << ": external tensor data is not supported (save the model with the weights inside the file)");
  Tensor t;
  t.name = proto.name();
  std::size_t count = 1;
  for (std::int64_t d : proto.dims()) {
    // Bound the size before allocating: a corrupt file must not make us reserve 2^60 doubles.
    VEIL_REQUIRE(d >= 0 && d <= (std::int64_t{1} << 31) &&
                     count * static_cast<std::size_t>(d) <= (std::size_t{1} << 31),
                 what << ": bad dimensions");
    count *= static_cast<std::size_t>(d);
    t.dims.push_back(d);
  }
  const bool raw = proto.has_raw_data();
  t.elem_type = proto.data_type();
  switch (proto.data_type()) {
    case onnx::TensorProto::FLOAT:
      t.values =
          raw ? from_raw<float>(proto.raw_data(), count, what) : from_field(proto.float_data(), count, what);
      break;
    case onnx::TensorProto::DOUBLE:
      t.values = raw ? from_raw<double>(proto.raw_data(), count, what)
                     : from_field(proto.double_data(), count, what);
      break;
    case onnx::TensorProto::INT64:
      t.values = raw ? from_raw<std::int64_t>(proto.raw_data(), count, what)
                     : from_field(proto.int64_data(), count, what);
      break;
    case onnx::TensorProto::INT32:
      t.values = raw ? from_raw<std::int32_t>(proto.raw_data(), count, what)
                     : from_field(proto.int32_data(), count, what);
      break;
    default:
      VEIL_REQUIRE(false, what << ": element type " << proto.data_type()
                               << " is not supported (weights must be float32, float64, int32 or int64)");
  }
  for (double v : t.values) VEIL_REQUIRE(std::isfinite(v), what << ": contains NaN or infinity");
  return t;
}

Attributes::Attributes(const onnx::NodeProto& node, std::string where)
    : node_(node), where_(std::move(where)) {}

const onnx::AttributeProto* Attributes::find(const char* name) const {
  for (const auto& a : node_.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

void Attributes::allow_only(std::initializer_list<const char*> known) const {
  for (const auto& a : node_.attribute()) {
    int copies = 0;
    for (const auto& b : node_.attribute()) copies += a.name() == b.name();
    VEIL_REQUIRE(copies == 1, where_ << ": attribute '" << a.name() << "' is given twice");
    bool ok = false;
    for (const char* k : known) ok = ok || a.name() == k;
    VEIL_REQUIRE(ok, where_ << ": unknown attribute '" << a.name() << "' for " << node_.op_type());
  }
}

const onnx::AttributeProto& Attributes::typed(const char* name, onnx::AttributeProto::AttributeType type,
                                              const char* type_name) const {
  const onnx::AttributeProto* a = find(name);
  VEIL_REQUIRE(a != nullptr, where_ << ": missing attribute '" << name << "'");
  VEIL_REQUIRE(a->type() == type, where_ << ": attribute '" << name << "' must be of type " << type_name);
  return *a;
}

std::int64_t Attributes::get_int(const char* name, std::int64_t fallback) const {
  return has(name) ? typed(name, onnx::AttributeProto::INT, "int").i() : fallback;
}

double Attributes::get_float(const char* name, double fallback) const {
  if (!has(name)) return fallback;
  const double v = typed(name, onnx::AttributeProto::FLOAT, "float").f();
  VEIL_REQUIRE(std::isfinite(v), where_ << ": attribute '" << name << "' must be finite");
  return v;
}

std::string Attributes::get_string(const char* name, const std::string& fallback) const {
  return has(name) ? typed(name, onnx::AttributeProto::STRING, "string").s() : fallback;
}

std::vector<std::int64_t> Attributes::get_ints(const char* name, std::vector<std::int64_t> fallback) const {
  if (!has(name)) return fallback;
  const auto& ints = typed(name, onnx::AttributeProto::INTS, "ints").ints();
  return std::vector<std::int64_t>(ints.begin(), ints.end());
}

std::vector<double> Attributes::get_floats(const char* name) const {
  const auto& floats = typed(name, onnx::AttributeProto::FLOATS, "floats").floats();
  std::vector<double> out(floats.begin(), floats.end());
  for (double v : out)
    VEIL_REQUIRE(std::isfinite(v), where_ << ": attribute '" << name << "' must be finite");
  return out;
}

const onnx::TensorProto* Attributes::get_tensor(const char* name) const {
  return has(name) ? &typed(name, onnx::AttributeProto::TENSOR, "tensor").t() : nullptr;
}

}  // namespace veil::nn::detail
