// One method per supported ONNX operator (see docs/model-format.md for the contract).
#include <cmath>

#include "veil/common/error.hpp"
#include "veil/nn/onnx/constant_fold.hpp"
#include "veil/nn/onnx/importer.hpp"

namespace veil::nn::detail {

void Importer::import_conv(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  const std::string auto_pad = attrs.get_string("auto_pad", "NOTSET");
  VEIL_REQUIRE(auto_pad == "NOTSET", where(node) << ": Conv auto_pad=" << auto_pad
                                                 << " is not supported; export with explicit pads");
  std::optional<PendingPad> pad;
  const auto [input, rank] = tensor_input(node, 0, &pad);
  VEIL_REQUIRE(rank == 4, where(node) << ": Conv input must be [N, C, H, W] (it was flattened)");
  const Tensor& w = constant_input(node, 1, "weight");
  VEIL_REQUIRE(w.dims.size() == 4, where(node)
                                       << ": Conv weight " << w.dims_str() << " must be 4-D (only 2-D "
                                       << "convolutions are supported)");
  Node n = make(OpKind::kConv, node, input);
  n.out_features = static_cast<int>(w.dims[0]);
  n.group = static_cast<int>(attrs.get_int("group", 1));
  const Shape in = input < 0 ? graph_.input : graph_.nodes[input].out;
  VEIL_REQUIRE(w.dims[1] * n.group == in.c, where(node) << ": Conv weight " << w.dims_str() << " with group "
                                                        << n.group << " does not match " << in.c
                                                        << " input channels");
  n.window = window(node, attrs, static_cast<int>(w.dims[2]), static_cast<int>(w.dims[3]));
  n.weights = w.values;
  n.bias.assign(n.out_features, 0.0);
  if (has_input(node, 2)) {
    const Tensor& b = constant_input(node, 2, "bias");
    VEIL_REQUIRE(
        b.size() == static_cast<std::size_t>(n.out_features),
        where(node) << ": Conv bias " << b.dims_str() << " does not match " << n.out_features << " outputs");
    n.bias = b.values;
  }
  if (pad) {
    const Window& own = n.window;
    apply_pad(node, *pad, n.window, own.pad_top || own.pad_left || own.pad_bottom || own.pad_right);
    // The Pad's input arrives shifted by -value (import_pad), so every tap reads
    // x - value, padding included; adding value * (sum of the output channel's weights)
    // restores conv(pad(x, value)) exactly.
    const std::size_t per_out = n.weights.size() / n.out_features;
    for (int o = 0; o < n.out_features; ++o)
      for (std::size_t k = 0; k < per_out; ++k) n.bias[o] += pad->value * n.weights[o * per_out + k];
  }
  add(std::move(n), 4, node);
}

Window Importer::window(const onnx::NodeProto& node, const Attributes& attrs, int kernel_h,
                        int kernel_w) const {
  Window win;
  const auto kernel = attrs.get_ints("kernel_shape", {kernel_h, kernel_w});
  VEIL_REQUIRE(kernel.size() == 2 && kernel[0] == kernel_h && kernel[1] == kernel_w,
               where(node) << ": kernel_shape must be 2-D and match the weight");
  const auto strides = attrs.get_ints("strides", {1, 1});
  const auto pads = attrs.get_ints("pads", {0, 0, 0, 0});
  const auto dilations = attrs.get_ints("dilations", {1, 1});
  VEIL_REQUIRE(strides.size() == 2, where(node) << ": strides must have 2 values");
  VEIL_REQUIRE(pads.size() == 4, where(node) << ": pads must have 4 values [top, left, bottom, right]");
  VEIL_REQUIRE(dilations.size() == 2, where(node) << ": dilations must have 2 values");
  auto small = [&](std::int64_t v, const char* what) {
    VEIL_REQUIRE(v >= 0 && v <= 1 << 16, where(node) << ": " << what << " value " << v << " is out of range");
    return static_cast<int>(v);
  };
  win.kernel_h = kernel_h;
  win.kernel_w = kernel_w;
  win.stride_h = small(strides[0], "strides");
  win.stride_w = small(strides[1], "strides");
  win.pad_top = small(pads[0], "pads");
  win.pad_left = small(pads[1], "pads");
  win.pad_bottom = small(pads[2], "pads");
  win.pad_right = small(pads[3], "pads");
  win.dilation_h = small(dilations[0], "dilations");
  win.dilation_w = small(dilations[1], "dilations");
  return win;
}

void Importer::import_dense(const onnx::NodeProto& node) {
  const bool gemm = node.op_type() == "Gemm";
  Attributes attrs(node, where(node));
  if (gemm)
    attrs.allow_only({"alpha", "beta", "transA", "transB"});
  else
    attrs.allow_only({});
  const auto [input, rank] = tensor_input(node, 0);
  VEIL_REQUIRE(rank == 2, where(node)
                              << ": " << node.op_type() << " input must be [N, features] (insert a Flatten)");
  const Tensor& b = constant_input(node, 1, "weight");
  VEIL_REQUIRE(b.dims.size() == 2, where(node) << ": weight " << b.dims_str() << " must be 2-D");
  VEIL_REQUIRE(attrs.get_int("transA", 0) == 0, where(node) << ": Gemm transA=1 is not supported");
  const bool trans_b = attrs.get_int("transB", 0) != 0;
  const double alpha = attrs.get_float("alpha", 1.0), beta = attrs.get_float("beta", 1.0);
  const std::int64_t in_features = trans_b ? b.dims[1] : b.dims[0];
  const std::int64_t out_features = trans_b ? b.dims[0] : b.dims[1];
  const int in_size = (input < 0 ? graph_.input : graph_.nodes[input].out).size();
  VEIL_REQUIRE(in_features == in_size, where(node)
                                           << ": weight " << b.dims_str() << " expects " << in_features
                                           << " input features, the input has " << in_size);
  Node n = make(OpKind::kGemm, node, input);
  n.out_features = static_cast<int>(out_features);
  n.weights.resize(b.size());
  for (std::int64_t o = 0; o < out_features; ++o)
    for (std::int64_t i = 0; i < in_features; ++i)
      n.weights[o * in_features + i] =
          alpha * (trans_b ? b.values[o * in_features + i] : b.values[i * out_features + o]);
  n.bias.assign(n.out_features, 0.0);
  if (gemm && has_input(node, 2)) {
    const Tensor& c = constant_input(node, 2, "bias");
    VEIL_REQUIRE(
        c.size() == static_cast<std::size_t>(out_features) || c.size() == 1,
        where(node) << ": bias " << c.dims_str() << " does not broadcast to " << out_features << " outputs");
    for (int o = 0; o < n.out_features; ++o) n.bias[o] = beta * c.values[c.size() == 1 ? 0 : o];
  }
  add(std::move(n), 2, node);
}

void Importer::import_batch_norm(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"epsilon", "momentum", "training_mode"});
  VEIL_REQUIRE(attrs.get_int("training_mode", 0) == 0, where(node)
                                                           << ": BatchNormalization training_mode=1 is "
                                                           << "not supported (export in eval mode)");
  const double eps = attrs.get_float("epsilon", 1e-5);
  VEIL_REQUIRE(eps >= 0, where(node) << ": epsilon must be non-negative");
  const auto [input, rank] = tensor_input(node, 0);
  const int channels = (input < 0 ? graph_.input : graph_.nodes[input].out).c;
  const char* roles[4] = {"scale", "bias", "mean", "var"};
  const Tensor* p[4];
  for (int k = 0; k < 4; ++k) {
    p[k] = &constant_input(node, k + 1, roles[k]);
    VEIL_REQUIRE(p[k]->size() == static_cast<std::size_t>(channels),
                 where(node) << ": BatchNormalization " << roles[k] << " " << p[k]->dims_str()
                             << " does not match " << channels << " channels");
  }
  Node n = make(OpKind::kBatchNorm, node, input);
  for (int c = 0; c < channels; ++c) {
    const double var = p[3]->values[c] + eps;
    VEIL_REQUIRE(var > 0, where(node) << ": variance + epsilon must be positive (channel " << c << ")");
    const double scale = p[0]->values[c] / std::sqrt(var);
    n.weights.push_back(scale);
    n.bias.push_back(p[1]->values[c] - p[2]->values[c] * scale);
  }
  add(std::move(n), rank, node);
}

