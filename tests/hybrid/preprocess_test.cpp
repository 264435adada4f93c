// Preprocessing under the exact scheme, both roles in one process over the in-memory
// channel pair: the material must be what the ideal functionality (deal()) would hand
// out: W r - s and s adding up to W r, squares and triples that multiply out, fresh masks
// each run, and the online stage on top of it must reproduce the clear computation.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>

#include "hybrid/hybrid_test_util.hpp"
#include "mpc/mpc_test_util.hpp"
#include "veil/bfv/params.hpp"
#include "veil/hybrid/linear.hpp"
#include "veil/hybrid/preprocess.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/mpc/channel_exchange.hpp"
#include "veil/net/memory_channel.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::hybrid {
namespace {

struct Pair {
  std::unique_ptr<net::Channel> server, client;
  Pair() { std::tie(server, client) = net::make_memory_pair(); }
};

struct RunMaterial {
  Material server, client;
};

// Keys, then `runs` preprocessing runs; the server keeps cache_bytes of kernel blocks.
std::vector<RunMaterial> preprocess(const Program& prog, int runs, Pair& ch,
                                    std::size_t cache_bytes = std::numeric_limits<std::size_t>::max()) {
  const HeParameters hp = he_parameters(prog);
  auto model = std::make_shared<const ServerModel>(std::make_shared<const Program>(prog), hp, cache_bytes);
  PreprocessServer server(model);
  PreprocessClient client(prog, hp);
  std::vector<RunMaterial> out(static_cast<std::size_t>(runs));
  mpc::test::run_both(
      [&] {
        server.receive_keys(*ch.server);
        for (auto& r : out) r.server = server.run(*ch.server);
      },
      [&] {
        client.send_keys(*ch.client);
        for (auto& r : out) r.client = client.run(*ch.client);
      });
  return out;
}

// Every linear op's material is the ideal functionality's: (W r - s) + s = W r.
void expect_linear_material(const Program& prog, const RunMaterial& r) {
  const mpc::Field f = prog.field();
  for (std::size_t k = 0; k < prog.ops.size(); ++k) {
    if (prog.ops[k].kind != Op::Kind::kLinear) continue;
    auto sum = r.client.offset[k];
    mpc::add_inplace(f, sum, r.server.offset[k]);
    EXPECT_EQ(sum, apply_reference(f, prog.ops[k].linear, r.client.mask[k], false)) << prog.ops[k].name;
  }
}

// Scales chosen on calibration inputs, as the commands do.
const Program& residual_program() {
  static const Program prog = [] {
    std::mt19937_64 rng(5);
    ProgramOptions po;
    po.calibration = test::random_inputs(rng, 40);
    return lower(test::residual_network(21), po);
  }();
  return prog;
}

TEST(HybridPreprocess, ParametersAreSecureAndShareTheField) {
  const Program& prog = residual_program();
  const HeParameters hp = he_parameters(prog);
  ASSERT_EQ(hp.residues(), 2);
  for (int r = 0; r < 2; ++r)
    for (const auto& ctx : {hp.linear_of(r), hp.beaver_of(r)}) {
      EXPECT_TRUE(ctx->params().is_128_bit_secure());
      EXPECT_TRUE(ctx->params().validate().empty()) << ctx->params().validate();
      EXPECT_EQ(ctx->t(), prog.primes()[static_cast<std::size_t>(r)]);
      EXPECT_GE(ctx->params().flood_bits, 40);
    }
  EXPECT_TRUE(hp.beaver->batching());
  EXPECT_TRUE(hp.beaver2->batching());
  for (const auto& ctx : {hp.linear, hp.beaver, hp.linear2, hp.beaver2}) {
    const auto nb = bfv::noise_bounds(ctx->params());
    std::printf("  %s\n    evaluation noise <= 2^%.1f, flood 2^%d, response noise <= 2^%.1f\n",
                ctx->params().describe().c_str(), static_cast<double>(std::log2(nb.evaluation)),
                nb.flood_log2, static_cast<double>(std::log2(nb.after_switch)));
    // The flood covers the evaluation noise 2^40 times over.
    EXPECT_GE(nb.flood_log2, std::log2(static_cast<double>(nb.evaluation)) + 40);
  }
}

TEST(HybridPreprocess, MaterialMatchesTheIdealFunctionality) {
  const Program& prog = residual_program();
  const mpc::Field f = prog.field();
  ASSERT_EQ(f.words(), 2);  // the default two-prime ring: each residue from its own run
  Pair ch;
  const auto runs = preprocess(prog, 2, ch);
  for (const RunMaterial& r : runs) {
    check_material(prog, r.server, mpc::Role::kServer);
    check_material(prog, r.client, mpc::Role::kClient);
    expect_linear_material(prog, r);
    int bad = 0;
    mpc::for_each_word(f, r.client.squares.size(), [&](std::size_t i, const math::Modulus& t) {
      const u64 a = t.add(r.client.squares.a[i], r.server.squares.a[i]);
      bad += t.add(r.client.squares.a2[i], r.server.squares.a2[i]) != t.mul(a, a);
    });
    mpc::for_each_word(f, r.client.triples.size(), [&](std::size_t i, const math::Modulus& t) {
      const u64 a = t.add(r.client.triples.a[i], r.server.triples.a[i]);
      const u64 b = t.add(r.client.triples.b[i], r.server.triples.b[i]);
      bad += t.add(r.client.triples.c[i], r.server.triples.c[i]) != t.mul(a, b);
    });
    EXPECT_EQ(bad, 0) << "Beaver words that are not squares or products";
  }
  // Fresh masks every run: material is never reused.
  EXPECT_NE(runs[0].client.mask[0], runs[1].client.mask[0]);
  EXPECT_NE(runs[0].server.offset[0], runs[1].server.offset[0]);
  EXPECT_NE(runs[0].client.squares.a, runs[1].client.squares.a);
}

// A server whose budget keeps only some kernel blocks in NTT form makes the others at
// each use: they must be the very blocks an unlimited server keeps, and the material the
// ideal functionality's.
TEST(HybridPreprocess, BlocksBeyondTheBudgetAreMadeAtEachUse) {
  const Program& prog = residual_program();
  const HeParameters hp = he_parameters(prog);
  const ServerModel all(prog, hp);
  ASSERT_EQ(all.blocks_per_use(), 0u);
  const auto shared = std::make_shared<const Program>(prog);
  const ServerModel some(shared, hp, all.all_ready_bytes() / 2), none(shared, hp, 0);
  EXPECT_EQ(some.all_ready_bytes(), all.all_ready_bytes());
  EXPECT_GT(some.blocks_per_use(), 0u);
  EXPECT_LT(some.memory_bytes(), all.memory_bytes());
  std::size_t blocks = 0, compared = 0;
  for (int r = 0; r < hp.residues(); ++r)
    for (std::size_t l = 0; l < all.layers(r).size(); ++l) {
      const auto& layer = all.layers(r)[l];
      EXPECT_FALSE(none.layers(r)[l].all_ready);
      for (int o = 0; o < layer.layout.output_blocks(); ++o)
        for (std::size_t j = 0; j < layer.inputs[static_cast<std::size_t>(o)].size(); ++j) {
          const int b = layer.inputs[static_cast<std::size_t>(o)][j];
          const auto& kept = layer.kernel[static_cast<std::size_t>(o)][j];
          ++blocks;
          for (const ServerModel* m : {&some, &none}) {
            const bfv::PreparedPlaintext made = m->prepare_block(r, l, o, j);
            ASSERT_EQ(made.param_id(), kept.param_id());
            ASSERT_EQ(made.level(), kept.level());
            const std::size_t words = kept.n() * kept.num_limbs();
            EXPECT_TRUE(std::equal(made.limb(0), made.limb(0) + words, kept.limb(0)))
                << "layer " << l << " block (" << o << ", " << b << ") of residue " << r;
            ++compared;
          }
        }
    }
  EXPECT_EQ(none.blocks_per_use(), blocks);
  EXPECT_EQ(compared, 2 * blocks);
  // A program without the kernels lowering kept (Op::conv_kernel) recovers them from its
  // weights: the same blocks.
  Program bare = prog;
  for (Op& op : bare.ops) op.conv_kernel.clear();
  const ServerModel recovered(bare, hp);
  for (int r = 0; r < hp.residues(); ++r)
    for (std::size_t l = 0; l < all.layers(r).size(); ++l)
      for (std::size_t o = 0; o < all.layers(r)[l].kernel.size(); ++o)
        for (std::size_t j = 0; j < all.layers(r)[l].kernel[o].size(); ++j) {
          const auto& want = all.layers(r)[l].kernel[o][j];
          const auto& got = recovered.layers(r)[l].kernel[o][j];
          const std::size_t words = want.n() * want.num_limbs();
          ASSERT_EQ(got.n() * got.num_limbs(), words);
          EXPECT_TRUE(std::equal(got.limb(0), got.limb(0) + words, want.limb(0))) << "layer " << l;
        }
  // The plan's account of the same.
  const PreprocessCost cost = preprocess_cost(prog, hp);
  EXPECT_EQ(cost.products, blocks);
  EXPECT_EQ(cost.block_bytes, all.all_ready_bytes());
  EXPECT_EQ(cost.block_bytes, all.memory_bytes());
  // The whole exchange with nothing kept: (W r - s) + s = W r.
  Pair ch;
  expect_linear_material(prog, preprocess(prog, 1, ch, 0)[0]);
}

// A per-channel layer is published as depthwise and served with the blocks that have
// channels in common only; the material is still the ideal functionality's.
TEST(HybridPreprocess, ADepthwiseLayerReadsOnlyItsChannelsBlocks) {
  std::mt19937_64 rng(3);
  ProgramOptions po;
  std::uniform_real_distribution<double> u(-1, 1);
  for (int i = 0; i < 8; ++i) {
    po.calibration.emplace_back(8 * 32 * 32);
    for (double& v : po.calibration.back()) v = u(rng);
  }
  const Program prog = lower(test::depthwise_network(4), po);
  ASSERT_EQ(prog.ops[0].kind, Op::Kind::kLinear);
  ASSERT_TRUE(prog.ops[0].he_shape.depthwise);
  EXPECT_FALSE(prog.ops.back().he_shape.depthwise);
  EXPECT_TRUE(load_public_program(save_public_program(prog)).ops[0].he_shape.depthwise);
  const HeParameters hp = he_parameters(prog);
  const ServerModel model(prog, hp);
  const auto& layer = model.layers(0)[0];
  std::size_t used = 0;
  for (const auto& in : layer.inputs) used += in.size();
  ASSERT_GT(layer.layout.input_blocks() * layer.layout.output_blocks(), 1);
  EXPECT_EQ(used,
            static_cast<std::size_t>(std::max(layer.layout.input_blocks(), layer.layout.output_blocks())));
  Pair ch;
  expect_linear_material(prog, preprocess(prog, 1, ch)[0]);
}

TEST(HybridPreprocess, OnlineStageOnRealMaterialMatchesTheClearComputation) {
  const nn::Network net = test::residual_network(21);
  const Program& prog = residual_program();
  Pair ch;
  auto runs = preprocess(prog, 1, ch);
  const std::vector<double> x = {0.1,  -0.3, 0.5, 0.7,  -0.9, 0.2,  0.0, 0.4,
                                 -0.6, 0.8,  0.3, -0.1, 0.9,  -0.5, 0.6, -0.2};
  const mpc::Field f = prog.field();
  mpc::ChannelExchange es(*ch.server, mpc::Role::kServer, f, static_cast<std::uint16_t>(Message::kShares));
  mpc::ChannelExchange ec(*ch.client, mpc::Role::kClient, f, static_cast<std::uint16_t>(Message::kShares));
  std::vector<double> got;
  mpc::test::run_both([&] { run_server(prog, std::move(runs[0].server), es); },
                      [&] { got = run_client(prog, std::move(runs[0].client), x, ec); });
  const auto fixed = evaluate_fixed(prog, x);
  const auto plain = nn::evaluate(net, x);
  ASSERT_EQ(got.size(), plain.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], fixed[i], 0.05) << i;
    EXPECT_NEAR(got[i], plain[i], 0.3) << i;
  }
}

