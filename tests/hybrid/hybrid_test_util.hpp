// Small hand-built networks for the hybrid tests: a chain and a residual block, with
// random weights and measured-looking activation ranges.
#pragma once

#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "veil/hybrid/program.hpp"
#include "veil/nn/network.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::hybrid::test {

inline nn::Stage dense(const std::string& name, int in, int out, std::mt19937_64& rng, double scale) {
  std::uniform_real_distribution<double> u(-scale, scale);
  nn::LinearStage l;
  l.name = name;
  l.in = nn::Shape{in, 1, 1};
  l.out = nn::Shape{out, 1, 1};
  l.weights.rows = out;
  l.weights.cols = in;
  l.weights.row_ptr.push_back(0);
  for (int r = 0; r < out; ++r) {
    for (int c = 0; c < in; ++c) {
      if ((r + c) % 3 == 2) continue;  // some sparsity, as convolutions have
      l.weights.col.push_back(c);
      l.weights.val.push_back(u(rng));
    }
    l.weights.row_ptr.push_back(static_cast<std::int64_t>(l.weights.col.size()));
  }
  for (int r = 0; r < out; ++r) l.bias.push_back(u(rng) * 0.5);
  return nn::Stage(std::move(l));
}

inline nn::Stage poly(const std::string& name, std::vector<double> c, double range) {
  return nn::Stage(nn::PolyStage{name, std::move(c), range, range});
}

// input(16) -> dense 24 -> x^2 + 0.5x -> dense 24 -> [+ skip from the first dense] ->
// 0.25x^4 - x^2 + 0.3x^3 ... -> dense 10. A residual join and both polynomial depths.
inline nn::Network residual_network(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  nn::Network net;
  net.name = "residual-test";
  net.input = nn::Shape{16, 1, 1};
  net.stages.push_back(dense("fc1", 16, 24, rng, 0.35));     // 0
  net.stages.push_back(poly("act1", {0.0, 0.5, 1.0}, 3.0));  // 1
  net.stages.push_back(dense("fc2", 24, 24, rng, 0.12));     // 2
  const nn::Stage add(nn::AddStage{"add", nn::Shape{24, 1, 1}}, {0, 2});
  net.stages.push_back(add);                                              // 3
  net.stages.push_back(poly("act2", {0.1, 0.3, -0.2, 0.05, 0.01}, 4.0));  // 4
  net.stages.back().inputs = {3};
  net.stages.push_back(dense("fc3", 24, 10, rng, 0.3));  // 5
  return net;
}

// A per-channel (batch-norm-like) stage on C x H x W: y[c] = a_c x[c] + b_c, spatial.
inline nn::Stage per_channel(const std::string& name, nn::Shape shape, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> a(0.5, 1.5), b(-0.2, 0.2);
  nn::LinearStage l;
  l.name = name;
  l.in = l.out = shape;
  l.spatial = true;
  l.weights.rows = l.weights.cols = shape.size();
  l.weights.row_ptr.push_back(0);
  const int plane = shape.h * shape.w;
  for (int c = 0; c < shape.c; ++c) {
    const double ac = a(rng), bc = b(rng);
    for (int p = 0; p < plane; ++p) {
      l.weights.col.push_back(c * plane + p);
      l.weights.val.push_back(ac);
      l.weights.row_ptr.push_back(static_cast<std::int64_t>(l.weights.col.size()));
      l.bias.push_back(bc);
    }
  }
  return nn::Stage(std::move(l));
}

// input(8 x 32 x 32) -> per channel -> 0.1x^2 + x -> dense 10: a depthwise layer wider
// than one ciphertext of the exact scheme.
inline nn::Network depthwise_network(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  nn::Network net;
  net.name = "depthwise-test";
  net.input = nn::Shape{8, 32, 32};
  net.stages.push_back(per_channel("bn", net.input, rng));
  net.stages.push_back(poly("act", {0.0, 1.0, 0.1}, 3.0));
  net.stages.push_back(dense("fc", net.input.size(), 10, rng, 0.02));
  return net;
}

// n inputs of the residual network (16 values, uniform in [-1, 1)), drawn from rng.
inline std::vector<std::vector<double>> random_inputs(std::mt19937_64& rng, int n) {
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<std::vector<double>> out(static_cast<std::size_t>(n), std::vector<double>(16));
  for (auto& x : out)
    for (auto& v : x) v = u(rng);
  return out;
}

// A shipped MNIST model (path relative to the checkout), lowered for the hybrid mode, and
// the 16 shipped sample test images normalised for it.
struct MnistSamples {
  nn::Network net;
  std::vector<std::vector<double>> images;
};
inline MnistSamples mnist_samples(const std::string& model) {
  const std::string root = VEIL_SOURCE_DIR;
  MnistSamples m;
  m.net = nn::lower(nn::load_onnx(root + "/" + model), lower_options());
  std::ifstream in(root + "/models/samples/mnist-test-first16-images-idx3-ubyte", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (std::size_t t = 0; 16 + (t + 1) * 784 <= bytes.size() && t < 16; ++t)
    m.images.push_back(nn::normalize(
        m.net, std::vector<std::uint8_t>(bytes.begin() + static_cast<std::ptrdiff_t>(16 + t * 784),
                                         bytes.begin() + static_cast<std::ptrdiff_t>(16 + (t + 1) * 784))));
  return m;
}

}  // namespace veil::hybrid::test
