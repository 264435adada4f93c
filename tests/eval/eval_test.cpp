// The evaluation loops of `veil eval` as library functions: their reports against counts
// computed here from the same records, in both CKKS modes and the hybrid mode, and a
// record the hybrid client refuses counted as such while the run goes on.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>

#include "veil/ckks/context.hpp"
#include "veil/eval/ckks_eval.hpp"
#include "veil/eval/hybrid_eval.hpp"
#include "veil/hybrid/program.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::eval {
namespace {

std::string read_bytes(const std::string& relative) {
  std::ifstream in(std::string(VEIL_SOURCE_DIR) + "/" + relative, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The first `count` shipped MNIST test images, normalised for `net`, with their labels.
Records mnist_records(const nn::Network& net, std::size_t count) {
  const std::string images = read_bytes("models/samples/mnist-test-first16-images-idx3-ubyte");
  const std::string labels = read_bytes("models/samples/mnist-test-first16-labels-idx1-ubyte");
  Records r;
  for (std::size_t t = 0; t < count && 16 + (t + 1) * 784 <= images.size() && 8 + t < labels.size(); ++t) {
    const auto* px = reinterpret_cast<const std::uint8_t*>(images.data()) + 16 + t * 784;
    r.inputs.push_back(nn::normalize(net, std::vector<std::uint8_t>(px, px + 784)));
    r.labels.push_back(static_cast<std::uint8_t>(labels[8 + t]));
  }
  return r;
}

struct Direct {
  std::size_t correct = 0, correct_plain = 0, agree = 0;
  std::vector<int> plain_predictions;
};

// What the report must say, from its per-record predictions and the plaintext network.
Direct direct(const nn::Network& net, const Records& records, const std::vector<int>& predictions) {
  Direct d;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const int p = argmax(nn::evaluate(net, records.inputs[i]));
    d.plain_predictions.push_back(p);
    d.correct_plain += p == records.labels[i];
    d.correct += predictions[i] == records.labels[i];
    d.agree += predictions[i] == p;
  }
  return d;
}

class CkksEval : public ::testing::TestWithParam<nn::Mode> {};

TEST_P(CkksEval, ReportCountsMatchADirectComputation) {
  const nn::Network net =
      nn::lower(nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/mnist-cryptonets.onnx"));
  nn::PlanOptions o;
  o.mode = GetParam();
  if (o.mode == nn::Mode::kThroughput) o.log_n = 12, o.allow_insecure = true;  // 2048 images per batch: small
  const nn::Plan plan = nn::make_plan(net, o);
  const Records records = mnist_records(net, 3);
  ASSERT_EQ(records.size(), 3u);
  CkksEvaluation evaluation(net, plan, ckks::CkksContext::create(plan.params), 1 << 30);
  std::size_t calls = 0, last = 0;
  const CkksReport r =
      evaluation.run(records, [&](std::size_t done, const std::string&) { ++calls, last = done; });
  EXPECT_EQ(last, 3u);
  EXPECT_EQ(calls, o.mode == nn::Mode::kLatency ? 3u : 1u);  // per image / per batch
  ASSERT_EQ(r.count, 3u);
  ASSERT_EQ(r.predictions.size(), 3u);
  const Direct d = direct(net, records, r.predictions);
  EXPECT_EQ(r.plain_predictions, d.plain_predictions);
  EXPECT_EQ(r.correct, d.correct);
  EXPECT_EQ(r.correct_plain, d.correct_plain);
  EXPECT_EQ(r.agree, d.agree);
  EXPECT_EQ(r.agree, 3u) << "the encrypted network predicts as the plaintext one on these images";
  EXPECT_LT(r.worst_excess, 1);
  EXPECT_GT(r.max_logit_error, 0);
  for (double b : r.stage_bits) EXPECT_GT(b, 4) << "every stage observed on the first evaluation";
  EXPECT_GT(r.up_bytes, 0u);
  EXPECT_GT(r.key_bytes, 0u);
  EXPECT_NEAR(r.accuracy(), static_cast<double>(d.correct) / 3, 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Modes, CkksEval, ::testing::Values(nn::Mode::kLatency, nn::Mode::kThroughput),
                         [](const auto& info) { return std::string(nn::mode_name(info.param)); });

std::shared_ptr<const hybrid::Program> hybrid_program(const nn::Network& net, const Records& calibration) {
  hybrid::ProgramOptions po;
  po.calibration = calibration.inputs;
  return std::make_shared<const hybrid::Program>(hybrid::lower(net, po));
}

TEST(HybridEval, ReportCountsMatchADirectComputation) {
  const nn::Network net = nn::lower(
      nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/mnist-cryptonets.onnx"), hybrid::lower_options());
  const Records all = mnist_records(net, 16);
  const auto prog = hybrid_program(net, all);
  Records records = all;
  records.inputs.resize(3), records.labels.resize(3);
  const HybridReport r = run_hybrid(prog, net, records);
  ASSERT_EQ(r.count, 3u);
  EXPECT_EQ(r.refused, 0u);
  const Direct d = direct(net, records, r.predictions);
  EXPECT_EQ(r.plain_predictions, d.plain_predictions);
  EXPECT_EQ(r.correct, d.correct);
  EXPECT_EQ(r.correct_plain, d.correct_plain);
  EXPECT_EQ(r.agree, d.agree);
  EXPECT_EQ(r.agree, 3u);
  EXPECT_GT(r.total.online_rounds, 0);
  EXPECT_GT(r.preprocess_bytes(), 0u);
  EXPECT_GT(r.total.online_up, 0u);
  EXPECT_GT(r.total.online_down, 0u);
}

TEST(HybridEval, ARefusedRecordIsCountedAndTheRunGoesOn) {
  const nn::Network net = nn::lower(
      nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/mnist-cryptonets.onnx"), hybrid::lower_options());
  const Records all = mnist_records(net, 16);
  const auto prog = hybrid_program(net, all);
  Records records;
  for (std::size_t i = 0; i < 3; ++i)
    records.inputs.push_back(all.inputs[i]), records.labels.push_back(all.labels[i]);
  // Far outside the ranges the scales were chosen for: values wrap and the client refuses.
  for (double& v : records.inputs[1]) v *= 1e4;
  std::size_t calls = 0;
  const HybridReport r = run_hybrid(prog, net, records, [&](std::size_t, const std::string&) { ++calls; });
  EXPECT_EQ(calls, 3u);
  ASSERT_EQ(r.count, 3u);
  EXPECT_EQ(r.refused, 1u);
  EXPECT_EQ(r.answered(), 2u);
  EXPECT_EQ(r.predictions[1], -1);
  const Direct d = direct(net, records, r.predictions);
  EXPECT_EQ(r.correct, d.correct);
  EXPECT_EQ(r.correct_plain, d.correct_plain);
  EXPECT_EQ(r.agree, d.agree);
  EXPECT_EQ(r.agree, 2u) << "the records after the refused one still run";
  EXPECT_NE(r.predictions[2], -1);
}

}  // namespace
}  // namespace veil::eval
