#include "veil/nn/onnx/import.hpp"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "veil/common/error.hpp"
#include "veil/nn/onnx/constant_fold.hpp"
#include "veil/nn/onnx/importer.hpp"

namespace veil::nn {

namespace {

// ai.onnx opsets whose definitions of the supported operators match what we implement
// (BatchNormalization lost `spatial` in 9; Gelu arrived in 20).
constexpr std::int64_t kMinOpset = 9, kMaxOpset = 21;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

std::vector<double> parse_numbers(const std::string& key, const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : split(text, ',')) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    VEIL_REQUIRE(used > 0 && used == item.size() && std::isfinite(v),
                 "metadata " << key << " = '" << text << "' is not a comma-separated list of numbers");
    out.push_back(v);
  }
  return out;
}

}  // namespace

namespace detail {

Graph Importer::run(const std::string& default_name) {
  check_opsets();
  read_metadata(default_name);
  read_input();
  for (const auto& init : model_.graph().initializer()) {
    VEIL_REQUIRE(!init.name().empty(), "an initializer has no name");
    Value v;
    v.kind = Value::Kind::kConstant;
    v.constant = detail::read_tensor(init, "initializer '" + init.name() + "'");
    values_[init.name()] = std::move(v);
  }
  for (const auto& node : model_.graph().node())
    for (const auto& name : node.input())
      if (!name.empty()) ++uses_[name];
  for (const auto& out : model_.graph().output()) ++uses_[out.name()];
  int index = 0;
  for (const auto& node : model_.graph().node()) import_node(node, index++);
  finish();
  return std::move(graph_);
}

void Importer::check_opsets() {
  bool have_default = false;
  for (const auto& op : model_.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") {
      have_default = true;
      VEIL_REQUIRE(op.version() >= kMinOpset && op.version() <= kMaxOpset,
                   "ai.onnx opset " << op.version() << " is not supported (use " << kMinOpset << ".."
                                    << kMaxOpset << "; veil's exporter writes 13)");
    } else if (op.domain() == "veil") {
      VEIL_REQUIRE(op.version() == 1, "veil opset " << op.version() << " is not supported (expected 1)");
    }
  }
  VEIL_REQUIRE(have_default, "the model imports no ai.onnx opset");
}

void Importer::read_metadata(const std::string& default_name) {
  std::unordered_map<std::string, std::string> meta;
  for (const auto& p : model_.metadata_props()) meta[p.key()] = p.value();
  auto get = [&](const char* key) { return meta.count(key) ? meta[key] : std::string(); };
  VEIL_REQUIRE(get("veil.version").empty() || get("veil.version") == "1",
               "model format veil.version " << get("veil.version") << " is not supported (expected 1)");
  graph_.name = get("veil.model").empty() ? default_name : get("veil.model");
  graph_.dataset = get("veil.dataset");
  if (!get("veil.input_shape").empty()) {
    const auto dims = parse_numbers("veil.input_shape", get("veil.input_shape"));
    VEIL_REQUIRE(dims.size() == 3,
                 "metadata veil.input_shape must be C,H,W, got '" << get("veil.input_shape") << "'");
    meta_shape_ = Shape{static_cast<int>(dims[0]), static_cast<int>(dims[1]), static_cast<int>(dims[2])};
  }
  if (!get("veil.normalize.mean").empty())
    graph_.mean = parse_numbers("veil.normalize.mean", get("veil.normalize.mean"));
  if (!get("veil.normalize.std").empty())
    graph_.std = parse_numbers("veil.normalize.std", get("veil.normalize.std"));
  if (!get("veil.classes").empty()) graph_.classes = split(get("veil.classes"), ',');
}

