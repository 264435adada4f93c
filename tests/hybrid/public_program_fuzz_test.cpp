// The public-program loader under random corruption of valid programs (a dense residual
// network and a shipped convolutional model): flipped bytes, truncation, appended and
// inserted bytes, oversized counts. A load either throws std::runtime_error naming the
// public program, or accepts exactly what the bytes say: saving the loaded program gives
// the same bytes back. Never another exception, a crash or an allocation driven by a
// corrupt count (the ASan run covers this suite). Deterministic: fixed seeds.
#include <gtest/gtest.h>

#include <random>

#include "hybrid/hybrid_test_util.hpp"
#include "mutate_util.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/nn/onnx/import.hpp"

namespace veil::hybrid {
namespace {

struct Outcome {
  int accepted = 0, refused = 0;
};

void fuzz(const Bytes& valid, std::uint64_t seed, int cases, Outcome& o) {
  std::mt19937_64 g(seed);
  for (int t = 0; t < cases; ++t) {
    const Bytes b = veil::test::mutate(valid, g);
    try {
      const Program p = load_public_program(b);
      ++o.accepted;
      // Accepted: it must be exactly what the bytes say (no value silently read as another).
      ASSERT_TRUE(is_public(p)) << "case " << t;
      ASSERT_EQ(save_public_program(p), b) << "case " << t << ": accepted bytes that do not round-trip";
      (void)cost(p);
    } catch (const std::runtime_error& e) {
      ++o.refused;
      ASSERT_NE(std::string(e.what()).find("public program"), std::string::npos)
          << "case " << t << ": " << e.what();
    }
    // Anything else (std::bad_alloc, std::length_error, std::invalid_argument) escapes and
    // fails the test with its message.
  }
}

TEST(HybridPublicProgramFuzz, CorruptResidualProgramsAreRefusedOrExact) {
  const Bytes valid = save_public_program(lower(test::residual_network(21)));
  Outcome o;
  fuzz(valid, 1601, 6000, o);
  std::printf("  residual program (%zu bytes): %d refused, %d accepted (exact round trip)\n", valid.size(),
              o.refused, o.accepted);
  EXPECT_GT(o.refused, 4000);
}

TEST(HybridPublicProgramFuzz, CorruptShippedConvolutionalProgramsAreRefusedOrExact) {
  const Program full = lower(nn::lower(
      nn::load_onnx(std::string(VEIL_SOURCE_DIR) + "/models/mnist-cryptonets.onnx"), lower_options()));
  const Bytes valid = save_public_program(full);
  Outcome o;
  fuzz(valid, 1602, 4000, o);
  std::printf("  mnist-cryptonets program (%zu bytes): %d refused, %d accepted (exact round trip)\n",
              valid.size(), o.refused, o.accepted);
  EXPECT_GT(o.refused, 2500);
}

}  // namespace
}  // namespace veil::hybrid
