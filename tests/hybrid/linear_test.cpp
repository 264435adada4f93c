// The online linear layer's fast path (31-bit halves, 64-bit accumulators, both cores)
// against the 128-bit reference, including the fallback for weights too large for it.
#include <gtest/gtest.h>

#include <random>

#include "hybrid/hybrid_test_util.hpp"
#include "mpc/mpc_test_util.hpp"
#include "veil/hybrid/linear.hpp"
#include "veil/math/cpu.hpp"
#include "veil/mpc/share.hpp"

namespace veil::hybrid {
namespace {

QuantLinear random_layer(std::mt19937_64& rng, int rows, int cols, int weight_max) {
  QuantLinear q;
  q.rows = rows;
  q.cols = cols;
  q.row_ptr.push_back(0);
  std::uniform_int_distribution<int> w(-weight_max, weight_max), keep(0, 3);
  for (int r = 0; r < rows; ++r) {
    std::int64_t l1 = 0;
    for (int c = 0; c < cols; ++c) {
      if (keep(rng) == 0) continue;
      q.col.push_back(c);
      q.weight.push_back(w(rng));
      l1 += std::abs(q.weight.back());
    }
    q.row_ptr.push_back(static_cast<std::int64_t>(q.col.size()));
    q.max_row_l1 = std::max(q.max_row_l1, l1);
    q.bias.push_back(static_cast<std::int64_t>(w(rng)) * 1000);
  }
  return q;
}

TEST(HybridLinear, FastPathEqualsReference) {
  const auto seed = mpc::test::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const mpc::Field f(default_prime(), 8);
  mpc::MaskSource masks;
  for (int weight_max : {1, 300, 40000}) {
    const QuantLinear q = random_layer(rng, 150, 333, weight_max);
    const auto x = masks.uniform(f, static_cast<std::size_t>(q.cols));
    for (bool bias : {false, true}) EXPECT_EQ(apply(f, q, x, bias), apply_reference(f, q, x, bias));
  }
}

TEST(HybridLinear, TwoPrimeRingFastPathEqualsReferenceAndPlainProductModP) {
  const auto seed = mpc::test::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  using u128 = unsigned __int128;
  // The default ring (31-bit second prime: three digit planes) and a 34-bit second prime
  // (four planes); P < 2^95 keeps the plain check below in 128 bits.
  for (const auto& primes : {std::vector<u64>{default_prime(), default_prime2()},
                             std::vector<u64>{default_prime(), mpc::test::test_prime(34)}}) {
    const mpc::Field f(primes, 8);
    const u128 P = static_cast<u128>(f.p(0)) * f.p(1);
    mpc::MaskSource masks;
    for (int weight_max : {1, 300, 40000}) {
      const QuantLinear q = random_layer(rng, 60, 200, weight_max);
      const auto x = masks.uniform(f, 2 * static_cast<std::size_t>(q.cols));
      const auto fast = apply(f, q, x, true);
      ASSERT_EQ(fast, apply_reference(f, q, x, true));
      // Row by row on the recombined integers: sum_j w_rj x_j + b_r mod P.
      for (int r = 0; r < q.rows; ++r) {
        u128 acc = 0;
        auto add_signed = [&](u128 v, std::int64_t w) {
          const u128 t = (v * static_cast<u128>(w < 0 ? -w : w)) % P;  // < 2^95 * 2^36
          acc = (acc + (w < 0 ? P - t : t)) % P;
        };
        for (std::int64_t e = q.row_ptr[static_cast<std::size_t>(r)];
             e < q.row_ptr[static_cast<std::size_t>(r) + 1]; ++e)
          add_signed(f.combine(&x[2 * static_cast<std::size_t>(q.col[static_cast<std::size_t>(e)])]),
                     q.weight[static_cast<std::size_t>(e)]);
        add_signed(1, q.bias[static_cast<std::size_t>(r)]);
        ASSERT_TRUE(f.combine(&fast[2 * static_cast<std::size_t>(r)]) == acc) << "row " << r;
      }
    }
  }
}

// The portable and the AVX2 row kernels give the same words, one prime and two.
TEST(HybridLinear, ScalarAndSimdKernelsAgree) {
  std::mt19937_64 rng(mpc::test::test_seed());
  mpc::MaskSource masks;
  for (const auto& primes :
       {std::vector<u64>{default_prime()}, std::vector<u64>{default_prime(), default_prime2()}}) {
    const mpc::Field f(primes, 8);
    const QuantLinear q = random_layer(rng, 130, 300, 5000);
    const auto x = masks.uniform(f, static_cast<std::size_t>(q.cols) * primes.size());
    math::set_simd_level(math::SimdLevel::kScalar);
    const auto scalar = apply(f, q, x, true);
    math::set_simd_level(math::SimdLevel::kAvx512);  // the best this CPU has
    const auto simd = apply(f, q, x, true);
    EXPECT_EQ(scalar, simd) << "simd level " << math::simd_level_name(math::simd_level());
    EXPECT_EQ(scalar, apply_reference(f, q, x, true));
  }
}

TEST(HybridLinear, WeightsTooLargeForTheFastPathFallBack) {
  std::mt19937_64 rng(7);
  const mpc::Field f(default_prime(), 8);
  QuantLinear q = random_layer(rng, 3, 2000, 2000000000);
  ASSERT_GE(q.max_row_l1, std::int64_t{1} << 31);
  mpc::MaskSource masks;
  const auto x = masks.uniform(f, 2000);
  EXPECT_EQ(apply(f, q, x, true), apply_reference(f, q, x, true));
}

TEST(HybridLinear, ReferenceIsTheProductModP) {
  // A 1 x 2 layer by hand: y = 3 x0 - 2 x1 + 5 mod p, with x1 = p - 1 (i.e. -1).
  const mpc::Field f(default_prime(), 8);
  QuantLinear q;
  q.rows = 1;
  q.cols = 2;
  q.row_ptr = {0, 2};
  q.col = {0, 1};
  q.weight = {3, -2};
  q.bias = {5};
  q.max_row_l1 = 5;
  const std::vector<u64> x = {10, f.p() - 1};
  EXPECT_EQ(apply(f, q, x, true), std::vector<u64>{37});
  EXPECT_EQ(apply(f, q, x, false), std::vector<u64>{32});
  EXPECT_THROW(apply(f, q, std::vector<u64>{1}, true), std::invalid_argument);
}

}  // namespace
}  // namespace veil::hybrid