void Importer::read_input() {
  std::set<std::string> inits;
  for (const auto& init : model_.graph().initializer()) inits.insert(init.name());
  const onnx::ValueInfoProto* input = nullptr;
  int count = 0;
  for (const auto& in : model_.graph().input())
    if (!inits.count(in.name())) {
      input = &in;
      ++count;
    }
  VEIL_REQUIRE(count == 1,
               "the model has " << count << " inputs; veil needs exactly one image input [N, C, H, W]");
  const auto& type = input->type();
  VEIL_REQUIRE(type.has_tensor_type(), "input '" << input->name() << "' is not a tensor");
  const auto elem = type.tensor_type().elem_type();
  VEIL_REQUIRE(elem == onnx::TensorProto::FLOAT || elem == onnx::TensorProto::DOUBLE,
               "input '" << input->name() << "' must be float32 (element type " << elem << ")");
  Shape shape{0, 0, 0};
  if (type.tensor_type().has_shape()) {
    const auto& dims = type.tensor_type().shape().dim();
    VEIL_REQUIRE(dims.size() == 4,
                 "input '" << input->name() << "' has rank " << dims.size() << "; veil needs [N, C, H, W]");
    int* fields[3] = {&shape.c, &shape.h, &shape.w};
    for (int i = 1; i < 4; ++i) {
      VEIL_REQUIRE(dims[i].has_dim_value() && dims[i].dim_value() >= 1 && dims[i].dim_value() <= INT_MAX / 4,
                   "input '" << input->name() << "': dimension " << i << " must be a fixed positive size");
      *fields[i - 1] = static_cast<int>(dims[i].dim_value());
    }
    VEIL_REQUIRE(!meta_shape_ || *meta_shape_ == shape,
                 "metadata veil.input_shape does not match the input's shape " << shape.c << "," << shape.h
                                                                               << "," << shape.w);
  } else {
    VEIL_REQUIRE(meta_shape_.has_value(), "input '" << input->name() << "' has no shape and there is no "
                                                    << "veil.input_shape metadata");
    shape = *meta_shape_;
  }
  graph_.input = shape;
  if (graph_.mean.empty() && graph_.std.empty()) {
    graph_.mean.assign(shape.c, 0.0);
    graph_.std.assign(shape.c, 1.0);
  }
  VEIL_REQUIRE(
      graph_.mean.size() == static_cast<std::size_t>(shape.c) && graph_.std.size() == graph_.mean.size(),
      "metadata veil.normalize.mean/std need one value per input channel (" << shape.c << ")");
  Value v;
  v.node = -1;
  v.rank = 4;
  values_[input->name()] = v;
}

std::string Importer::where(const onnx::NodeProto& node) const { return "node '" + name_of(node) + "'"; }

std::string Importer::name_of(const onnx::NodeProto& node) const {
  return node.name().empty() ? node.op_type() + "#" + std::to_string(current_index_) : node.name();
}

Value& Importer::lookup(const onnx::NodeProto& node, int k) {
  VEIL_REQUIRE(k < node.input_size() && !node.input(k).empty(),
               where(node) << ": " << node.op_type() << " is missing input " << k);
  auto it = values_.find(node.input(k));
  VEIL_REQUIRE(it != values_.end(), where(node)
                                        << ": input '" << node.input(k)
                                        << "' is neither an initializer nor computed by an earlier node");
  return it->second;
}

const Tensor& Importer::constant_input(const onnx::NodeProto& node, int k, const char* role) {
  const Value& v = lookup(node, k);
  VEIL_REQUIRE(v.kind == Value::Kind::kConstant, where(node) << ": " << node.op_type() << " " << role << " '"
                                                             << node.input(k) << "' must be an initializer");
  return v.constant;
}

bool Importer::has_input(const onnx::NodeProto& node, int k) const {
  return k < node.input_size() && !node.input(k).empty();
}

// The data input k as a graph node (materialising a pending element-wise function).
std::pair<int, int> Importer::tensor_input(const onnx::NodeProto& node, int k,
                                           std::optional<PendingPad>* pad) {
  Value& v = lookup(node, k);
  VEIL_REQUIRE(v.kind != Value::Kind::kConstant,
               where(node) << ": input '" << node.input(k) << "' is a constant; the data path must start at "
                           << "the model input");
  if (v.pad) {
    VEIL_REQUIRE(pad != nullptr, "node '" << v.pad->node << "': a Pad is supported only right before a Conv "
                                          << "or AveragePool (it becomes their padding), and " << where(node)
                                          << " (" << node.op_type() << ") reads it");
    *pad = v.pad;
  }
  if (v.kind == Value::Kind::kExpr) materialise(v);
  return {v.node, v.rank};
}

