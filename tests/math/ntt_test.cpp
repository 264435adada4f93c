#include "veil/math/ntt.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <random>

#include "math/simd_paths.hpp"
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

// Shared tables: one per (N, q) while any holder lives, the same transform as tables of
// their own, built again once the last holder is gone.
TEST(Ntt, SharedTablesAreOnePerRingAndPrime) {
  const std::size_t n = 1024;
  const auto primes = generate_ntt_primes(30, 2, 2 * 2 * n);
  const Modulus q(primes[0]), r(primes[1]);
  auto a = NttTables::shared(10, q);
  const auto b = NttTables::shared(10, q);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), NttTables::shared(10, r).get());  // another prime
  EXPECT_NE(a.get(), NttTables::shared(11, q).get());  // another ring (q is 1 mod 4N)
  EXPECT_EQ(a->psi_rev(), NttTables(10, q).psi_rev());
  std::mt19937_64 g(5);
  std::vector<u64> x(n);
  for (auto& v : x) v = g() % q.value();
  auto y = x, z = x;
  a->forward(y.data());
  NttTables(10, q).forward(z.data());
  EXPECT_EQ(y, z);
  const NttTables* first = a.get();
  a.reset();
  EXPECT_EQ(NttTables::shared(10, q).get(), first) << "b still holds them";
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

// A kernel on 32-bit lanes against the portable one, bit for bit, for every ring size in
// `sizes`, odd and even numbers of stages (one alone or all in pairs), and primes up to
// the 30-bit limit; random and all-maximal (q - 1) inputs. The dispatcher at `level` must
// pick it for such primes, both ways. forward32: the same forward kernel on a limb held in
// 32-bit words (NttTables::forward32), which must give the same words.
using NttKernel = void (*)(const NttTables&, u64*);
using NttKernel32 = void (*)(const NttTables&, std::uint32_t*);
void check_narrow_kernel(std::initializer_list<int> sizes, bool (*applicable)(const NttTables&),
                         NttKernel forward, NttKernel inverse, NttKernel32 forward32, SimdLevel level) {
  for (int log_n : sizes) {
    const std::size_t n = std::size_t{1} << log_n;
    for (int bits : {20, 26, 29, 30}) {
      if ((std::uint64_t{1} << bits) <= 64 * n) continue;  // need two such primes
      for (const u64 qv : generate_ntt_primes(bits, 2, 2 * n)) {
        NttTables t(log_n, Modulus(qv));
        ASSERT_TRUE(applicable(t));
        for (int pattern = 0; pattern < 2; ++pattern) {
          std::mt19937_64 g(bits * 31 + log_n);
          std::vector<u64> a(n, qv - 1);
          if (pattern == 0) {
            for (auto& x : a) x = g() % qv;
            a[n - 1] = 0;
          }
          auto s = a, v = a;
          ntt_forward_scalar(t, s.data());
          forward(t, v.data());
          ASSERT_EQ(v, s) << "forward, log_n=" << log_n << " q=" << qv;
          std::vector<std::uint32_t> v32(a.begin(), a.end());
          forward32(t, v32.data());
          ASSERT_TRUE(std::equal(v32.begin(), v32.end(), s.begin()))
              << "forward32, log_n=" << log_n << " q=" << qv;
          ntt_inverse_scalar(t, s.data());
          inverse(t, v.data());
          ASSERT_EQ(v, s) << "inverse, log_n=" << log_n << " q=" << qv;
          ASSERT_EQ(v, a);
          set_simd_level(level);
          EXPECT_EQ(t.kernel_level(), level);
          auto u = a;
          t.forward(u.data());
          ntt_forward_scalar(t, s.data());
          EXPECT_EQ(u, s) << "dispatched forward, log_n=" << log_n;
          std::vector<std::uint32_t> u32(a.begin(), a.end());
          t.forward32(u32.data());
          EXPECT_TRUE(std::equal(u32.begin(), u32.end(), u.begin()))
              << "dispatched forward32, log_n=" << log_n;
          t.inverse(u.data());
          EXPECT_EQ(u, a) << "dispatched inverse, log_n=" << log_n;
          set_simd_level(best_simd_level());
        }
      }
    }
  }
}