TEST(HybridPreprocess, ServerRefusesAMalformedRequestByName) {
  const Program& prog = residual_program();
  const HeParameters hp = he_parameters(prog);
  auto model = std::make_shared<const ServerModel>(prog, hp);
  Pair ch;
  PreprocessServer server(model);
  PreprocessClient client(prog, hp);
  std::string error;
  mpc::test::run_both(
      [&] {
        try {
          server.receive_keys(*ch.server);
          server.run(*ch.server);
        } catch (const std::exception& e) {
          error = e.what();
        }
      },
      [&] {
        client.send_keys(*ch.client);
        // A request with no ciphertexts where the first layer needs some.
        ch.client->send(static_cast<std::uint16_t>(Message::kLinearRequest), std::vector<std::uint8_t>(4, 0));
      });
  EXPECT_NE(error.find("preprocessing request: 0 ciphertexts, expected"), std::string::npos) << error;
}

// The whole hybrid inference of the shipped MNIST models on sample images: preprocessing
// under the exact scheme, then the online stage, over one channel pair.
TEST(HybridPreprocess, ShippedMnistModelsEndToEnd) {
  for (const char* model : {"models/mnist-cryptonets.onnx", "models/mnist-delphi.onnx"}) {
    SCOPED_TRACE(model);
    const test::MnistSamples samples = test::mnist_samples(model);
    ASSERT_EQ(samples.images.size(), 16u);
    const nn::Network& net = samples.net;
    auto image = [&](int t) { return samples.images[static_cast<std::size_t>(t)]; };
    ProgramOptions po;
    for (int t = 0; t < 10; ++t) po.calibration.push_back(image(t));
    const Program prog = lower(net, po);
    const int images = 2;
    Pair ch;
    auto runs = preprocess(prog, images, ch);
    const mpc::Field f = prog.field();
    mpc::ChannelExchange es(*ch.server, mpc::Role::kServer, f, static_cast<std::uint16_t>(Message::kShares));
    mpc::ChannelExchange ec(*ch.client, mpc::Role::kClient, f, static_cast<std::uint16_t>(Message::kShares));
    for (int i = 0; i < images; ++i) {
      const auto x = image(10 + i);
      std::vector<double> got;
      mpc::test::run_both(
          [&] { run_server(prog, std::move(runs[static_cast<std::size_t>(i)].server), es); },
          [&] { got = run_client(prog, std::move(runs[static_cast<std::size_t>(i)].client), x, ec); });
      const auto plain = nn::evaluate(net, x);
      const auto argmax = [](const std::vector<double>& v) {
        return std::max_element(v.begin(), v.end()) - v.begin();
      };
      EXPECT_EQ(argmax(got), argmax(plain)) << "image " << 10 + i;
      for (std::size_t j = 0; j < got.size(); ++j) EXPECT_NEAR(got[j], plain[j], 1.0) << "image " << 10 + i;
    }
    std::printf("  %s: %d inferences, client sent %.2f MB, received %.2f MB\n", model, images,
                ch.client->bytes_sent() / 1e6, ch.client->bytes_received() / 1e6);
  }
}

}  // namespace
}  // namespace veil::hybrid