void Importer::import_average_pool(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only(
      {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"});
  const std::string auto_pad = attrs.get_string("auto_pad", "NOTSET");
  VEIL_REQUIRE(auto_pad == "NOTSET", where(node) << ": AveragePool auto_pad=" << auto_pad
                                                 << " is not supported; export with explicit pads");
  VEIL_REQUIRE(attrs.has("kernel_shape"), where(node) << ": AveragePool needs kernel_shape");
  const auto kernel = attrs.get_ints("kernel_shape", {});
  VEIL_REQUIRE(
      kernel.size() == 2 && kernel[0] >= 1 && kernel[1] >= 1 && kernel[0] <= 1 << 16 && kernel[1] <= 1 << 16,
      where(node) << ": AveragePool kernel_shape must be 2 positive values");
  std::optional<PendingPad> pad;
  const auto [input, rank] = tensor_input(node, 0, &pad);
  VEIL_REQUIRE(rank == 4, where(node) << ": AveragePool input must be [N, C, H, W]");
  Node n = make(OpKind::kAveragePool, node, input);
  n.window = window(node, attrs, static_cast<int>(kernel[0]), static_cast<int>(kernel[1]));
  VEIL_REQUIRE(n.window.dilation_h == 1 && n.window.dilation_w == 1,
               where(node) << ": AveragePool dilations other than 1 are not supported");
  const Window& w = n.window;
  const bool padded = w.pad_top || w.pad_left || w.pad_bottom || w.pad_right;
  // With padding and count_include_pad = 0 the divisor changes at the borders, so the
  // pool is no longer a sum pool times 1/k^2 (which the merging passes rely on).
  VEIL_REQUIRE(
      !padded || attrs.get_int("count_include_pad", 0) == 1,
      where(node) << ": padded AveragePool needs count_include_pad=1 (torch: count_include_pad=True)");
  // The values a Pad node inserts are real elements of the pool's input, counted in every
  // window's divisor: exactly count_include_pad = 1 over the combined padding.
  if (pad) apply_pad(node, *pad, n.window, padded);
  // ceil_mode = 1 (torch's AvgPool2d(..., ceil_mode=True)) adds a partial last window only
  // where the windows do not tile the padded input; where they do, it changes nothing.
  const Shape in = shape_of(input);
  const bool tiles = w.stride_h >= 1 && w.stride_w >= 1 &&
                     (in.h + w.pad_top + w.pad_bottom - w.kernel_h) % w.stride_h == 0 &&
                     (in.w + w.pad_left + w.pad_right - w.kernel_w) % w.stride_w == 0;
  VEIL_REQUIRE(attrs.get_int("ceil_mode", 0) == 0 || tiles,
               where(node) << ": AveragePool ceil_mode=1 is not supported where it adds a partial window ("
                           << in.h << "x" << in.w << " input; export with ceil_mode=False)");
  const int index = add(std::move(n), 4, node);
  if (pad && pad->value != 0) {
    // The input was shifted by -value (import_pad) and every window averages k^2 values
    // of it, so the shift comes back as + value after the pool.
    Value v;
    v.kind = Value::Kind::kExpr;
    v.node = index;
    v.rank = 4;
    v.expr = detail::expr_binary(Expr::Op::kAdd, detail::expr_x(), detail::expr_const(pad->value), pad->node);
    v.nodes = {pad->node};
    v.ops = {"Pad"};
    values_[node.output(0)] = std::move(v);
  }
}

void Importer::import_global_pool(const onnx::NodeProto& node) {
  Attributes(node, where(node)).allow_only({});
  const auto [input, rank] = tensor_input(node, 0);
  VEIL_REQUIRE(rank == 4, where(node) << ": GlobalAveragePool input must be [N, C, H, W]");
  add(make(OpKind::kGlobalAveragePool, node, input), 4, node);
}

void Importer::import_flatten(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"axis"});
  const auto [input, rank] = tensor_input(node, 0);
  const std::int64_t axis = attrs.get_int("axis", 1);
  VEIL_REQUIRE(axis == 1 || axis == 1 - rank,
               where(node) << ": Flatten axis " << axis << " is not supported (only axis=1 keeps the batch)");
  define_alias(node, input, rank, 2);
}

