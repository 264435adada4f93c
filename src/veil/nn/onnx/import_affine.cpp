// Affine operations by constants: `conv(x) / 2 - 0.5`, `x @ W + b` (MatMul then Add), a
// per-channel scale written by hand. They cost nothing once folded into the linear layer
// before them, so they are folded at import when that layer has no other reader (the
// usual inference-time folding, exact in double); otherwise a per-channel operation
// becomes a BatchNormalization node (the passes fold it where they can) and a scalar one
// joins the element-wise polynomial around it (elementwise.hpp).
#include <cmath>
#include <optional>

#include "veil/common/error.hpp"
#include "veil/nn/onnx/importer.hpp"

namespace veil::nn::detail {

namespace {

// The constant's value per channel when it broadcasts over a [N, C, H, W] tensor of
// `channels` channels as [C, 1, 1] (or [F] over [N, F]); scalars repeat. nullopt when it
// varies along another axis.
std::optional<std::vector<double>> per_channel(const Tensor& c, int rank, int channels) {
  if (c.size() == 1) return std::vector<double>(channels, c.values[0]);
  if (c.dims.size() > static_cast<std::size_t>(rank)) return std::nullopt;
  std::vector<std::int64_t> d(rank - c.dims.size(), 1);
  d.insert(d.end(), c.dims.begin(), c.dims.end());
  for (int i = 0; i < rank; ++i)
    if (d[i] != (i == 1 ? channels : 1)) return std::nullopt;
  return c.values;
}

}  // namespace

bool Importer::import_affine(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  if (op != "Add" && op != "Sub" && op != "Mul" && op != "Div" && op != "Neg") return false;
  int t = -1;
  const Tensor* c = nullptr;
  for (int k = 0; k < node.input_size(); ++k) {
    const Value& v = lookup(node, k);
    if (v.kind == Value::Kind::kConstant) {
      c = &v.constant;
    } else if (t >= 0) {
      return false;  // two tensors: a residual Add or a product, not affine
    } else {
      t = k;
    }
  }
  if (t < 0 || (op != "Neg" && c == nullptr) || (op == "Div" && t != 0)) return false;
  const Value& x = lookup(node, t);
  const Shape s = shape_of(x.node);
  const int channels = x.rank == 4 ? s.c : s.size();
  std::vector<double> k(channels, 0.0);
  if (c) {
    auto per = per_channel(*c, x.rank, channels);
    if (!per) return false;  // the element-wise route names the unsupported constant
    k = *per;
  }
  // y = a * x + b per channel.
  std::vector<double> a(channels, 1.0), b(channels, 0.0);
  for (int i = 0; i < channels; ++i) {
    if (op == "Add") b[i] = k[i];
    if (op == "Sub") {  // x - k, or k - x
      a[i] = t == 0 ? 1 : -1;
      b[i] = t == 0 ? -k[i] : k[i];
    }
    if (op == "Mul") a[i] = k[i];
    if (op == "Neg") a[i] = -1;
    if (op == "Div") {
      VEIL_REQUIRE(k[i] != 0, where(node) << ": division by zero (constant '" << node.input(1) << "')");
      a[i] = 1 / k[i];
    }
  }
  const auto use = uses_.find(node.input(t));
  const bool sole_reader = use != uses_.end() && use->second == 1;
  if (x.kind == Value::Kind::kTensor && !x.pad && x.owner && sole_reader && x.node >= 0) {
    Node& producer = graph_.nodes[x.node];
    if (producer.op == OpKind::kConv || producer.op == OpKind::kGemm || producer.op == OpKind::kBatchNorm) {
      const std::size_t per_out = producer.weights.size() / channels;
      for (int o = 0; o < channels; ++o) {
        for (std::size_t j = 0; j < per_out; ++j) producer.weights[o * per_out + j] *= a[o];
        producer.bias[o] = a[o] * producer.bias[o] + b[o];
        VEIL_REQUIRE(std::isfinite(producer.bias[o]) && std::isfinite(a[o]),
                     where(node) << ": folding " << op << " into '" << producer.name << "' overflows");
      }
      producer.name.append("+").append(name_of(node));
      Value v;
      v.node = x.node;
      v.rank = x.rank;
      v.owner = true;
      define(node, v);
      return true;
    }
  }
  if (!c || c->size() == 1) return false;  // scalars: the element-wise polynomial route
  const auto [input, rank] = tensor_input(node, t);
  Node n = make(OpKind::kBatchNorm, node, input);
  n.weights = a;
  n.bias = b;
  add(std::move(n), rank, node);
  return true;
}

}  // namespace veil::nn::detail
