#include "veil/nn/onnx/constant_fold.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "veil/common/error.hpp"

namespace veil::nn::detail {

namespace {

// Enough for an exporter's Transpose of an 8192 x 8192 weight (512 MiB of doubles); a
// corrupt or hostile file must not make us allocate a ConstantOfShape of 2^40 values.
constexpr std::int64_t kMaxValues = std::int64_t{1} << 26;

using Dims = std::vector<std::int64_t>;

std::int64_t count_of(const Dims& dims, const std::string& where) {
  std::int64_t n = 1;
  for (std::int64_t d : dims) {
    VEIL_REQUIRE(d >= 0 && (d == 0 || n <= kMaxValues / std::max<std::int64_t>(d, 1)),
                 where << ": constant of shape " << Tensor{"", dims, {}}.dims_str() << " is too large");
    n *= d;
  }
  VEIL_REQUIRE(n <= kMaxValues, where << ": constant of " << n << " values is too large");
  return n;
}

// Row-major strides of dims.
Dims strides_of(const Dims& dims) {
  Dims s(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

std::int64_t normalise_axis(std::int64_t axis, std::int64_t rank, const std::string& where) {
  VEIL_REQUIRE(axis >= -rank && axis < rank,
               where << ": axis " << axis << " is out of range for rank " << rank);
  return axis < 0 ? axis + rank : axis;
}

Tensor with(Dims dims, std::vector<double> values, int elem_type) {
  Tensor t;
  t.dims = std::move(dims);
  t.values = std::move(values);
  t.elem_type = elem_type;
  return t;
}

const Tensor& need(const std::vector<const Tensor*>& inputs, std::size_t k, const std::string& where,
                   const std::string& op) {
  VEIL_REQUIRE(k < inputs.size() && inputs[k] != nullptr, where << ": " << op << " is missing input " << k);
  return *inputs[k];
}

// Axes from the attribute (older opsets) or from input k (newer ones); empty if neither.
Dims axes_of(const Attributes& attrs, const std::vector<const Tensor*>& inputs, std::size_t k,
             const std::string& where) {
  if (attrs.has("axes")) return attrs.get_ints("axes", {});
  if (k < inputs.size() && inputs[k]) return to_ints(*inputs[k], where + " axes");
  return {};
}

Tensor gather(const Tensor& data, const Tensor& indices, std::int64_t axis, const std::string& where) {
  const auto r = static_cast<std::int64_t>(data.dims.size());
  VEIL_REQUIRE(r >= 1, where << ": Gather of a scalar");
  axis = normalise_axis(axis, r, where);
  const std::int64_t n = data.dims[axis];
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t i = 0; i < axis; ++i) outer *= data.dims[i];
  for (std::int64_t i = axis + 1; i < r; ++i) inner *= data.dims[i];
  Dims dims(data.dims.begin(), data.dims.begin() + axis);
  dims.insert(dims.end(), indices.dims.begin(), indices.dims.end());
  dims.insert(dims.end(), data.dims.begin() + axis + 1, data.dims.end());
  count_of(dims, where);
  std::vector<double> out;
  const auto idx = to_ints(indices, where + " indices");
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i : idx) {
      VEIL_REQUIRE(i >= -n && i < n, where << ": Gather index " << i << " is out of range for " << n);
      const std::int64_t at = i < 0 ? i + n : i;
      for (std::int64_t in = 0; in < inner; ++in) out.push_back(data.values[(o * n + at) * inner + in]);
    }
  return with(dims, out, data.elem_type);
}

Tensor concat(const std::vector<const Tensor*>& inputs, std::int64_t axis, const std::string& where) {
  VEIL_REQUIRE(!inputs.empty(), where << ": Concat has no inputs");
  for (const Tensor* t : inputs) VEIL_REQUIRE(t != nullptr, where << ": Concat with an empty input name");
  const Dims& first = inputs[0]->dims;
  const auto r = static_cast<std::int64_t>(first.size());
  VEIL_REQUIRE(r >= 1, where << ": Concat of scalars");
  axis = normalise_axis(axis, r, where);
  Dims dims = first;
  dims[axis] = 0;
  for (const Tensor* t : inputs) {
    bool same = t->dims.size() == first.size();
    for (std::int64_t i = 0; same && i < r; ++i) same = i == axis || t->dims[i] == first[i];
    VEIL_REQUIRE(same, where << ": Concat of " << inputs[0]->dims_str() << " and " << t->dims_str());
    dims[axis] += t->dims[axis];
  }
  count_of(dims, where);
  std::int64_t outer = 1;
  for (std::int64_t i = 0; i < axis; ++i) outer *= first[i];
  std::vector<double> out;
  for (std::int64_t o = 0; o < outer; ++o)
    for (const Tensor* t : inputs) {
      const auto block = static_cast<std::int64_t>(t->size()) / std::max<std::int64_t>(outer, 1);
      out.insert(out.end(), t->values.begin() + o * block, t->values.begin() + (o + 1) * block);
    }
  return with(dims, out, inputs[0]->elem_type);
}

Tensor reshape(const Tensor& data, const Dims& shape, bool allow_zero, const std::string& where) {
  Dims dims = shape;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0 && !allow_zero) {
      VEIL_REQUIRE(i < data.dims.size(), where << ": Reshape copies dimension " << i << " the input lacks");
      dims[i] = data.dims[i];
    }
    if (dims[i] == -1) {
      VEIL_REQUIRE(infer < 0, where << ": Reshape shape has two -1 entries");
      infer = static_cast<int>(i);
      continue;
    }
    VEIL_REQUIRE(dims[i] >= 0, where << ": Reshape dimension " << dims[i] << " is negative");
    VEIL_REQUIRE(dims[i] <= kMaxValues && known <= kMaxValues,
                 where << ": Reshape to " << Tensor{"", shape, {}}.dims_str() << " is too large");
    known *= dims[i];
  }
  const auto n = static_cast<std::int64_t>(data.size());
  if (infer >= 0) {
    VEIL_REQUIRE(known > 0 && n % known == 0, where << ": Reshape cannot infer -1 for " << n << " values");
    dims[infer] = n / known;
    known = n;
  }
  VEIL_REQUIRE(known == n, where << ": Reshape of " << n << " values to " << known);
  return with(dims, data.values, data.elem_type);
}