void Importer::import_identity(const onnx::NodeProto& node) {
  Value v = lookup(node, 0);
  v.owner = false;  // an alias: the node has readers under the other name too
  define(node, std::move(v));
}

bool Importer::all_constant(const onnx::NodeProto& node) {
  bool any = false;
  for (int k = 0; k < node.input_size(); ++k) {
    if (node.input(k).empty()) continue;
    if (lookup(node, k).kind != Value::Kind::kConstant) return false;
    any = true;
  }
  return any;
}

void Importer::import_folded(const onnx::NodeProto& node) {
  std::vector<const Tensor*> inputs;
  for (int k = 0; k < node.input_size(); ++k)
    inputs.push_back(node.input(k).empty() ? nullptr : &lookup(node, k).constant);
  Value v;
  v.kind = Value::Kind::kConstant;
  v.constant = detail::fold_constant(node, inputs, where(node));
  define(node, std::move(v));
}

void Importer::import_constant(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"value", "value_float", "value_floats", "value_int", "value_ints"});
  Value v;
  v.kind = Value::Kind::kConstant;
  if (const onnx::TensorProto* t = attrs.get_tensor("value")) {
    v.constant = detail::read_tensor(*t, where(node) + " value");
  } else if (attrs.has("value_float")) {
    v.constant.values = {attrs.get_float("value_float", 0)};
  } else if (attrs.has("value_int")) {
    v.constant.values = {static_cast<double>(attrs.get_int("value_int", 0))};
  } else if (attrs.has("value_floats")) {
    v.constant.values = attrs.get_floats("value_floats");
    v.constant.dims = {static_cast<std::int64_t>(v.constant.values.size())};
  } else {
    const auto ints = attrs.get_ints("value_ints", {});
    v.constant.values.assign(ints.begin(), ints.end());
    v.constant.dims = {static_cast<std::int64_t>(v.constant.values.size())};
  }
  define(node, std::move(v));
}

