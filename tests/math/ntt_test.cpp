#include "veil/math/ntt.hpp"

#include <gtest/gtest.h>

#include <random>

#include "veil/math/cpu.hpp"
#include "veil/math/primes.hpp"

namespace veil::math {
namespace {

// Schoolbook product in Z_q[X]/(X^N + 1).
std::vector<u64> naive_negacyclic(const std::vector<u64>& a, const std::vector<u64>& b, const Modulus& q) {
  const std::size_t n = a.size();
  std::vector<u64> c(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      const u64 p = q.mul(a[i], b[j]);
      const std::size_t k = i + j;
      if (k < n) {
        c[k] = q.add(c[k], p);
      } else {
        c[k - n] = q.sub(c[k - n], p);
      }
    }
  }
  return c;
}

struct NttCase {
  int log_n;
  int bits;
};

class NttTest : public ::testing::TestWithParam<NttCase> {};

TEST_P(NttTest, ProductMatchesNaiveNegacyclic) {
  const auto [log_n, bits] = GetParam();
  const std::size_t n = std::size_t{1} << log_n;
  Modulus q(generate_ntt_primes(bits, 1, 2 * n)[0]);
  NttTables t(log_n, q);
  std::mt19937_64 g(log_n * 100 + bits);
  std::vector<u64> a(n), b(n);
  for (auto& x : a) x = g() % q.value();
  for (auto& x : b) x = g() % q.value();
  auto want = naive_negacyclic(a, b, q);
  t.forward(a.data());
  t.forward(b.data());
  for (std::size_t i = 0; i < n; ++i) a[i] = q.mul(a[i], b[i]);
  t.inverse(a.data());
  EXPECT_EQ(a, want);
}

TEST_P(NttTest, RoundTripAndEvaluationPoints) {
  const auto [log_n, bits] = GetParam();
  const std::size_t n = std::size_t{1} << log_n;
  Modulus q(generate_ntt_primes(bits, 1, 2 * n)[0]);
  NttTables t(log_n, q);
  std::mt19937_64 g(5);
  std::vector<u64> a(n);
  for (auto& x : a) x = g() % q.value();
  auto f = a;
  t.forward(f.data());
  for (u64 v : f) ASSERT_LT(v, q.value());
  // Slot index_of_exponent(e) holds a(psi^e) for odd e.
  for (std::size_t e = 1; e < 2 * n; e += 2 * ((n / 16) | 1)) {
    const u64 x = q.pow(t.psi(), e);
    u64 acc = 0;
    for (std::size_t k = n; k-- > 0;) acc = q.add(q.mul(acc, x), a[k]);
    EXPECT_EQ(f[t.index_of_exponent(e)], acc) << "e=" << e;
  }
  t.inverse(f.data());
  EXPECT_EQ(f, a);
}

INSTANTIATE_TEST_SUITE_P(Sizes, NttTest,
                         ::testing::Values(NttCase{3, 30}, NttCase{6, 40}, NttCase{8, 50}, NttCase{9, 60},
                                           NttCase{10, 61}, NttCase{11, 36}));

TEST(Ntt, LargeRingRoundTrip) {
  for (int log_n : {12, 15, 16, 17}) {
    const std::size_t n = std::size_t{1} << log_n;
    for (int bits : {40, 60}) {
      Modulus q(generate_ntt_primes(bits, 1, 2 * n)[0]);
      NttTables t(log_n, q);
      std::mt19937_64 g(log_n);
      std::vector<u64> a(n);
      for (auto& x : a) x = g() % q.value();
      auto f = a;
      t.forward(f.data());
      t.inverse(f.data());
      ASSERT_EQ(f, a) << "log_n=" << log_n << " bits=" << bits;
    }
  }
}

}  // namespace
}  // namespace veil::math

namespace veil::math {
namespace {

// The SIMD kernel must agree bit for bit with the portable one, for every prime size it
// accepts, including primes right at its 50-bit limit.
TEST(Ntt, SimdKernelMatchesScalarKernel) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "CPU has no AVX2/FMA; only the portable kernel runs here";
  for (int log_n : {3, 4, 5, 10, 13, 16}) {
    const std::size_t n = std::size_t{1} << log_n;
    for (int bits : {20, 36, 40, 45, 49, 50}) {
      if ((std::uint64_t{1} << bits) <= 64 * n) continue;  // need two such primes
      for (const u64 qv : generate_ntt_primes(bits, 2, 2 * n)) {
        NttTables t(log_n, Modulus(qv));
        ASSERT_TRUE(ntt_avx2_applicable(t));
        std::mt19937_64 g(bits * 31 + log_n);
        std::vector<u64> a(n);
        for (auto& x : a) x = g() % qv;
        a[0] = qv - 1;  // extreme values
        a[n - 1] = 0;
        auto s = a, v = a;
        ntt_forward_scalar(t, s.data());
        ntt_forward_avx2(t, v.data());
        ASSERT_EQ(v, s) << "forward, log_n=" << log_n << " q=" << qv;
        ntt_inverse_scalar(t, s.data());
        ntt_inverse_avx2(t, v.data());
        ASSERT_EQ(v, s) << "inverse, log_n=" << log_n << " q=" << qv;
        ASSERT_EQ(v, a);
      }
    }
  }
}

TEST(Ntt, SimdSwitchSelectsTheKernel) {
  Modulus q(generate_ntt_primes(40, 1, 1 << 11)[0]);
  NttTables t(10, q);
  set_simd_enabled(false);
  EXPECT_FALSE(t.uses_simd());
  set_simd_enabled(true);
  EXPECT_EQ(t.uses_simd(), cpu_features().avx2_fma && simd_enabled());
  NttTables big(10, Modulus(generate_ntt_primes(55, 1, 1 << 11)[0]));
  EXPECT_FALSE(big.uses_simd());  // above 2^50 the portable kernel runs
}

}  // namespace
}  // namespace veil::math
