#include "veil/nn/plain_eval.hpp"

#include <algorithm>
#include <cmath>

#include "veil/common/error.hpp"
#include "veil/nn/approximate.hpp"
#include "veil/nn/linear.hpp"

namespace veil::nn {

namespace {

using Tensor = std::vector<double>;

Tensor conv(const Node& n, const Tensor& x) {
  const Shape in = n.in, out = n.out;
  const Window& w = n.window;
  const int in_per_group = in.c / n.group, out_per_group = out.c / n.group;
  Tensor y(out.size());
  for (int o = 0; o < out.c; ++o) {
    const int first_in = (o / out_per_group) * in_per_group;
    for (int oy = 0; oy < out.h; ++oy)
      for (int ox = 0; ox < out.w; ++ox) {
        double sum = n.bias[o];
        for (int ic = 0; ic < in_per_group; ++ic)
          for (int ky = 0; ky < w.kernel_h; ++ky) {
            const int iy = oy * w.stride_h - w.pad_top + ky * w.dilation_h;
            if (iy < 0 || iy >= in.h) continue;  // zero padding
            for (int kx = 0; kx < w.kernel_w; ++kx) {
              const int ix = ox * w.stride_w - w.pad_left + kx * w.dilation_w;
              if (ix < 0 || ix >= in.w) continue;
              sum += n.weights[((static_cast<std::size_t>(o) * in_per_group + ic) * w.kernel_h + ky) *
                                   w.kernel_w +
                               kx] *
                     x[(static_cast<std::size_t>(first_in + ic) * in.h + iy) * in.w + ix];
            }
          }
        y[(static_cast<std::size_t>(o) * out.h + oy) * out.w + ox] = sum;
      }
  }
  return y;
}

Tensor average_pool(const Node& n, const Tensor& x) {
  const Shape in = n.in, out = n.out;
  const Window& w = n.window;
  Tensor y(out.size());
  for (int c = 0; c < out.c; ++c)
    for (int oy = 0; oy < out.h; ++oy)
      for (int ox = 0; ox < out.w; ++ox) {
        double sum = 0;
        for (int ky = 0; ky < w.kernel_h; ++ky)
          for (int kx = 0; kx < w.kernel_w; ++kx) {
            const int iy = oy * w.stride_h - w.pad_top + ky, ix = ox * w.stride_w - w.pad_left + kx;
            if (iy >= 0 && iy < in.h && ix >= 0 && ix < in.w) sum += x[(c * in.h + iy) * in.w + ix];
          }
        // count_include_pad = 1: padding counts in the divisor.
        y[(c * out.h + oy) * out.w + ox] = sum / (w.kernel_h * w.kernel_w);
      }
  return y;
}

Tensor evaluate_node(const Node& n, const std::vector<const Tensor*>& ins) {
  const Tensor& x = *ins[0];
  switch (n.op) {
    case OpKind::kConv:
      return conv(n, x);
    case OpKind::kGemm: {
      const int m = n.in.size();
      Tensor y(n.bias);
      for (int o = 0; o < n.out_features; ++o)
        for (int i = 0; i < m; ++i) y[o] += n.weights[static_cast<std::size_t>(o) * m + i] * x[i];
      return y;
    }
    case OpKind::kBatchNorm: {
      Tensor y(x.size());
      const int pixels = n.in.h * n.in.w;
      for (std::size_t i = 0; i < x.size(); ++i) {
        const std::size_t c = i / pixels;
        y[i] = n.weights[c] * x[i] + n.bias[c];
      }
      return y;
    }
    case OpKind::kAveragePool:
      return average_pool(n, x);
    case OpKind::kGlobalAveragePool: {
      const int pixels = n.in.h * n.in.w;
      Tensor y(n.in.c, 0.0);
      for (int c = 0; c < n.in.c; ++c) {
        for (int p = 0; p < pixels; ++p) y[c] += x[c * pixels + p];
        y[c] /= pixels;
      }
      return y;
    }
    case OpKind::kFlatten:
      return x;
    case OpKind::kAdd: {
      Tensor y(x);
      for (std::size_t i = 0; i < y.size(); ++i) y[i] += (*ins[1])[i];
      return y;
    }
    case OpKind::kPoly: {
      Tensor y(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) y[i] = eval_polynomial(n.coefficients, x[i]);
      return y;
    }
  }
  return x;
}

double max_abs(const Tensor& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::abs(v));
  return m;
}

std::vector<double> normalize_with(const Shape& shape, const std::vector<double>& mean,
                                   const std::vector<double>& std, const std::vector<std::uint8_t>& pixels) {
  VEIL_REQUIRE(pixels.size() == static_cast<std::size_t>(shape.size()),
               "image has " << pixels.size() << " pixels, the model expects " << shape.c << "x" << shape.h
                            << "x" << shape.w);
  const int pixels_per_channel = shape.h * shape.w;
  std::vector<double> x(pixels.size());
  for (std::size_t i = 0; i < pixels.size(); ++i) {
    const std::size_t c = i / pixels_per_channel;
    const double m = mean.empty() ? 0.0 : mean[c], s = std.empty() ? 1.0 : std[c];
    x[i] = (pixels[i] / 255.0 - m) / s;
  }
  return x;
}

}  // namespace

