// The online stage with both roles in one process (two threads, in-memory exchange), the
// preprocessing material from the ideal functionality: the client's reconstructed logits
// against the clear fixed-point reference and the double network, rounds against the
// plan, and the material refused a second time.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <random>

#include "hybrid/hybrid_test_util.hpp"
#include "mpc/mpc_test_util.hpp"
#include "veil/hybrid/online.hpp"
#include "veil/mpc/channel_exchange.hpp"
#include "veil/net/memory_channel.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::hybrid {
namespace {

using mpc::test::MailboxPair;
using mpc::test::run_both;

std::vector<double> run_pair(const Program& prog, const std::vector<double>& x, mpc::MaskSource& masks,
                             OnlineStats* client_stats = nullptr, OnlineStats* server_stats = nullptr) {
  auto [sm, cm] = deal(prog, masks);
  MailboxPair pair;
  std::vector<double> logits;
  run_both([&] { run_server(prog, std::move(sm), pair.server(), server_stats); },
           [&] { logits = run_client(prog, std::move(cm), x, pair.client(), client_stats); });
  return logits;
}

TEST(HybridOnline, ResidualNetworkMatchesTheClearComputation) {
  const auto seed = mpc::test::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const nn::Network net = test::residual_network(seed);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 50);
  const Program prog = lower(net, po);
  SCOPED_TRACE(describe(prog));
  mpc::MaskSource masks;
  for (int t = 0; t < 5; ++t) {
    std::vector<double> x(16);
    for (auto& v : x) v = u(rng);
    OnlineStats cs, ss;
    const auto got = run_pair(prog, x, masks, &cs, &ss);
    const auto fixed = evaluate_fixed(prog, x);
    const auto plain = nn::evaluate(net, x);
    ASSERT_EQ(got.size(), fixed.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      // Local truncation is off by at most one unit per truncation; through the layers
      // after it, a few units of 2^-f.
      EXPECT_NEAR(got[i], fixed[i], 0.05) << "output " << i;
      EXPECT_NEAR(got[i], plain[i], 0.15) << "output " << i;
    }
    EXPECT_EQ(cs.rounds, cost(prog).rounds);
    EXPECT_EQ(ss.rounds, cost(prog).rounds);
    EXPECT_EQ(cs.elements_sent, ss.elements_received);
  }
}

TEST(HybridOnline, InputsFarOutsideTheScalesAreRefusedNotAnsweredWrongly) {
  // Scales chosen for inputs in [-1, 1]; inputs up to 4096 times larger make values wrap
  // around p/2. Every run either agrees with the double network or is refused by name.
  const nn::Network net = test::residual_network(12);
  std::mt19937_64 rng(12);
  ProgramOptions po;
  po.calibration = test::random_inputs(rng, 50);
  const Program prog = lower(net, po);
  mpc::MaskSource masks;
  std::uniform_real_distribution<double> u(-1, 1);
  int refused = 0, answered = 0;
  for (double gain : {1.0, 8.0, 64.0, 512.0, 4096.0}) {
    for (int t = 0; t < 3; ++t) {
      std::vector<double> x(16);
      for (auto& v : x) v = gain * u(rng);
      std::vector<double> got;
      try {
        got = run_pair(prog, x, masks);
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("out of the fixed-point range"), std::string::npos) << e.what();
        ++refused;
        continue;
      }
      ++answered;
      const auto plain = nn::evaluate(net, x);
      double scale = 1;
      for (double v : plain) scale = std::max(scale, std::abs(v));
      for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], plain[i], 0.05 * scale) << "gain " << gain << " output " << i;
    }
  }
  // Both outcomes occur: small gains are answered, the largest are refused.
  EXPECT_GT(answered, 0);
  EXPECT_GT(refused, 0);
}

TEST(HybridOnline, MaterialIsUsedExactlyOnce) {
  const Program prog = lower(test::residual_network(9));
  mpc::MaskSource masks;
  auto [sm, cm] = deal(prog, masks);
  Material spent = std::move(cm);
  MailboxPair pair;
  std::vector<double> x(16, 0.25);
  run_both([&] { run_server(prog, std::move(sm), pair.server()); },
           [&] { run_client(prog, std::move(spent), x, pair.client()); });
  // `spent` and `sm` were moved into the runs: a second run finds no material.
  MailboxPair again;
  try {
    run_client(prog, std::move(spent), x, again.client());
    FAIL() << "a second run with the same material was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("already used"), std::string::npos) << e.what();
  }
}

