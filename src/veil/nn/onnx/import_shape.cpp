// The operators stock torch.onnx.export adds around the layers: shape plumbing (Shape,
// Reshape with a computed shape, Squeeze/Unsqueeze), Dropout, ReduceMean as a global
// average pool, and Pad. None of them computes anything a Conv, pool or Flatten of the
// graph does not already express; they are absorbed here so users' own exports import
// unedited.
#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/nn/onnx/constant_fold.hpp"
#include "veil/nn/onnx/importer.hpp"

namespace veil::nn::detail {

namespace {

std::string dims_str(const std::vector<std::int64_t>& dims) {
  Tensor t;
  t.dims = dims;
  return t.dims_str();
}

}  // namespace

void Importer::define_alias(const onnx::NodeProto& node, int input, int in_rank, int rank) {
  if (rank == 2 && in_rank == 4) {  // [N, C, H, W] -> [N, C*H*W]: values keep their order
    add(make(OpKind::kFlatten, node, input), 2, node);
    return;
  }
  Value v;
  v.node = input;
  v.rank = rank;
  define(node, v);
}

void Importer::import_shape(const onnx::NodeProto& node) {
  const Value& v = lookup(node, 0);
  VEIL_REQUIRE(v.kind != Value::Kind::kConstant, where(node) << ": internal: constant input not folded");
  // The batch dimension is 1: the graph describes one sample, and Reshape accepts 1 as
  // the batch of its target shape.
  Tensor dims;
  dims.dims = dims_of(v);
  if (node.op_type() == "Size") {
    Attributes(node, where(node)).allow_only({});
    std::int64_t n = 1;
    for (std::int64_t d : dims.dims) n *= d;
    Value c;
    c.kind = Value::Kind::kConstant;
    c.constant.values = {static_cast<double>(n)};
    c.constant.elem_type = onnx::TensorProto::INT64;
    return define(node, std::move(c));
  }
  Value c;
  c.kind = Value::Kind::kConstant;
  c.constant = fold_constant(node, {&dims}, where(node));  // Shape uses only the dims
  define(node, std::move(c));
}

void Importer::import_reshape(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"allowzero"});
  const auto [input, rank] = tensor_input(node, 0);
  Value probe;
  probe.node = input;
  probe.rank = rank;
  const std::vector<std::int64_t> in = dims_of(probe);
  const Shape s = shape_of(input);
  const std::vector<std::int64_t> shape = to_ints(constant_input(node, 1, "shape"), where(node) + " shape");
  // The target keeps the batch first (written 0 = copy, -1 = infer or 1); the rest is
  // either [features] (a flatten) or the tensor's own [C, H, W] (a no-op). Everything
  // else would reorder values within a sample, which no stage of the graph expresses.
  bool ok = shape.size() >= 2 && (shape[0] == 0 || shape[0] == -1 || shape[0] == 1);
  std::vector<std::int64_t> rest;
  int infer = -1;
  std::int64_t known = 1;
  for (std::size_t i = 1; ok && i < shape.size(); ++i) {
    std::int64_t d = shape[i];
    if (d == 0 && attrs.get_int("allowzero", 0) == 0) {
      ok = i < in.size();
      d = ok ? in[i] : 0;
    }
    if (d == -1) {
      ok = infer < 0 && shape[0] != -1;
      infer = static_cast<int>(rest.size());
    } else {
      ok = ok && d >= 1 && d <= s.size();  // also keeps the product from overflowing
      if (ok) known *= d;
      ok = ok && known <= s.size();
    }
    rest.push_back(d);
  }
  if (ok && infer >= 0) {
    ok = s.size() % known == 0;
    rest[infer] = s.size() / known;
    known = s.size();
  }
  ok = ok && known == s.size();
  if (ok && rest.size() == 1) return define_alias(node, input, rank, 2);
  const std::vector<std::int64_t> own = {s.c, s.h, s.w};
  if (ok && rest == own) return define_alias(node, input, rank, 4);
  ::veil::detail::throw_invalid(__FILE__, __LINE__,
                                where(node) + ": Reshape of " + dims_str(in) + " to " + dims_str(shape) +
                                    " is not supported; only [N, " + std::to_string(s.size()) +
                                    "] (e.g. shape [0, -1], a flatten) and [N, " + std::to_string(s.c) +
                                    ", " + std::to_string(s.h) + ", " + std::to_string(s.w) +
                                    "] (no change) are");
}