Tensor slice(const Tensor& data, const Dims& starts, const Dims& ends, Dims axes, Dims steps,
             const std::string& where) {
  const auto r = static_cast<std::int64_t>(data.dims.size());
  VEIL_REQUIRE(starts.size() == ends.size(), where << ": Slice starts and ends differ in length");
  if (axes.empty())
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  VEIL_REQUIRE(axes.size() == starts.size() && steps.size() == starts.size(),
               where << ": Slice axes/steps do not match starts");
  // Per axis, the input indices kept, in order.
  std::vector<Dims> keep(r);
  for (std::int64_t a = 0; a < r; ++a) {
    keep[a].resize(data.dims[a]);
    std::iota(keep[a].begin(), keep[a].end(), 0);
  }
  for (std::size_t k = 0; k < axes.size(); ++k) {
    const std::int64_t a = normalise_axis(axes[k], r, where), dim = data.dims[a];
    VEIL_REQUIRE(steps[k] != 0, where << ": Slice step 0");
    // Any step beyond the dimension takes one element; clamping keeps i += step in range.
    const std::int64_t step = std::clamp(steps[k], -dim - 1, dim + 1);
    auto clamp = [&](std::int64_t v, std::int64_t lo, std::int64_t hi) {
      if (v < 0) v = v < -dim ? lo : v + dim;  // also guards v + dim against overflow
      return std::clamp(v, lo, hi);
    };
    const std::int64_t start = step > 0 ? clamp(starts[k], 0, dim) : clamp(starts[k], -1, dim - 1);
    const std::int64_t end = step > 0 ? clamp(ends[k], 0, dim) : clamp(ends[k], -1, dim - 1);
    keep[a].clear();
    for (std::int64_t i = start; step > 0 ? i < end : i > end; i += step) keep[a].push_back(i);
  }
  Dims dims;
  for (const Dims& k : keep) dims.push_back(static_cast<std::int64_t>(k.size()));
  const std::int64_t n = count_of(dims, where);
  const Dims in_strides = strides_of(data.dims), out_strides = strides_of(dims);
  std::vector<double> out(n);
  for (std::int64_t o = 0; o < n; ++o) {
    std::int64_t at = 0;
    for (std::int64_t a = 0; a < r; ++a) at += keep[a][(o / out_strides[a]) % dims[a]] * in_strides[a];
    out[o] = data.values[at];
  }
  return with(dims, out, data.elem_type);
}