Shape Importer::shape_of(int node) const { return node < 0 ? graph_.input : graph_.nodes[node].out; }

std::vector<std::int64_t> Importer::dims_of(const Value& v) const {
  const Shape s = shape_of(v.node);
  if (v.rank == 2) return {1, s.size()};
  if (v.rank == 3) return {1, s.size(), 1};
  const int h = s.h + (v.pad ? v.pad->top + v.pad->bottom : 0);
  const int w = s.w + (v.pad ? v.pad->left + v.pad->right : 0);
  return {1, s.c, h, w};
}

void Importer::define(const onnx::NodeProto& node, Value v) {
  int outputs = 0;
  for (const auto& out : node.output()) outputs += !out.empty();
  VEIL_REQUIRE(node.output_size() >= 1 && !node.output(0).empty() && outputs == 1,
               where(node) << ": " << node.op_type() << " must have exactly one output (inference form)");
  define_output(node, node.output(0), std::move(v));
}

void Importer::define_output(const onnx::NodeProto& node, const std::string& name, Value v) {
  VEIL_REQUIRE(!values_.count(name), where(node) << ": output '" << name << "' is defined twice");
  values_[name] = std::move(v);
}

int Importer::add(Node n, int rank, const onnx::NodeProto& onnx_node) {
  const int index = add_node(graph_, std::move(n));
  Value v;
  v.node = index;
  v.rank = rank;
  v.owner = true;
  define(onnx_node, v);
  return index;
}

Node Importer::make(OpKind op, const onnx::NodeProto& node, int input) const {
  Node n;
  n.op = op;
  n.name = name_of(node);
  n.source_op = node.op_type();
  n.inputs = {input};
  return n;
}

void Importer::import_node(const onnx::NodeProto& node, int index) {
  current_index_ = index;
  const std::string& op = node.op_type();
  if (node.domain() == "veil") {
    VEIL_REQUIRE(op == "Poly", where(node) << ": veil::" << op << " is not a veil operator (only Poly)");
    return import_poly(node);
  }
  VEIL_REQUIRE(node.domain().empty() || node.domain() == "ai.onnx",
               where(node) << ": operator " << node.domain() << "::" << op << " is not supported");
  // Shape arithmetic and constants left over by the exporter fold at import time.
  if (detail::is_constant_foldable(op) && all_constant(node)) return import_folded(node);
  if (op == "Conv") return import_conv(node);
  if (op == "Gemm" || op == "MatMul") return import_dense(node);
  if (op == "BatchNormalization") return import_batch_norm(node);
  if (op == "AveragePool") return import_average_pool(node);
  if (op == "GlobalAveragePool") return import_global_pool(node);
  if (op == "Flatten") return import_flatten(node);
  if (op == "Reshape") return import_reshape(node);
  if (op == "Identity") return import_identity(node);
  if (op == "Constant") return import_constant(node);
  if (op == "Shape" || op == "Size") return import_shape(node);
  if (op == "Unsqueeze" || op == "Squeeze") return import_unsqueeze(node);
  if (op == "Dropout") return import_dropout(node);
  if (op == "ReduceMean") return import_reduce_mean(node);
  if (op == "Pad") return import_pad(node);
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Neg" ||
      detail::is_elementwise_function(op))
    return import_elementwise(node);
  refuse(node);
}

void Importer::refuse(const onnx::NodeProto& node) const {
  const std::string& op = node.op_type();
  std::string advice;
  if (op == "MaxPool")
    advice =
        "MaxPool has no polynomial form; replace it by AveragePool and retrain (see docs/model-format.md)";
  else if (op == "GlobalMaxPool")
    advice =
        "GlobalMaxPool has no polynomial form; replace it by GlobalAveragePool and retrain "
        "(see docs/model-format.md)";
  else if (op == "Softmax" || op == "LogSoftmax")
    advice = op +
             " has no polynomial form and is not needed: export the logits without it (the class is "
             "their argmax)";
  else
    advice = op +
             " is not supported (supported: Conv, Gemm, MatMul, BatchNormalization, AveragePool, "
             "GlobalAveragePool, ReduceMean over H and W, Pad (constant), Flatten, Reshape, "
             "Squeeze/Unsqueeze, Identity, Dropout, Add of two tensors, veil::Poly, polynomials "
             "and affine maps written with Mul/Add/Sub/Div/Neg/Pow, shape arithmetic on constants "
             "(Shape, Gather, Concat, Slice, Cast, ...), and Relu/Sigmoid/Tanh/Softplus/SiLU/GELU "
             "with --approximate; see docs/model-format.md)";
  ::veil::detail::throw_invalid(__FILE__, __LINE__, where(node) + ": " + advice);
}