void Importer::import_unsqueeze(const onnx::NodeProto& node) {
  const auto [input, rank] = tensor_input(node, 0);
  Value probe;
  probe.node = input;
  probe.rank = rank;
  Tensor in;
  in.dims = dims_of(probe);
  const Tensor* axes = has_input(node, 1) ? &constant_input(node, 1, "axes") : nullptr;
  const std::vector<std::int64_t> out = fold_constant(node, {&in, axes}, where(node)).dims;
  // Only size-1 axes after the channel axis come and go: [N, F] <-> [N, F, 1, 1].
  const Shape s = shape_of(input);
  const bool flat = s.h == 1 && s.w == 1;
  const std::vector<std::int64_t> want4 = {1, s.c, s.h, s.w}, want3 = {1, s.size(), 1}, want2 = {1, s.size()};
  const int out_rank = out == want4 ? 4 : flat && out == want3 ? 3 : flat && out == want2 ? 2 : 0;
  if (out_rank) {  // the same values in the same order: no node
    Value v;
    v.node = input;
    v.rank = out_rank;
    return define(node, v);
  }
  ::veil::detail::throw_invalid(__FILE__, __LINE__,
                                where(node) + ": " + node.op_type() + " of " + dims_str(in.dims) + " to " +
                                    dims_str(out) +
                                    " is not supported; only size-1 axes after the channel axis "
                                    "([N, F] <-> [N, F, 1, 1]) may be added or removed");
}

void Importer::import_dropout(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"ratio", "seed", "is_test"});
  if (has_input(node, 2)) {
    const Tensor& training = constant_input(node, 2, "training_mode");
    VEIL_REQUIRE(training.size() == 1 && training.values[0] == 0,
                 where(node) << ": Dropout in training mode is not supported (export in eval mode)");
  }
  VEIL_REQUIRE(node.output_size() >= 1 && !node.output(0).empty(), where(node) << ": Dropout has no output");
  // In inference Dropout is the identity; the optional mask output is never read by a
  // model that imports (a reader would find it undefined and say so).
  Value v = lookup(node, 0);
  v.owner = false;
  define_output(node, node.output(0), std::move(v));
}

void Importer::import_reduce_mean(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"axes", "keepdims", "noop_with_empty_axes"});
  const auto [input, rank] = tensor_input(node, 0);
  std::vector<std::int64_t> axes = attrs.get_ints("axes", {});
  if (has_input(node, 1)) axes = to_ints(constant_input(node, 1, "axes"), where(node) + " axes");
  for (std::int64_t& a : axes)
    if (a < 0) a += rank;
  std::sort(axes.begin(), axes.end());
  VEIL_REQUIRE(rank == 4 && axes == (std::vector<std::int64_t>{2, 3}),
               where(node) << ": ReduceMean is supported only over H and W of [N, C, H, W] (axes [2, 3], "
                           << "a global average pool)");
  const bool keep = attrs.get_int("keepdims", 1) != 0;
  add(make(OpKind::kGlobalAveragePool, node, input), keep ? 4 : 2, node);
}

