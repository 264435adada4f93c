// Complex pairs in the BSGS linear transform (he/linear_transform.hpp): two groups of real
// diagonals share each plaintext as its real and imaginary parts, and each output block is
// the real part of its sum (one conjugation). Against the real map and the plain one, on
// toy rings (insecure parameters, opted into explicitly by test::toy_params), over full
// and sparse slots, every cache (NTT form, coefficients, none) and both hoistings that pair.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "ckks/test_util.hpp"
#include "he/he_test_util.hpp"
#include "veil/he/linear_transform.hpp"

namespace veil {
namespace {

using ckks::Ciphertext;
using test::apply_plain;
using test::max_error;
using test::random_vector;

struct Case {
  int log_n, out_blocks, giant;
  std::size_t slots;  // 0: N / 2
  he::PlaintextCache cache;
  he::Hoisting hoisting;
  bool fold;
};

class ComplexPairsTest : public ::testing::TestWithParam<Case> {};

TEST_P(ComplexPairsTest, MatchesTheRealMapAndThePlainOne) {
  const Case c = GetParam();
  test::Fixture f(test::toy_params(c.log_n, 3, 2));
  const std::size_t n = c.slots ? c.slots : f.ctx->n() / 2;
  std::mt19937_64 g(91 + c.log_n + c.out_blocks + c.giant);
  he::LinearTransformSpec spec;
  spec.slots = n;
  spec.in_blocks = 2;
  spec.out_blocks = c.out_blocks;
  // As a convolution's: every block pair has diagonals at the same offsets, windows of
  // eight consecutive ones (aligned to 16), so groups at one giant step read the same
  // rotations; and a few random offsets, which pair with little overlap.
  std::uniform_int_distribution<int> step(0, static_cast<int>(n) - 1);
  std::vector<int> offsets;
  for (int w = 0; w < 3; ++w) {
    const int start = step(g) / 16 * 16;
    for (int j = 0; j < 8; ++j) offsets.push_back((start + j) % static_cast<int>(n));
  }
  for (int bo = 0; bo < c.out_blocks; ++bo)
    for (int bi = 0; bi < 2; ++bi) {
      for (int d : offsets) spec.diagonals.push_back({bo, bi, d, random_vector(n, g)});
      spec.diagonals.push_back({bo, bi, step(g), random_vector(n, g)});
    }
  for (int bo = 0; bo < c.out_blocks; ++bo) spec.bias.push_back(random_vector(n, g));
  if (c.fold) spec.fold_steps = {static_cast<int>(n / 4), static_cast<int>(n / 2)};
  const std::vector<std::vector<double>> in = {random_vector(n, g), random_vector(n, g)};
  const auto want = apply_plain(spec, in);

  const int level = f.ctx->max_level();
  he::LinearTransform real(*f.encoder, spec, level, c.giant, c.cache, 0, c.hoisting);
  he::LinearTransform paired(*f.encoder, spec, level, c.giant, c.cache, 0, c.hoisting, 0, true);
  ASSERT_FALSE(real.needs_conjugation());
  ASSERT_TRUE(paired.needs_conjugation());
  ASSERT_EQ(real.rotation_steps(), paired.rotation_steps());
  // What memory budgets count on before the map is built.
  EXPECT_EQ(he::LinearTransform::paired_plaintexts(spec, paired.giant_step()) *
                he::PackedPlaintext::bytes_at(*f.ctx, level),
            c.cache == he::PlaintextCache::kNtt
                ? paired.plaintext_bytes()
                : he::LinearTransform(*f.encoder, spec, level, c.giant, he::PlaintextCache::kNtt, 0,
                                      c.hoisting, 0, true)
                      .plaintext_bytes());
  if (c.cache == he::PlaintextCache::kCoefficients) {
    // One set of coefficients per pair, as one per term in the real map.
    EXPECT_EQ(paired.plaintext_bytes(), he::LinearTransform::paired_plaintexts(spec, paired.giant_step()) *
                                            he::CoefficientPlaintext::bytes_at(*f.ctx));
    EXPECT_LT(paired.plaintext_bytes(), real.plaintext_bytes());
  }
  if (c.cache == he::PlaintextCache::kNtt) {
    // A plaintext per pair of terms that read the same rotation: with the windows aligned
    // to the giant step, a half to two thirds (a block left over pairs its own giant steps);
    // never more than the real map's.
    EXPECT_LE(paired.plaintext_bytes(), real.plaintext_bytes());
    EXPECT_GE(paired.plaintext_bytes(), real.plaintext_bytes() / 2);
    if (c.giant == 8 || c.giant == 16) {
      EXPECT_LT(paired.plaintext_bytes(), real.plaintext_bytes() * 0.7);
    }
  }
  const auto gk = f.keygen->create_galois_keys(real.rotation_steps(), /*conjugate=*/true);
  const std::vector<Ciphertext> x = {
      f.encryptor->encrypt(f.encoder->encode(std::span<const double>(in[0]), f.scale(), level, n)),
      f.encryptor->encrypt(f.encoder->encode(std::span<const double>(in[1]), f.scale(), level, n))};
  const auto a = real.apply(*f.evaluator, x, gk);
  const auto b = paired.apply(*f.evaluator, x, gk);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    const std::string where = "N = 2^" + std::to_string(c.log_n) + ", " + std::to_string(n) +
                              " slots, block " + std::to_string(k) + ", giant " +
                              std::to_string(real.giant_step());
    EXPECT_EQ(b[k].level(), a[k].level()) << where;
    EXPECT_NEAR(b[k].scale() / a[k].scale(), 1.0, 1e-12) << where;
    const auto da = f.encoder->decode(f.decryptor->decrypt(a[k]));
    const auto db = f.encoder->decode(f.decryptor->decrypt(b[k]));
    std::vector<double> ra(da.size()), rb(db.size());
    double imag = 0;
    for (std::size_t s = 0; s < db.size(); ++s) {
      ra[s] = da[s].real(), rb[s] = db[s].real();
      imag = std::max(imag, std::abs(db[s].imag()));
    }
    EXPECT_GT(-std::log2(max_error(ra, want[k])), 17) << where;
    EXPECT_GT(-std::log2(max_error(rb, want[k])), 17) << where;
    EXPECT_GT(-std::log2(max_error(ra, rb)), 16) << where;
    // The real part taken: no other block's values are left in the imaginary part.
    EXPECT_GT(-std::log2(imag), 17) << where;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Maps, ComplexPairsTest,
    ::testing::Values(Case{11, 2, 0, 0, he::PlaintextCache::kNtt, he::Hoisting::kSingle, false},
                      Case{11, 3, 0, 0, he::PlaintextCache::kNtt, he::Hoisting::kLazyGiant, false},
                      Case{11, 3, 16, 0, he::PlaintextCache::kNtt, he::Hoisting::kLazyGiant, false},
                      Case{11, 3, 0, 0, he::PlaintextCache::kNone, he::Hoisting::kLazyGiant, false},
                      Case{12, 1, 8, 0, he::PlaintextCache::kNtt, he::Hoisting::kLazyGiant, false},
                      Case{12, 1, 16, 256, he::PlaintextCache::kNtt, he::Hoisting::kSingle, true},
                      Case{11, 4, 37, 128, he::PlaintextCache::kNone, he::Hoisting::kSingle, false},
                      Case{11, 3, 0, 0, he::PlaintextCache::kCoefficients, he::Hoisting::kLazyGiant, false},
                      Case{12, 1, 16, 256, he::PlaintextCache::kCoefficients, he::Hoisting::kSingle, true}));

// Double-hoisted maps (diagonals over Q * P) are not paired: the map stays real.
TEST(ComplexPairs, StaysRealWithDoubleHoisting) {
  test::Fixture f(test::toy_params(11, 3, 2));
  const std::size_t n = f.ctx->n() / 2;
  std::mt19937_64 g(3);
  he::LinearTransformSpec spec;
  spec.slots = n;
  spec.out_blocks = 2;
  for (int bo = 0; bo < 2; ++bo)
    for (int d : {0, 1, 5, 9}) spec.diagonals.push_back({bo, 0, d, random_vector(n, g)});
  const int level = f.ctx->max_level();
  he::LinearTransform dbl(*f.encoder, spec, level, 4, he::PlaintextCache::kNtt, 0, he::Hoisting::kDouble, 0,
                          true);
  EXPECT_FALSE(dbl.needs_conjugation());
}

}  // namespace
}  // namespace veil