Tensor transpose(const Tensor& data, Dims perm, const std::string& where) {
  const auto r = static_cast<std::int64_t>(data.dims.size());
  if (perm.empty())
    for (std::int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  Dims sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  Dims identity(r);
  std::iota(identity.begin(), identity.end(), 0);
  VEIL_REQUIRE(sorted == identity, where << ": Transpose perm is not a permutation of 0.." << r - 1);
  Dims dims(r);
  for (std::int64_t a = 0; a < r; ++a) dims[a] = data.dims[perm[a]];
  const Dims in_strides = strides_of(data.dims), out_strides = strides_of(dims);
  std::vector<double> out(data.size());
  for (std::int64_t o = 0; o < static_cast<std::int64_t>(out.size()); ++o) {
    std::int64_t at = 0;
    for (std::int64_t a = 0; a < r; ++a) at += ((o / out_strides[a]) % dims[a]) * in_strides[perm[a]];
    out[o] = data.values[at];
  }
  return with(dims, out, data.elem_type);
}

bool integer_type(std::int64_t t) {
  using T = onnx::TensorProto;
  return t == T::INT8 || t == T::INT16 || t == T::INT32 || t == T::INT64 || t == T::UINT8 || t == T::UINT16 ||
         t == T::UINT32 || t == T::UINT64;
}

Tensor cast(const Tensor& data, std::int64_t to, const std::string& where) {
  using T = onnx::TensorProto;
  VEIL_REQUIRE(integer_type(to) || to == T::BOOL || to == T::FLOAT || to == T::DOUBLE,
               where << ": Cast to element type " << to << " is not supported");
  Tensor out = data;
  out.elem_type = static_cast<int>(to);
  for (double& v : out.values) {
    if (to == T::BOOL) v = v != 0 ? 1 : 0;
    if (integer_type(to)) v = std::trunc(v);
    if (to == T::FLOAT) v = static_cast<float>(v);
  }
  return out;
}

// Numpy-style broadcasting of a binary operation.
template <typename F>
Tensor broadcast(const Tensor& a, const Tensor& b, F f, const std::string& where) {
  const std::size_t r = std::max(a.dims.size(), b.dims.size());
  auto padded = [&](const Dims& d) {
    Dims p(r - d.size(), 1);
    p.insert(p.end(), d.begin(), d.end());
    return p;
  };
  const Dims da = padded(a.dims), db = padded(b.dims);
  Dims dims(r);
  for (std::size_t i = 0; i < r; ++i) {
    VEIL_REQUIRE(da[i] == db[i] || da[i] == 1 || db[i] == 1,
                 where << ": shapes " << a.dims_str() << " and " << b.dims_str() << " do not broadcast");
    dims[i] = da[i] == 1 ? db[i] : da[i];
  }
  const std::int64_t n = count_of(dims, where);
  const Dims sa = strides_of(da), sb = strides_of(db), so = strides_of(dims);
  std::vector<double> out(n);
  for (std::int64_t o = 0; o < n; ++o) {
    std::int64_t ia = 0, ib = 0;
    for (std::size_t i = 0; i < r; ++i) {
      const std::int64_t k = (o / so[i]) % dims[i];
      ia += (da[i] == 1 ? 0 : k) * sa[i];
      ib += (db[i] == 1 ? 0 : k) * sb[i];
    }
    out[o] = f(a.values[ia], b.values[ib]);
  }
  return with(dims, out, a.elem_type);
}

Tensor binary(const std::string& op, const Tensor& a, const Tensor& b, const std::string& where) {
  const bool integer = a.is_integer() && b.is_integer();
  auto check = [&](double v) {
    VEIL_REQUIRE(std::isfinite(v), where << ": " << op << " of constants is not finite");
    return v;
  };
  if (op == "Add")
    return broadcast(
        a, b, [&](double x, double y) { return check(x + y); }, where);
  if (op == "Sub")
    return broadcast(
        a, b, [&](double x, double y) { return check(x - y); }, where);
  if (op == "Mul")
    return broadcast(
        a, b, [&](double x, double y) { return check(x * y); }, where);
  if (op == "Pow")
    return broadcast(
        a, b, [&](double x, double y) { return check(std::pow(x, y)); }, where);
  return broadcast(
      a, b,
      [&](double x, double y) {
        VEIL_REQUIRE(!integer || y != 0, where << ": integer division by zero");
        return check(integer ? std::trunc(x / y) : x / y);
      },
      where);
}

}  // namespace

