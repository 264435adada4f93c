// The three ways LinearTransform keeps its weight diagonals (he::PlaintextCache), and a
// mix of the NTT form and coefficients by giant-step group, give the same plaintext
// polynomials, so the same ciphertexts bit for bit, with single and double hoisting; toy
// rings (insecure parameters, opted into by test::toy_params). With single hoisting the
// NTT form takes its two input blocks' rotations one block at a time (the products added
// into the sums block by block), the other caches all blocks' at once: the same bits.
#include <gtest/gtest.h>

#include <random>

#include "ckks/test_util.hpp"
#include "math/simd_paths.hpp"
#include "veil/he/linear_transform.hpp"

namespace veil {
namespace {

using ckks::Ciphertext;

he::LinearTransformSpec random_spec(std::size_t n, int blocks, double bound, std::mt19937_64& g) {
  std::uniform_real_distribution<double> d(-bound, bound);
  std::uniform_int_distribution<int> step(0, static_cast<int>(n) - 1);
  he::LinearTransformSpec spec;
  spec.slots = n;
  spec.in_blocks = spec.out_blocks = blocks;
  for (int bo = 0; bo < blocks; ++bo)
    for (int bi = 0; bi < blocks; ++bi)
      for (int k = 0; k < 9; ++k) {
        std::vector<double> v(n);
        for (auto& x : v) x = d(g);
        spec.diagonals.push_back({bo, bi, k == 0 ? 0 : step(g), std::move(v)});
      }
  return spec;
}

// Two input blocks of n random slots in [-1, 1), encrypted at `level`.
std::vector<Ciphertext> encrypt_blocks(test::Fixture& f, std::size_t n, int level, std::mt19937_64& g) {
  std::vector<Ciphertext> x;
  for (int b = 0; b < 2; ++b) {
    std::vector<double> v(n);
    for (auto& y : v) y = std::uniform_real_distribution<double>(-1, 1)(g);
    x.push_back(f.encryptor->encrypt(f.encoder->encode(std::span<const double>(v), f.scale(), level, n)));
  }
  return x;
}

TEST(PlaintextCache, CoefficientsGiveTheSameCiphertextsAsTheNttFormAndEncodingPerUse) {
  for (const auto& [log_n, levels, dnum] : {std::tuple{10, 3, 1}, std::tuple{12, 4, 2}}) {
    test::Fixture f(test::toy_params(log_n, levels, dnum));
    const std::size_t n = f.ctx->n() / 2;
    std::mt19937_64 g(11 + log_n);
    const auto spec = random_spec(n, 2, 1.0, g);
    const int level = f.ctx->max_level();
    for (auto hoisting : {he::Hoisting::kSingle, he::Hoisting::kDouble}) {
      he::LinearTransform ntt(*f.encoder, spec, level, 8, he::PlaintextCache::kNtt, 0, hoisting);
      he::LinearTransform coeffs(*f.encoder, spec, level, 8, he::PlaintextCache::kCoefficients, 0, hoisting);
      he::LinearTransform none(*f.encoder, spec, level, 8, he::PlaintextCache::kNone, 0, hoisting);
      // Some groups in NTT form, the others as coefficients.
      he::LinearTransform mixed(*f.encoder, spec, level, 8, he::PlaintextCache::kCoefficients, 0, hoisting,
                                ntt.plaintext_bytes() / 2);
      EXPECT_GT(mixed.plaintext_bytes(), coeffs.plaintext_bytes());
      EXPECT_LE(mixed.plaintext_bytes(), ntt.plaintext_bytes() / 2 + coeffs.plaintext_bytes());
      EXPECT_LT(mixed.plaintext_bytes(), ntt.plaintext_bytes());
      ASSERT_EQ(coeffs.plaintext_cache(), he::PlaintextCache::kCoefficients);
      EXPECT_EQ(coeffs.plaintext_bytes(), spec.diagonals.size() * he::CoefficientPlaintext::bytes_at(*f.ctx));
      EXPECT_LT(coeffs.plaintext_bytes(), ntt.plaintext_bytes());
      EXPECT_EQ(none.plaintext_bytes(), 0u);
      auto gk = f.keygen->create_galois_keys(ntt.rotation_steps());
      const auto x = encrypt_blocks(f, n, level, g);
      const auto a = ntt.apply(*f.evaluator, x, gk);
      const auto b = coeffs.apply(*f.evaluator, x, gk);
      const auto c = none.apply(*f.evaluator, x, gk);
      const auto d = mixed.apply(*f.evaluator, x, gk);
      for (int k = 0; k < 2; ++k) {
        EXPECT_TRUE(a[k].data() == d[k].data()) << "N = 2^" << log_n << " block " << k;
        EXPECT_TRUE(a[k].data() == b[k].data()) << "N = 2^" << log_n << " block " << k;
        EXPECT_TRUE(a[k].data() == c[k].data()) << "N = 2^" << log_n << " block " << k;
      }
    }
  }
}

// A chain at scale 2^30 (the latency mode's CIFAR-10 chains): its 30-bit limbs are expanded
// in 32-bit words (NttTables::forward32, packed products), the 45-bit base prime in 64-bit
// ones. The same ciphertexts as the NTT form, bit for bit, at every SIMD level this CPU
// has (at the scalar level the 32-bit path is not taken).
TEST(PlaintextCache, CoefficientsInThirtyTwoBitWordsAtEverySimdLevel) {
  const auto params =
      ckks::CkksParameters::create(11, {45, 30, 30, 30}, {30, 30}, 30, 2, /*allow_insecure=*/true);
  test::Fixture f(params);
  const std::size_t n = f.ctx->n() / 2;
  const int level = f.ctx->max_level();
  math::testing_paths::for_each_simd_level([&](math::SimdLevel simd) {
    std::mt19937_64 g(5);
    const auto spec = random_spec(n, 2, 1.0, g);
    he::LinearTransform ntt(*f.encoder, spec, level, 8, he::PlaintextCache::kNtt, 0, he::Hoisting::kSingle);
    he::LinearTransform coeffs(*f.encoder, spec, level, 8, he::PlaintextCache::kCoefficients, 0,
                               he::Hoisting::kSingle);
    ASSERT_EQ(coeffs.plaintext_cache(), he::PlaintextCache::kCoefficients);
    EXPECT_EQ(f.ctx->ntt(1).forward32_native(), simd != math::SimdLevel::kScalar);
    auto gk = f.keygen->create_galois_keys(ntt.rotation_steps());
    const auto x = encrypt_blocks(f, n, level, g);
    const auto a = ntt.apply(*f.evaluator, x, gk);
    const auto b = coeffs.apply(*f.evaluator, x, gk);
    for (int k = 0; k < 2; ++k)
      EXPECT_TRUE(a[k].data() == b[k].data()) << math::simd_level_name(simd) << " block " << k;
  });
}

// Coefficients of 2^39 and more (weights of a few hundred at a 2^33 scale) do not fit the
// 40-bit form: the transform keeps the NTT form instead.
TEST(PlaintextCache, WideCoefficientsFallBackToTheNttForm) {
  const auto params = ckks::CkksParameters::create(10, {50, 40, 40}, {60}, 40, 3, /*allow_insecure=*/true);
  test::Fixture f(params);
  const std::size_t n = f.ctx->n() / 2;
  std::mt19937_64 g(3);
  const auto spec = random_spec(n, 1, 1000.0, g);
  he::LinearTransform lt(*f.encoder, spec, f.ctx->max_level(), 4, he::PlaintextCache::kCoefficients, 0,
                         he::Hoisting::kSingle);
  EXPECT_EQ(lt.plaintext_cache(), he::PlaintextCache::kNtt);
  EXPECT_EQ(lt.plaintext_bytes(),
            spec.diagonals.size() * he::PackedPlaintext::bytes_at(*f.ctx, f.ctx->max_level()));

  he::CoefficientPlaintext small(
      std::vector<std::int64_t>{-(std::int64_t{1} << 38), 5, (std::int64_t{1} << 39) - 1}, 1.0);
  EXPECT_EQ(small.bytes(), 15u);
  EXPECT_FALSE(he::CoefficientPlaintext::fits(std::vector<std::int64_t>{std::int64_t{1} << 39}));
  EXPECT_THROW(he::CoefficientPlaintext(std::vector<std::int64_t>{-(std::int64_t{1} << 39)}, 1.0),
               std::invalid_argument);
}

}  // namespace
}  // namespace veil
