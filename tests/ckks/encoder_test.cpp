#include "veil/ckks/encoder.hpp"

#include "test_util.hpp"

namespace veil::ckks {
namespace {

using test::precision_bits;
using test::random_complex;

TEST(Encoder, SpecialFftEvaluatesAtPowersOfFive) {
  auto ctx = CkksContext::create(test::toy_params(6, 1));
  CkksEncoder enc(ctx);
  const std::size_t n = ctx->n();
  for (std::size_t slots : {1, 2, 8, 32}) {
    auto w = random_complex(slots, slots);
    auto got = w;
    enc.special_fft(got);
    // z_j = sum_k w_k xi^(k 5^j), xi = exp(2 pi i / 4 slots).
    std::vector<Complex> want(slots);
    std::size_t g = 1;
    for (std::size_t j = 0; j < slots; ++j) {
      for (std::size_t k = 0; k < slots; ++k) {
        const double ang = 2 * M_PI * static_cast<double>((k * g) % (4 * slots)) / (4.0 * slots);
        want[j] += w[k] * Complex(std::cos(ang), std::sin(ang));
      }
      g = (g * 5) % (2 * n);
    }
    EXPECT_GT(precision_bits(got, want), 40) << "slots=" << slots;
    enc.special_ifft(got);
    EXPECT_GT(precision_bits(got, w), 40);
  }
}

TEST(Encoder, SlotsAreEvaluationsOfThePlaintextPolynomial) {
  // Decode must agree with the definition: slot j = m(zeta^(5^j)), zeta = exp(i pi / N).
  auto ctx = CkksContext::create(test::toy_params(5, 1));
  CkksEncoder enc(ctx);
  const std::size_t n = ctx->n();
  const double scale = std::ldexp(1.0, 30);
  auto v = random_complex(n / 2, 3);
  Plaintext pt = enc.encode(v, scale, 0);
  Plaintext coef = pt;
  ctx->ntt(0).inverse(coef.limb(0));
  std::size_t g = 1;
  for (std::size_t j = 0; j < n / 2; ++j) {
    Complex z = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double c = static_cast<double>(ctx->modulus(0).centered(coef.limb(0)[k])) / scale;
      const double ang = M_PI * static_cast<double>((k * g) % (2 * n)) / static_cast<double>(n);
      z += c * Complex(std::cos(ang), std::sin(ang));
    }
    EXPECT_LT(std::abs(z - v[j]), 1e-6) << "slot " << j;
    g = (g * 5) % (2 * n);
  }
}

TEST(Encoder, RoundTripFullAndSparseSlots) {
  auto ctx = CkksContext::create(test::toy_params(11, 3));
  CkksEncoder enc(ctx);
  for (std::size_t slots : {1, 4, 64, 1024}) {
    auto v = random_complex(slots, slots, 10.0);
    for (int level : {0, 3}) {
      auto back = enc.decode(enc.encode(v, std::ldexp(1.0, 40), level, slots));
      ASSERT_EQ(back.size(), slots);
      EXPECT_GT(precision_bits(back, v), 25) << "slots=" << slots << " level=" << level;
    }
  }
}

TEST(Encoder, LargeScalesAndValuesUseExactReduction) {
  // scale 2^100 with values ~2^10: coefficients ~2^110, beyond int64.
  auto ctx = CkksContext::create(test::toy_params(10, 3));
  CkksEncoder enc(ctx);
  auto v = random_complex(512, 8, 1000.0);
  auto back = enc.decode(enc.encode(v, std::ldexp(1.0, 100), 3));
  EXPECT_GT(precision_bits(back, v), 30);
}

TEST(Encoder, ConstantFillsEverySlot) {
  auto ctx = CkksContext::create(test::toy_params(10, 2));
  CkksEncoder enc(ctx);
  auto back = enc.decode(enc.encode_constant(Complex(1.25, -0.5), std::ldexp(1.0, 40), 2));
  std::vector<Complex> want(back.size(), Complex(1.25, -0.5));
  EXPECT_GT(precision_bits(back, want), 30);
}

TEST(Encoder, RejectsBadArguments) {
  auto ctx = CkksContext::create(test::toy_params(10, 2));
  CkksEncoder enc(ctx);
  std::vector<double> v(600, 1.0);
  EXPECT_THROW(enc.encode(v, 1e12, 0, 512), std::invalid_argument);   // too many values
  EXPECT_THROW(enc.encode(v, 1e12, 0, 1000), std::invalid_argument);  // not a power of two
  EXPECT_THROW(enc.encode(v, 1e12, 7), std::invalid_argument);        // level too high
  std::vector<double> bad = {std::nan("")};
  EXPECT_THROW(enc.encode(bad, 1e12, 0), std::invalid_argument);
}

}  // namespace
}  // namespace veil::ckks