void Importer::import_pad(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"mode", "pads", "value"});
  const std::string mode = attrs.get_string("mode", "constant");
  VEIL_REQUIRE(mode == "constant", where(node)
                                       << ": Pad mode=" << mode
                                       << " is not supported; only constant padding has an exact "
                                       << "form (it becomes the next Conv's or AveragePool's padding)");
  // Opset < 11: pads and value are attributes; from 11 they are inputs (18 adds axes).
  std::vector<std::int64_t> pads = attrs.get_ints("pads", {});
  double value = attrs.get_float("value", 0.0);
  if (has_input(node, 1)) pads = to_ints(constant_input(node, 1, "pads"), where(node) + " pads");
  if (has_input(node, 2)) {
    const Tensor& c = constant_input(node, 2, "constant_value");
    VEIL_REQUIRE(c.size() == 1, where(node) << ": Pad constant_value must be a scalar");
    value = c.values[0];
  }
  const Value& x = lookup(node, 0);
  VEIL_REQUIRE(x.kind != Value::Kind::kConstant, where(node) << ": Pad of a constant is not supported");
  const int rank = x.rank;
  std::vector<std::int64_t> axes;
  if (has_input(node, 3)) {
    axes = to_ints(constant_input(node, 3, "axes"), where(node) + " axes");
  } else {
    for (int a = 0; a < rank; ++a) axes.push_back(a);
  }
  VEIL_REQUIRE(pads.size() == 2 * axes.size(),
               where(node) << ": Pad has " << pads.size() << " pads for " << axes.size() << " axes");
  std::vector<std::int64_t> begin(rank, 0), end(rank, 0);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    const std::int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
    VEIL_REQUIRE(a >= 0 && a < rank, where(node) << ": Pad axis " << axes[i] << " is out of range");
    begin[a] = pads[i];
    end[a] = pads[i + axes.size()];
  }
  for (int a = 0; a < rank; ++a) {
    VEIL_REQUIRE(begin[a] >= 0 && end[a] >= 0,
                 where(node) << ": negative pads (cropping) are not supported: " << dims_str(pads));
    VEIL_REQUIRE(
        a >= 2 || (begin[a] == 0 && end[a] == 0),
        where(node) << ": Pad of the " << (a == 0 ? "batch" : "channel") << " axis is not supported "
                    << "(only H and W padding folds into a Conv or AveragePool): " << dims_str(pads));
    VEIL_REQUIRE(begin[a] <= 1 << 16 && end[a] <= 1 << 16, where(node) << ": pads out of range");
  }
  Value v = x;
  v.owner = false;
  if (rank != 4 || std::all_of(pads.begin(), pads.end(), [](std::int64_t p) { return p == 0; }))
    return define(node, std::move(v));  // torch's zero-width Pad before AveragePool
  PendingPad pad{name_of(node),
                 static_cast<int>(begin[2]),
                 static_cast<int>(begin[3]),
                 static_cast<int>(end[2]),
                 static_cast<int>(end[3]),
                 value};
  if (x.pad) {  // Pad of a Pad: one padding when the values agree
    VEIL_REQUIRE(x.pad->value == value, where(node) << ": Pad after Pad '" << x.pad->node
                                                    << "' with another value is not supported");
    pad.top += x.pad->top;
    pad.left += x.pad->left;
    pad.bottom += x.pad->bottom;
    pad.right += x.pad->right;
  } else if (value != 0) {
    // pad(x, value) = pad(x - value, 0) + value: the reader pads x - value with zeros,
    // which its window supports, and adds the shift back (Conv: value * sum of weights
    // into the bias; AveragePool: + value on the output). x - value is an element-wise
    // polynomial of x, merged with any pending one (e.g. the x*x before the Pad).
    v.kind = Value::Kind::kExpr;
    v.expr = detail::expr_binary(Expr::Op::kSub, x.kind == Value::Kind::kExpr ? x.expr : detail::expr_x(),
                                 detail::expr_const(value), pad.node);
    v.nodes.push_back(pad.node);
    v.ops.insert("Pad");
  }
  v.pad = pad;
  define(node, std::move(v));
}

void Importer::apply_pad(const onnx::NodeProto& node, const PendingPad& pad, Window& window, bool own_pads) {
  VEIL_REQUIRE(pad.value == 0 || !own_pads,
               where(node) << ": " << node.op_type() << " with its own pads after Pad '" << pad.node
                           << "' of value " << pad.value << " is not supported (the two paddings differ)");
  window.pad_top += pad.top;
  window.pad_left += pad.left;
  window.pad_bottom += pad.bottom;
  window.pad_right += pad.right;
  VEIL_REQUIRE(std::max({window.pad_top, window.pad_left, window.pad_bottom, window.pad_right}) <= 1 << 16,
               where(node) << ": pads out of range");
}

}  // namespace veil::nn::detail