std::vector<std::int64_t> to_ints(const Tensor& t, const std::string& what) {
  std::vector<std::int64_t> out;
  for (double v : t.values) {
    VEIL_REQUIRE(v == std::floor(v), what << ": value " << v << " is not an integer");
    // -2^63 (torch's "from the end" Slice bound) is exact in a double; anything beyond
    // the int64 range is clamped rather than converted with undefined behaviour.
    constexpr double kMax = 9.2e18;
    out.push_back(v >= kMax    ? std::numeric_limits<std::int64_t>::max()
                  : v <= -kMax ? std::numeric_limits<std::int64_t>::min()
                               : static_cast<std::int64_t>(v));
  }
  return out;
}

Tensor int_vector(const std::vector<std::int64_t>& values) {
  return with({static_cast<std::int64_t>(values.size())}, std::vector<double>(values.begin(), values.end()),
              onnx::TensorProto::INT64);
}

bool is_constant_foldable(const std::string& op) {
  static const char* const kOps[] = {
      "Identity", "Shape",   "Size",  "Gather",    "Unsqueeze", "Squeeze",         "Concat",
      "Reshape",  "Flatten", "Slice", "Transpose", "Cast",      "ConstantOfShape", "Add",
      "Sub",      "Mul",     "Div",   "Pow",       "Neg"};
  return std::find(std::begin(kOps), std::end(kOps), op) != std::end(kOps);
}