void Importer::finish() {
  const auto& outputs = model_.graph().output();
  VEIL_REQUIRE(outputs.size() == 1, "the model has " << outputs.size() << " outputs; veil needs exactly one "
                                                     << "(the logits)");
  auto it = values_.find(outputs[0].name());
  VEIL_REQUIRE(it != values_.end(), "output '" << outputs[0].name() << "' is not computed by any node");
  Value& v = it->second;
  VEIL_REQUIRE(v.kind != Value::Kind::kConstant, "output '" << outputs[0].name() << "' is a constant");
  if (v.kind == Value::Kind::kExpr) materialise(v);
  VEIL_REQUIRE(v.node >= 0,
               "output '" << outputs[0].name() << "' is the model input: the model computes nothing");
  graph_.output = v.node;
  prune();
  const int outputs_size = graph_.nodes[graph_.output].out.size();
  VEIL_REQUIRE(graph_.classes.empty() || graph_.classes.size() == static_cast<std::size_t>(outputs_size),
               "metadata veil.classes names " << graph_.classes.size() << " classes, the model has "
                                              << outputs_size << " outputs");
}

// Drops nodes the output does not depend on (dead branches of the export).
void Importer::prune() {
  std::vector<char> live(graph_.nodes.size(), 0);
  live[graph_.output] = 1;
  for (int i = graph_.output; i >= 0; --i)
    if (live[i])
      for (int src : graph_.nodes[i].inputs)
        if (src >= 0) live[src] = 1;
  std::vector<int> remap(graph_.nodes.size(), -1);
  std::vector<Node> kept;
  for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (!live[i]) continue;
    remap[i] = static_cast<int>(kept.size());
    Node n = std::move(graph_.nodes[i]);
    for (int& src : n.inputs)
      if (src >= 0) src = remap[src];
    kept.push_back(std::move(n));
  }
  graph_.nodes = std::move(kept);
  graph_.output = remap[graph_.output];
}

}  // namespace detail

namespace {

// Prefixes model errors with the file so a message from a batch job names its model.
template <typename F>
Graph with_source(const std::string& source, F&& f) {
  try {
    return f();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
}

}  // namespace

Graph parse_onnx(std::string_view bytes, const std::string& source, const ImportOptions& options) {
  VEIL_CHECK_IO(!bytes.empty(), "'" << source << "' is empty, not an ONNX model");
  VEIL_CHECK_IO(bytes.size() <= static_cast<std::size_t>(INT_MAX),
                "'" << source << "' is too large (over 2 GiB)");
  onnx::ModelProto model;
  VEIL_CHECK_IO(
      model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())),
      "'" << source << "' is not a valid ONNX file (protobuf parsing failed: corrupt or truncated)");
  // Protobuf accepts many byte strings as a message with unknown fields; a real model
  // has an IR version and a graph with nodes.
  VEIL_CHECK_IO(model.ir_version() > 0 && model.has_graph() && model.graph().node_size() > 0,
                "'" << source << "' is not an ONNX model (no IR version or no graph)");
  const std::string stem = std::filesystem::path(source).stem().string();
  return with_source(source, [&] { return detail::Importer(model, options).run(stem); });
}

Graph load_onnx(const std::string& path, const ImportOptions& options) {
  std::ifstream in(path, std::ios::binary);
  VEIL_CHECK_IO(in.is_open(), "cannot open ONNX file '" << path << "': " << std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  VEIL_CHECK_IO(!in.bad(), "error reading ONNX file '" << path << "'");
  return parse_onnx(bytes, path, options);
}

}  // namespace veil::nn
