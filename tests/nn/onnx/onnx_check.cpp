// veil_onnx_check: imports an ONNX file and evaluates it on given inputs, for the
// Python tests that compare veil with torch on models exported by stock
// torch.onnx.export (tests/python/test_torch_zoo.py).
//
//   veil_onnx_check MODEL INPUTS [--encrypted]
//
// INPUTS holds float32 values (little-endian), whole model inputs (C x H x W each, the
// values the model's input receives, no normalisation). Prints one JSON object: the
// graph's node kinds, the logits of the graph evaluator, of the lowered network and,
// with --encrypted, of the latency-mode encrypted evaluation (128-bit parameters). A model veil refuses
// prints {"error": message} and exits with 1.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"
#include "veil/rlwe/keygen.hpp"

namespace {

using namespace veil;

std::vector<std::vector<double>> read_inputs(const std::string& path, int size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t per = static_cast<std::size_t>(size) * sizeof(float);
  if (bytes.empty() || bytes.size() % per != 0)
    throw std::runtime_error(path + " does not hold whole inputs of " + std::to_string(size) + " floats");
  std::vector<std::vector<double>> out;
  for (std::size_t at = 0; at < bytes.size(); at += per) {
    std::vector<double> x(size);
    for (int i = 0; i < size; ++i) {
      float v;
      std::memcpy(&v, bytes.data() + at + i * sizeof(float), sizeof(float));
      x[i] = v;
    }
    out.push_back(std::move(x));
  }
  return out;
}

// Latency-mode encrypted logits at 128-bit parameters. The scale is 2^40 rather than the
// default 2^33 so that the comparison is sharp (errors near 1e-5, where any wrong weight or
// layout shows) even on random untrained models, which amplify noise more than trained ones.
nlohmann::json run_encrypted(const nn::Network& net, const std::vector<std::vector<double>>& inputs) {
  nn::PlanOptions options;
  options.mode = nn::Mode::kLatency;
  options.target_scale_bits = 40;
  options.min_precision_bits = 20;
  const nn::Plan plan = nn::make_plan(net, options);
  const auto ctx = ckks::CkksContext::create(plan.params);
  rlwe::KeyGenerator keygen(ctx);
  const nn::EvaluationKeys keys = nn::make_evaluation_keys(plan, keygen);
  nn::EncryptedNetwork server(net, plan, ctx);
  ckks::CkksEncoder encoder(ctx);
  ckks::Encryptor encryptor(ctx, keygen.secret_key());
  const nn::ResultRing result(plan, ctx, keygen.secret_key());
  nlohmann::json logits = nlohmann::json::array();
  std::cerr << "plan: N = 2^" << plan.params.log_n << ", scale 2^" << std::log2(plan.params.scale) << "\n";
  for (const auto& x : inputs) {
    auto cts = nn::encrypt_inputs(plan, encoder, encryptor, {x});
    const auto out = server.evaluate(std::move(cts), keys);
    logits.push_back(nn::decrypt_outputs(plan, result, out, 1)[0]);
  }
  return logits;
}

nlohmann::json run(const std::string& model, const std::string& inputs_path, bool encrypted) {
  nlohmann::json j;
  const nn::Graph graph = nn::load_onnx(model);
  for (const nn::Node& n : graph.nodes) j["nodes"].push_back(nn::op_name(n.op));
  const auto inputs = read_inputs(inputs_path, graph.input.size());
  const nn::Network net = nn::lower(graph);
  j["stages"] = net.stages.size();
  for (const auto& x : inputs) {
    j["graph"].push_back(nn::evaluate(graph, x));
    j["network"].push_back(nn::evaluate(net, x));
  }
  if (encrypted) {
    try {
      j["encrypted"] = run_encrypted(net, inputs);
    } catch (const std::invalid_argument& e) {
      j["encrypted_error"] = e.what();  // e.g. a residual network refused by the packer
    }
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4 || (argc == 4 && std::strcmp(argv[3], "--encrypted") != 0)) {
    std::fprintf(stderr, "usage: veil_onnx_check MODEL INPUTS [--encrypted]\n");
    return 2;
  }
  try {
    std::cout << run(argv[1], argv[2], argc == 4).dump() << "\n";
  } catch (const std::exception& e) {
    std::cout << nlohmann::json{{"error", e.what()}}.dump() << "\n";
    return 1;
  }
  return 0;
}
