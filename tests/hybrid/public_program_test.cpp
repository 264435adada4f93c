// The public program: what the client of the hybrid mode learns. public_view removes every
// weight; save/load round-trips it; the client's online role computes the same with the
// public program as with the full one (it reads no weight); and hostile bytes (truncated,
// absurd counts, forward references, inconsistent sizes and scales) are refused by name.
#include <gtest/gtest.h>

#include <cmath>

#include <cstring>
#include <functional>

#include "hybrid/hybrid_test_util.hpp"
#include "mpc/mpc_test_util.hpp"
#include "veil/hybrid/online.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/nn/onnx/import.hpp"

namespace veil::hybrid {
namespace {

Program residual_program() {
  static const Program p = lower(test::residual_network(21));
  return p;
}

void expect_refused(const Bytes& bytes, const std::string& fragment) {
  try {
    load_public_program(bytes);
    ADD_FAILURE() << "accepted; expected a refusal naming '" << fragment << "'";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("public program"), std::string::npos) << e.what();
  }
}

// Saves a changed copy of the program (save does not validate) and expects the load to
// refuse it.
void expect_refused(const std::function<void(Program&)>& change, const std::string& fragment) {
  Program p = residual_program();
  change(p);
  SCOPED_TRACE(fragment);
  expect_refused(save_public_program(p), fragment);
}

TEST(HybridPublicProgram, PublicViewHoldsNoWeights) {
  const Program full = residual_program();
  ASSERT_FALSE(is_public(full));
  const Program pub = public_view(full);
  EXPECT_TRUE(is_public(pub));
  int linear = 0;
  for (std::size_t k = 0; k < pub.ops.size(); ++k) {
    const Op& a = full.ops[k];
    const Op& b = pub.ops[k];
    if (a.kind != Op::Kind::kLinear) continue;
    ++linear;
    EXPECT_TRUE(b.linear.weight.empty() && b.linear.bias.empty() && b.linear.col.empty() &&
                b.linear.row_ptr.empty());
    EXPECT_EQ(b.linear.rows, a.linear.rows);
    EXPECT_EQ(b.linear.cols, a.linear.cols);
    EXPECT_EQ(b.linear.weight_bits, a.linear.weight_bits);
    EXPECT_EQ(b.linear.truncate, a.linear.truncate);
    EXPECT_EQ(b.he_shape.out_channels, a.he_shape.out_channels);
    EXPECT_EQ(b.in_bits, a.in_bits);
    EXPECT_EQ(b.out_bits, a.out_bits);
  }
  EXPECT_EQ(linear, 3);
  // Saving the full program writes exactly its public view.
  EXPECT_EQ(save_public_program(full), save_public_program(pub));
}

TEST(HybridPublicProgram, RoundTrip) {
  const Program full = residual_program();
  const Bytes bytes = save_public_program(full);
  const Program loaded = load_public_program(bytes);
  EXPECT_TRUE(is_public(loaded));
  EXPECT_EQ(save_public_program(loaded), bytes);
  EXPECT_EQ(loaded.ops.size(), full.ops.size());
  EXPECT_EQ(loaded.prime, full.prime);
  EXPECT_EQ(loaded.input_bits, full.input_bits);
  EXPECT_EQ(loaded.output_bits(), full.output_bits());
  EXPECT_EQ(loaded.ops[3].inputs, full.ops[3].inputs);  // the residual Add
  EXPECT_EQ(loaded.ops[4].coefficients, full.ops[4].coefficients);
  // What the client derives from it is what the server derives from the full program.
  const ProgramCost a = cost(loaded), b = cost(full);
  EXPECT_EQ(a.squares, b.squares);
  EXPECT_EQ(a.triples, b.triples);
  EXPECT_EQ(a.masked_inputs, b.masked_inputs);
  EXPECT_EQ(a.rounds, b.rounds);
}

// The client's online role reads only public fields: with the loaded public program it
// reconstructs exactly what it does with the full one, from the same material.
TEST(HybridPublicProgram, ClientRoleRunsOnThePublicProgram) {
  const Program full = residual_program();
  const Program pub = load_public_program(save_public_program(full));
  mpc::MaskSource masks;
  const auto [sm, cm] = deal(full, masks);
  check_material(pub, cm, mpc::Role::kClient);
  const std::vector<double> x = {0.3,  -0.2, 0.5,  0.1, -0.7, 0.25, 0.0, 0.9,
                                 -0.4, 0.6,  -0.1, 0.2, 0.8,  -0.9, 0.4, -0.3};
  std::vector<double> with_full, with_public;
  for (const Program* client_prog : {&full, &pub}) {
    mpc::test::MailboxPair pair;
    std::vector<double>& out = client_prog == &full ? with_full : with_public;
    mpc::test::run_both([&, s = sm] { run_server(full, s, pair.server()); },
                        [&, c = cm] { out = run_client(*client_prog, c, x, pair.client()); });
  }
  ASSERT_EQ(with_full.size(), 10u);
  EXPECT_EQ(with_public, with_full);
}

TEST(HybridPublicProgram, TruncatedBytesAreRefused) {
  const Bytes bytes = save_public_program(residual_program());
  // Every proper prefix (a sample of them past the header) fails to load.
  for (std::size_t n = 0; n < bytes.size(); n += (n < 64 ? 1 : 7)) {
    SCOPED_TRACE(n);
    EXPECT_THROW(load_public_program(std::span(bytes).first(n)), std::runtime_error);
  }
  Bytes longer = bytes;
  longer.push_back(0);
  expect_refused(longer, "trailing");
}

TEST(HybridPublicProgram, HeaderAndAbsurdCountsAreRefused) {
  const Program p = residual_program();
  const Bytes bytes = save_public_program(p);
  Bytes b = bytes;
  b[0] = 'X';
  expect_refused(b, "bad magic");
  b = bytes;
  b[8] = 9;
  expect_refused(b, "format version 9");
  // The op count sits just before the first op: where a program without ops ends, but
  // for the logit bound (8 bytes) after the ops.
  Program no_ops = p;
  no_ops.ops.clear();
  const std::size_t at = save_public_program(no_ops).size() - 8 - 4;
  auto with_count = [&](std::uint32_t n) {
    Bytes c = bytes;
    std::memcpy(c.data() + at, &n, 4);
    return c;
  };
  expect_refused(with_count(0xfffffff0u), "exceed the limit");
  expect_refused(with_count(4000), "do not fit");
  expect_refused(with_count(0), "no ops");
  // Class names: a count far beyond the bytes present allocates nothing.
  Program no_classes = p;
  no_classes.classes.assign(1, "x");
  no_classes.ops.clear();
  Bytes c = save_public_program(no_classes);
  // The class count sits before the single name "x" (u32 length + 1 byte), the two primes,
  // five scales, the op count and the logit bound.
  const std::size_t classes_at = c.size() - 8 - 4 - 8 - 8 - 20 - 5 - 4;
  const std::uint32_t huge = 60000;
  std::memcpy(c.data() + classes_at, &huge, 4);
  expect_refused(c, "classes");
  expect_refused(Bytes(kMaxPublicProgramBytes + 1, 0), "exceed the limit");
  // The logits' bound, the last 8 bytes: kept by public_view, checked when loaded.
  ASSERT_GT(p.ops.back().output_bound, 0);
  EXPECT_EQ(load_public_program(bytes).ops.back().output_bound, p.ops.back().output_bound);
  for (double bad : {-1.0, std::nan(""), 0x1p61}) {
    Bytes d = bytes;
    std::memcpy(d.data() + d.size() - 8, &bad, 8);
    expect_refused(d, "logit bound");
  }
  Bytes short_bound(bytes.begin(), bytes.end() - 8);
  expect_refused(short_bound, "no logit bound");
}

TEST(HybridPublicProgram, InconsistentProgramsAreRefusedByName) {
  expect_refused([](Program& p) { p.ops[1].inputs = {2}; }, "which does not come before it");
  expect_refused([](Program& p) { p.ops[1].inputs = {1}; }, "which does not come before it");
  expect_refused([](Program& p) { p.ops[0].inputs = {-2}; }, "which does not exist");
  expect_refused([](Program& p) { p.ops[3].inputs = {0}; }, "reads 1 values");
  expect_refused([](Program& p) { p.ops[2].linear.cols += 1; }, "does not match");
  expect_refused([](Program& p) { p.ops[2].he_shape.out_channels += 1; }, "does not match the layer");
  expect_refused([](Program& p) { p.ops[2].in_bits += 1; }, "is held at");
  expect_refused([](Program& p) { p.ops[2].out_bits = 200; }, "out of range");
  expect_refused([](Program& p) { p.ops[1].poly.power_bits = p.ops[1].in_bits + 1; }, "activation scales");
  expect_refused([](Program& p) { p.ops[1].coefficients.assign(6, 0.5); }, "coefficients");
  expect_refused([](Program& p) { p.ops[0].linear.truncate = false; }, "untruncated");
  expect_refused([](Program& p) { p.prime += 2; }, "not a prime");
  expect_refused([](Program& p) { p.prime2 += 2; }, "second prime");
  expect_refused([](Program& p) { p.prime2 = p.prime; }, "second prime");
  expect_refused([](Program& p) { p.value_bits += 1; }, "truncation bound");
  expect_refused([](Program& p) { p.classes.assign(3, "c"); }, "class names");
  expect_refused([](Program& p) { p.input.c = 0; }, "bad shape");
}

// Every program the shipped models lower to loads: the validator refuses nothing real
// (residual joins, dense and convolutional stages, the scales lower() picks).
TEST(HybridPublicProgram, ShippedModelsRoundTrip) {
  for (const char* model : {"models/mnist-cryptonets.onnx", "models/mnist-delphi.onnx"}) {
    SCOPED_TRACE(model);
    const Program full =
        lower(nn::lower(nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/" + model), lower_options()));
    const Bytes bytes = save_public_program(full);
    const Program loaded = load_public_program(bytes);
    EXPECT_EQ(save_public_program(loaded), bytes);
    EXPECT_EQ(loaded.ops.size(), full.ops.size());
    EXPECT_EQ(cost(loaded).squares, cost(full).squares);
    std::printf("  %s: public program of %zu ops in %zu bytes\n", model, loaded.ops.size(), bytes.size());
  }
}

}  // namespace
}  // namespace veil::hybrid