// AVX2, eight lanes: from its smallest ring (16) up.
TEST(Ntt, NarrowAvx2KernelMatchesScalarKernel) {
  if (!cpu_features().avx2_fma) GTEST_SKIP() << "CPU has no AVX2; only the portable kernel runs here";
  check_narrow_kernel({4, 5, 6, 7, 10, 13, 14, 15, 16}, ntt_avx2_narrow_applicable, ntt_forward_avx2_narrow,
                      ntt_inverse_avx2_narrow, ntt_forward_avx2_narrow32, SimdLevel::kAvx2);
  EXPECT_FALSE(ntt_avx2_narrow_applicable(NttTables(10, Modulus(generate_ntt_primes(31, 1, 2048)[0]))));
  EXPECT_FALSE(ntt_avx2_narrow_applicable(NttTables(3, Modulus(generate_ntt_primes(30, 1, 16)[0]))));
}

// AVX-512, sixteen lanes: from its smallest ring (32: only the in-register stages and the
// scaled last one) up; above 2^30 or below N = 32 the 64-bit-lane kernel runs instead.
TEST(Ntt, NarrowAvx512KernelMatchesScalarKernel) {
  if (!cpu_features().avx512_ifma) GTEST_SKIP() << "CPU has no AVX-512; the AVX-512 NTT cannot run here";
  check_narrow_kernel({5, 6, 7, 8, 10, 13, 14, 15, 16}, ntt_avx512_narrow_applicable,
                      ntt_forward_avx512_narrow, ntt_inverse_avx512_narrow, ntt_forward_avx512_narrow32,
                      SimdLevel::kAvx512);
  EXPECT_FALSE(ntt_avx512_narrow_applicable(NttTables(10, Modulus(generate_ntt_primes(31, 1, 2048)[0]))));
  EXPECT_FALSE(ntt_avx512_narrow_applicable(NttTables(4, Modulus(generate_ntt_primes(30, 1, 32)[0]))));
}

// forward32 at every SIMD level this CPU has, where no kernel on 32-bit lanes applies as
// well (the scalar level, primes of 31 and 32 bits): the words forward gives. Primes of 33
// bits and up are refused.
TEST(Ntt, Forward32EqualsForwardAtEveryLevel) {
  testing_paths::for_each_simd_level([](SimdLevel level) {
    for (int log_n : {6, 12, 15}) {
      const std::size_t n = std::size_t{1} << log_n;
      for (int bits : {29, 30, 31, 32}) {
        const u64 qv = generate_ntt_primes(bits, 1, 2 * n)[0];
        NttTables t(log_n, Modulus(qv));
        std::mt19937_64 g(bits * 7 + log_n);
        std::vector<u64> a(n);
        for (auto& x : a) x = g() % qv;
        a[0] = qv - 1;
        std::vector<std::uint32_t> a32(a.begin(), a.end());
        t.forward(a.data());
        t.forward32(a32.data());
        EXPECT_TRUE(std::equal(a32.begin(), a32.end(), a.begin()))
            << simd_level_name(level) << " log_n=" << log_n << " q=" << qv;
        EXPECT_EQ(t.forward32_native(), level != SimdLevel::kScalar && bits <= 30)
            << simd_level_name(level) << " q=" << qv;
      }
    }
    std::vector<std::uint32_t> words(64);
    EXPECT_THROW(NttTables(6, Modulus(generate_ntt_primes(33, 1, 128)[0])).forward32(words.data()),
                 std::exception);
  });
}