std::vector<double> evaluate(const Graph& graph, const std::vector<double>& input,
                             std::vector<std::vector<double>>* node_outputs) {
  VEIL_REQUIRE(
      input.size() == static_cast<std::size_t>(graph.input.size()),
      "input has " << input.size() << " values, graph '" << graph.name << "' expects " << graph.input.size());
  VEIL_REQUIRE(graph.output >= -1 && graph.output < static_cast<int>(graph.nodes.size()),
               "graph '" << graph.name << "' has no valid output node");
  // Only the values still needed are kept alive when the caller does not want them all.
  std::vector<int> last_use(graph.nodes.size(), -1);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    for (int src : graph.nodes[i].inputs)
      if (src >= 0) last_use[src] = static_cast<int>(i);
  std::vector<Tensor> values(graph.nodes.size());
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    std::vector<const Tensor*> ins;
    for (int src : n.inputs) {
      VEIL_REQUIRE(src >= -1 && src < static_cast<int>(i),
                   "node '" << n.name << "': input is not an earlier node");
      ins.push_back(src < 0 ? &input : &values[src]);
      VEIL_REQUIRE(ins.back()->size() == static_cast<std::size_t>(n.in.size()),
                   "node '" << n.name << "': input has " << ins.back()->size() << " values, expected "
                            << n.in.size() << " (call infer_shapes after editing a graph)");
    }
    values[i] = evaluate_node(n, ins);
    if (!node_outputs)
      for (int src : n.inputs)
        if (src >= 0 && last_use[src] == static_cast<int>(i) && src != graph.output)
          Tensor().swap(values[src]);
  }
  std::vector<double> result = graph.output < 0 ? input : values[graph.output];
  if (node_outputs) *node_outputs = std::move(values);
  return result;
}

std::vector<double> evaluate(const PolyStage& stage, const std::vector<double>& x) {
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = eval_polynomial(stage.coefficients, x[i]);
  return y;
}

std::vector<double> evaluate(const Network& network, const std::vector<double>& input, PlainTrace* trace) {
  VEIL_REQUIRE(input.size() == static_cast<std::size_t>(network.input.size()),
               "input has " << input.size() << " values, network '" << network.name << "' expects "
                            << network.input.size());
  VEIL_REQUIRE(!network.stages.empty(), "network '" << network.name << "' has no stages");
  if (trace) *trace = PlainTrace{};
  const int count = static_cast<int>(network.stages.size());
  std::vector<Tensor> values(network.stages.size());
  for (int k = 0; k < count; ++k) {
    const Stage& s = network.stages[k];
    std::vector<const Tensor*> ins;
    for (int src : network.inputs_of(k)) {
      VEIL_REQUIRE(src >= -1 && src < k,
                   "stage " << k + 1 << " '" << s.name() << "' reads a stage that is not earlier");
      ins.push_back(src < 0 ? &input : &values[src]);
    }
    VEIL_REQUIRE(!ins.empty(), "stage " << k + 1 << " '" << s.name() << "' has no inputs");
    if (trace) {
      double m = 0;
      for (const Tensor* x : ins) m = std::max(m, max_abs(*x));
      trace->max_abs_input.push_back(m);
    }
    values[k] =
        std::visit(Overloaded{[&](const LinearStage& l) { return evaluate(l, *ins[0]); },
                              [&](const PolyStage& p) { return evaluate(p, *ins[0]); },
                              [&](const AddStage& a) {
                                Tensor sum = *ins[0];
                                for (std::size_t j = 1; j < ins.size(); ++j) {
                                  VEIL_REQUIRE(ins[j]->size() == sum.size(),
                                               "add stage '" << a.name << "': inputs of " << sum.size()
                                                             << " and " << ins[j]->size() << " values");
                                  for (std::size_t i = 0; i < sum.size(); ++i) sum[i] += (*ins[j])[i];
                                }
                                return sum;
                              }},
                   s.op);
    if (trace) trace->stage_outputs.push_back(values[k]);
  }
  return std::move(values.back());
}

std::vector<double> normalize(const Network& network, const std::vector<std::uint8_t>& pixels_chw) {
  return normalize_with(network.input, network.mean, network.std, pixels_chw);
}

std::vector<double> normalize(const Graph& graph, const std::vector<std::uint8_t>& pixels_chw) {
  return normalize_with(graph.input, graph.mean, graph.std, pixels_chw);
}

}  // namespace veil::nn