Tensor fold_constant(const onnx::NodeProto& node, const std::vector<const Tensor*>& inputs,
                     const std::string& where) {
  const std::string& op = node.op_type();
  Attributes attrs(node, where);
  auto in = [&](std::size_t k) -> const Tensor& { return need(inputs, k, where, op); };
  if (op == "Identity") {
    attrs.allow_only({});
    return in(0);
  }
  if (op == "Shape" || op == "Size") {
    if (op == "Size") attrs.allow_only({});
    if (op == "Size") return with({}, {static_cast<double>(in(0).size())}, onnx::TensorProto::INT64);
    attrs.allow_only({"start", "end"});
    const auto r = static_cast<std::int64_t>(in(0).dims.size());
    auto bound = [&](std::int64_t v) { return std::clamp(v < 0 ? v + r : v, std::int64_t{0}, r); };
    const std::int64_t start = bound(attrs.get_int("start", 0)), end = bound(attrs.get_int("end", r));
    Dims dims;
    for (std::int64_t i = start; i < end; ++i) dims.push_back(in(0).dims[i]);
    return int_vector(dims);
  }
  if (op == "Gather") {
    attrs.allow_only({"axis"});
    return gather(in(0), in(1), attrs.get_int("axis", 0), where);
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    attrs.allow_only({"axes"});
    const Tensor& data = in(0);
    Dims axes = axes_of(attrs, inputs, 1, where);
    Dims dims = data.dims;
    if (op == "Unsqueeze") {
      VEIL_REQUIRE(!axes.empty(), where << ": Unsqueeze needs axes");
      const auto r = static_cast<std::int64_t>(dims.size() + axes.size());
      VEIL_REQUIRE(r <= 64, where << ": Unsqueeze to rank " << r << " is not supported");
      for (std::int64_t& a : axes) a = normalise_axis(a, r, where);
      std::sort(axes.begin(), axes.end());
      for (std::int64_t a : axes) dims.insert(dims.begin() + a, 1);
    } else {
      const auto r = static_cast<std::int64_t>(dims.size());
      for (std::int64_t& a : axes) a = normalise_axis(a, r, where);
      Dims kept;
      for (std::int64_t i = 0; i < r; ++i) {
        const bool named = std::find(axes.begin(), axes.end(), i) != axes.end();
        VEIL_REQUIRE(!named || dims[i] == 1, where << ": Squeeze of axis " << i << " of size " << dims[i]);
        if (!(named || (axes.empty() && dims[i] == 1))) kept.push_back(dims[i]);
      }
      dims = kept;
    }
    return with(dims, data.values, data.elem_type);
  }
  if (op == "Concat") {
    attrs.allow_only({"axis"});
    VEIL_REQUIRE(attrs.has("axis"), where << ": Concat needs axis");
    return concat(inputs, attrs.get_int("axis", 0), where);
  }
  if (op == "Reshape") {
    attrs.allow_only({"allowzero"});
    return reshape(in(0), to_ints(in(1), where + " shape"), attrs.get_int("allowzero", 0) != 0, where);
  }
  if (op == "Flatten") {
    attrs.allow_only({"axis"});
    const auto r = static_cast<std::int64_t>(in(0).dims.size());
    const std::int64_t axis = attrs.get_int("axis", 1);
    VEIL_REQUIRE(axis >= -r && axis <= r, where << ": Flatten axis " << axis << " is out of range");
    const std::int64_t split = axis < 0 ? axis + r : axis;
    std::int64_t outer = 1;
    for (std::int64_t i = 0; i < split; ++i) outer *= in(0).dims[i];
    return with({outer, static_cast<std::int64_t>(in(0).size()) / std::max<std::int64_t>(outer, 1)},
                in(0).values, in(0).elem_type);
  }
  if (op == "Slice") {
    attrs.allow_only({"starts", "ends", "axes"});
    if (attrs.has("starts"))  // opset < 10
      return slice(in(0), attrs.get_ints("starts", {}), attrs.get_ints("ends", {}),
                   attrs.get_ints("axes", {}), {}, where);
    auto optional = [&](std::size_t k, const char* role) {
      return k < inputs.size() && inputs[k] ? to_ints(*inputs[k], where + " " + role) : Dims{};
    };
    return slice(in(0), to_ints(in(1), where + " starts"), to_ints(in(2), where + " ends"),
                 optional(3, "axes"), optional(4, "steps"), where);
  }
  if (op == "Transpose") {
    attrs.allow_only({"perm"});
    return transpose(in(0), attrs.get_ints("perm", {}), where);
  }
  if (op == "Cast") {
    attrs.allow_only({"to", "saturate"});
    VEIL_REQUIRE(attrs.has("to"), where << ": Cast needs 'to'");
    return cast(in(0), attrs.get_int("to", 0), where);
  }
  if (op == "ConstantOfShape") {
    attrs.allow_only({"value"});
    const Dims dims = to_ints(in(0), where + " shape");
    const std::int64_t n = count_of(dims, where);
    double value = 0;
    int type = onnx::TensorProto::FLOAT;
    if (const onnx::TensorProto* t = attrs.get_tensor("value")) {
      const Tensor v = read_tensor(*t, where + " value");
      VEIL_REQUIRE(v.size() == 1, where << ": ConstantOfShape value must hold one value");
      value = v.values[0];
      type = v.elem_type;
    }
    return with(dims, std::vector<double>(n, value), type);
  }
  if (op == "Neg") {
    attrs.allow_only({});
    Tensor out = in(0);
    for (double& v : out.values) v = -v;
    return out;
  }
  attrs.allow_only({});
  return binary(op, in(0), in(1), where);
}

}  // namespace veil::nn::detail