void Importer::import_poly(const onnx::NodeProto& node) {
  Attributes attrs(node, where(node));
  attrs.allow_only({"coefficients", "input_range", "fit_range", "base"});
  const auto [input, rank] = tensor_input(node, 0);
  Node n = make(OpKind::kPoly, node, input);
  n.coefficients = attrs.get_floats("coefficients");
  n.input_range = attrs.get_float("input_range", 0);
  n.fit_range = attrs.get_float("fit_range", 0);
  n.base = attrs.get_string("base", "poly");
  add(std::move(n), rank, node);
}

void Importer::import_elementwise(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  Attributes attrs(node, where(node));
  if (op == "Gelu") {
    attrs.allow_only({"approximate"});
    VEIL_REQUIRE(attrs.get_string("approximate", "none") == "none",
                 where(node) << ": Gelu approximate=tanh is not supported");
  } else {
    attrs.allow_only({});
  }
  const int arity = (op == "Neg" || detail::is_elementwise_function(op)) ? 1 : 2;
  VEIL_REQUIRE(node.input_size() == arity, where(node) << ": " << op << " takes " << arity << " inputs");

  // Residual connection: the sum of two different tensors is a graph node of its own.
  if (op == "Add") {
    const Value& a = lookup(node, 0);
    const Value& b = lookup(node, 1);
    if (a.kind != Value::Kind::kConstant && b.kind != Value::Kind::kConstant && a.node != b.node) {
      const auto [left, left_rank] = tensor_input(node, 0);
      const auto [right, right_rank] = tensor_input(node, 1);
      VEIL_REQUIRE(left_rank == right_rank, where(node) << ": Add of tensors of different ranks");
      Node n = make(OpKind::kAdd, node, left);
      n.inputs.push_back(right);
      add(std::move(n), left_rank, node);
      return;
    }
  }

  if (import_affine(node)) return;

  std::vector<ExprPtr> args;
  Value result;
  result.kind = Value::Kind::kExpr;
  bool have_tensor = false;
  for (int k = 0; k < arity; ++k) {
    const Value& v = lookup(node, k);
    if (v.kind == Value::Kind::kConstant) {
      VEIL_REQUIRE(v.constant.size() == 1,
                   where(node) << ": " << op << " with the constant '" << node.input(k) << "' of shape "
                               << v.constant.dims_str() << " is not supported; only scalars are (fold "
                               << "per-channel scales and shifts into the previous linear layer)");
      args.push_back(detail::expr_const(v.constant.values[0]));
      continue;
    }
    if (v.pad) tensor_input(node, k);  // refuses: a Pad must feed a Conv or AveragePool
    if (have_tensor)
      VEIL_REQUIRE(v.node == result.node,
                   where(node) << ": " << op
                               << " of two different tensors is not supported; activations must be "
                               << "functions of a single tensor");
    have_tensor = true;
    result.node = v.node;
    result.rank = v.rank;
    if (v.kind == Value::Kind::kExpr) {
      args.push_back(v.expr);
      result.nodes.insert(result.nodes.end(), v.nodes.begin(), v.nodes.end());
      result.ops.insert(v.ops.begin(), v.ops.end());
    } else {
      args.push_back(detail::expr_x());
    }
  }
  const std::string name = name_of(node);
  ExprPtr e;
  if (op == "Neg") {
    e = detail::expr_neg(args[0], name);
  } else if (arity == 1) {
    e = detail::expr_fn(op, args[0], name);
  } else {
    const Expr::Op kind = op == "Add"   ? Expr::Op::kAdd
                          : op == "Sub" ? Expr::Op::kSub
                          : op == "Mul" ? Expr::Op::kMul
                          : op == "Div" ? Expr::Op::kDiv
                                        : Expr::Op::kPow;
    e = detail::expr_binary(kind, args[0], args[1], name);
  }
  if (!have_tensor) {  // constant folding left over by the exporter
    Value c;
    c.kind = Value::Kind::kConstant;
    c.constant.values = {detail::evaluate(*e, 0.0)};
    VEIL_REQUIRE(std::isfinite(c.constant.values[0]), where(node) << ": constant expression is not finite");
    return define(node, std::move(c));
  }
  result.expr = e;
  result.nodes.push_back(name);
  result.ops.insert(op);
  define(node, std::move(result));
}