TEST(HybridOnline, MaterialOfTheOtherRoleOrAnotherModelIsRefused) {
  const Program prog = lower(test::residual_network(10));
  const Program other = lower(test::residual_network(11));
  mpc::MaskSource masks;
  auto [sm, cm] = deal(prog, masks);
  MailboxPair pair;
  EXPECT_THROW(run_client(prog, sm, std::vector<double>(16, 0.0), pair.client()), std::invalid_argument);
  nn::Network small = test::residual_network(10);
  small.stages.pop_back();
  const Program shorter = lower(small);
  EXPECT_THROW(check_material(shorter, cm, mpc::Role::kClient), std::invalid_argument);
  (void)other;
}

TEST(HybridOnline, ServerSeesOnlyUniformMaskedValues) {
  // The server's view of the client's first message is x - r with r uniform: two very
  // different inputs give messages with the same (uniform) distribution. A coarse check:
  // the top bit of the masked values is set about half the time for a constant input.
  const Program prog = lower(test::residual_network(12));
  const mpc::Field field = prog.field();
  mpc::MaskSource masks;
  int high = 0, total = 0;
  for (int t = 0; t < 40; ++t) {
    auto [sm, cm] = deal(prog, masks);
    std::vector<u64> x = field.encode(std::vector<double>(16, 0.5), prog.input_bits);
    mpc::sub_inplace(field, x, cm.mask[0]);
    for (std::size_t i = 0; i < x.size(); ++i)
      high += x[i] >= field.p(static_cast<int>(i % static_cast<std::size_t>(field.words()))) / 2, ++total;
  }
  EXPECT_NEAR(static_cast<double>(high) / total, 0.5, 0.08);
}

// The shipped MNIST models on the shipped sample images, over a real channel pair (the
// framing the TCP transport uses): the same class as the plain network, and logits within
// the fixed-point error (values at 2^-7 for these models).
TEST(HybridOnline, ShippedMnistModelsAgreeWithThePlainNetwork) {
  for (const char* model : {"models/mnist-cryptonets.onnx", "models/mnist-delphi.onnx"}) {
    SCOPED_TRACE(model);
    const test::MnistSamples samples = test::mnist_samples(model);
    ASSERT_EQ(samples.images.size(), 16u);
    const nn::Network& net = samples.net;
    auto image = [&](int t) { return samples.images[static_cast<std::size_t>(t)]; };
    // Images 0-9 choose the scales; 10-15 are evaluated.
    ProgramOptions po;
    for (int t = 0; t < 10; ++t) po.calibration.push_back(image(t));
    const Program prog = lower(net, po);
    SCOPED_TRACE(describe(prog));
    std::printf("%s", describe(prog).c_str());
    mpc::MaskSource masks;
    for (int t = 10; t < 16; ++t) {
      const auto x = image(t);
      auto [sm, cm] = deal(prog, masks);
      auto [a, b] = net::make_memory_pair();
      const mpc::Field field = prog.field();
      mpc::ChannelExchange se(*a, mpc::Role::kServer, field, 40), ce(*b, mpc::Role::kClient, field, 40);
      std::vector<double> got;
      mpc::test::run_both([&] { run_server(prog, std::move(sm), se); },
                          [&] { got = run_client(prog, std::move(cm), x, ce); });
      const auto plain = nn::evaluate(net, x);
      const auto argmax = [](const std::vector<double>& v) {
        return std::max_element(v.begin(), v.end()) - v.begin();
      };
      EXPECT_EQ(argmax(got), argmax(plain)) << "image " << t;
      double worst = 0, top = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        worst = std::max(worst, std::fabs(got[i] - plain[i]));
        top = std::max(top, std::fabs(plain[i]));
      }
      const auto fixed = evaluate_fixed(prog, x);
      double fworst = 0;
      for (std::size_t i = 0; i < got.size(); ++i) fworst = std::max(fworst, std::fabs(fixed[i] - plain[i]));
      std::printf("  %s image %d: max |logit| %.2f, max error %.3f (fixed-point reference %.3f)\n", model, t,
                  top, worst, fworst);
      EXPECT_LT(worst, 0.1 * top) << "image " << t;
    }
  }
}

}  // namespace
}  // namespace veil::hybrid