// The AVX-512 kernels (IFMA52 below 2^50, 64-bit Shoup products above) against the
// portable kernel, bit for bit, at the ring sizes the engine uses and for primes up to
// the 61-bit limit of the tables, including primes right at IFMA's 50-bit limit. The sizes
// cover one cache block and several (2^11 coefficients a block), with odd and even numbers
// of stages inside a block and across blocks (stages run two to a pass, one alone when odd).
// Primes of 45-46 bits and 47 bits sit either side of the forward transform's unreduced
// path at N = 2^16 (values up to 33q must stay below 2^52), whose widest inputs the all-(q - 1)
// case gives.
TEST(Ntt, Avx512KernelMatchesScalarKernel) {
  if (!cpu_features().avx512_ifma) GTEST_SKIP() << "CPU has no AVX-512 IFMA; the AVX-512 NTT cannot run here";
  for (int log_n : {4, 5, 6, 10, 11, 12, 13, 14, 15, 16}) {
    const std::size_t n = std::size_t{1} << log_n;
    for (int bits : {20, 30, 33, 36, 40, 45, 46, 47, 49, 50, 51, 55, 58, 60, 61}) {
      if ((std::uint64_t{1} << bits) <= 64 * n) continue;  // need two such primes
      for (const u64 qv : generate_ntt_primes(bits, 2, 2 * n)) {
        NttTables t(log_n, Modulus(qv));
        ASSERT_TRUE(ntt_avx512_applicable(t));
        ASSERT_EQ(ntt_avx512_uses_ifma(t), bits <= 50);
        std::mt19937_64 g(bits * 37 + log_n);
        std::vector<u64> a(n);
        for (auto& x : a) x = g() % qv;
        a[0] = qv - 1;  // extreme values
        a[1] = qv - 1;
        a[n - 1] = 0;
        auto s = a, v = a;
        ntt_forward_scalar(t, s.data());
        ntt_forward_avx512(t, v.data());
        ASSERT_EQ(v, s) << "forward, log_n=" << log_n << " q=" << qv;
        ntt_inverse_scalar(t, s.data());
        ntt_inverse_avx512(t, v.data());
        ASSERT_EQ(v, s) << "inverse, log_n=" << log_n << " q=" << qv;
        ASSERT_EQ(v, a);
        // All-maximal input: the lazy bounds at their widest.
        std::vector<u64> top(n, qv - 1), ts = top;
        ntt_forward_scalar(t, ts.data());
        ntt_forward_avx512(t, top.data());
        ASSERT_EQ(top, ts) << "forward of q-1, log_n=" << log_n << " q=" << qv;
      }
    }
  }
}

// forward/inverse through the dispatcher at every level this CPU has agree with the
// portable kernel, and each level picks the kernel it names.
TEST(Ntt, EveryLevelAgreesThroughTheDispatcher) {
  for (int bits : {40, 50, 60}) {
    const Modulus q(generate_ntt_primes(bits, 1, 1 << 14)[0]);
    NttTables t(13, q);
    std::mt19937_64 g(bits);
    std::vector<u64> a(t.n());
    for (auto& x : a) x = g() % q.value();
    auto ref = a;
    ntt_forward_scalar(t, ref.data());
    testing_paths::for_each_simd_level([&](SimdLevel level) {
      const SimdLevel expect = level == SimdLevel::kAvx2 && bits > 50 ? SimdLevel::kScalar : level;
      EXPECT_EQ(t.kernel_level(), expect) << bits << "-bit q at " << simd_level_name(level);
      auto v = a;
      t.forward(v.data());
      ASSERT_EQ(v, ref) << bits << "-bit q at " << simd_level_name(level);
      t.inverse(v.data());
      ASSERT_EQ(v, a) << bits << "-bit q at " << simd_level_name(level);
    });
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
  // Above 2^50 only the AVX-512 kernel (64-bit products) applies; AVX2 leaves it scalar.
  EXPECT_EQ(big.uses_simd(), simd_level() == SimdLevel::kAvx512);
  set_simd_level(SimdLevel::kAvx2);
  EXPECT_FALSE(big.uses_simd());
  set_simd_level(SimdLevel::kAvx512);
}

}  // namespace
}  // namespace veil::math