// Turns a pending element-wise function into a Poly node (in place: later uses of the
// value share the node).
void Importer::materialise(Value& v) {
  if (v.expr->op == Expr::Op::kX) {
    v.kind = Value::Kind::kTensor;
    return;
  }
  std::string joined;
  for (const std::string& n : v.nodes) joined += (joined.empty() ? "" : "+") + n;
  std::string ops;
  for (const std::string& o : v.ops) ops += (ops.empty() ? "" : "/") + o;
  Node n;
  n.op = OpKind::kPoly;
  n.name = joined;
  n.source_op = ops;
  n.inputs = {v.node};
  if (auto poly = detail::as_polynomial(*v.expr)) {
    n.coefficients = *poly;
    n.base = "poly";
    for (const ApproxSpec& spec : options_.approximations)
      if (spec.function == "poly") n.input_range = n.fit_range = spec.range;
  } else {
    const Expr* bad = detail::first_non_polynomial(*v.expr);
    const std::string bad_op = bad->op == Expr::Op::kFn ? bad->fn : bad->op == Expr::Op::kDiv ? "Div" : "Pow";
    const std::string fn = detail::identify_activation(*v.expr);
    VEIL_REQUIRE(!fn.empty(), "node '" << bad->node << "': " << bad_op << " makes the element-wise function "
                                       << "computed by " << joined
                                       << " non-polynomial, and it is none of the "
                                       << "activations veil can approximate (" << approximable_functions()
                                       << "); use a polynomial activation (see docs/model-format.md)");
    const ApproxSpec* spec = nullptr;
    for (const ApproxSpec& s : options_.approximations)
      if (s.function == fn) spec = &s;
    const bool single = v.nodes.size() == 1;
    VEIL_REQUIRE(
        spec != nullptr,
        "node '" << bad->node << "': " << (single ? bad_op : "the " + fn + " computed by " + joined)
                 << " has no polynomial form; pass --approximate " << fn << ":deg4:range8 (degree and "
                 << "input range of your choice) to replace it by a least-squares polynomial fit, or "
                 << "retrain with a polynomial activation (see docs/model-format.md)");
    n.coefficients = fit_polynomial(activation_function(fn), spec->degree, spec->range);
    n.base = fn;
    n.fit_range = spec->range;
  }
  v.node = add_node(graph_, std::move(n));
  v.kind = Value::Kind::kTensor;
  v.expr.reset();
}

}  // namespace veil::nn::detail
