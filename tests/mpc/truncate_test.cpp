#include "veil/mpc/truncate.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mpc_test_util.hpp"
#include "veil/mpc/share.hpp"

namespace veil::mpc {
namespace {

struct TruncRun {
  std::size_t failures = 0;
  double expected_failures = 0;  // sum over trials of (|x| + 1) / p
  std::int64_t worst_error = 0;  // in units of the last place, among the successes
};

// Shares `trials` random integers |x| < 2^value_bits, truncates both shares by 2^bits and
// compares the reconstruction with floor(x / 2^bits).
TruncRun run_truncation(const Field& f, int value_bits, int bits, std::size_t trials) {
  std::mt19937_64 g(test::test_seed());
  std::uniform_int_distribution<std::int64_t> d(-(std::int64_t{1} << value_bits) + 1,
                                                (std::int64_t{1} << value_bits) - 1);
  MaskSource masks;
  TruncRun r;
  std::vector<u64> x(trials);
  std::vector<std::int64_t> xs(trials);
  for (std::size_t i = 0; i < trials; ++i) {
    xs[i] = d(g);
    x[i] = f.from_signed(xs[i]);
    r.expected_failures += (std::fabs(static_cast<double>(xs[i])) + 1) / static_cast<double>(f.p());
  }
  Shared s = split(f, x, masks);
  truncate_inplace(f, Role::kServer, s.server, bits);
  truncate_inplace(f, Role::kClient, s.client, bits);
  const auto y = reconstruct(f, s.server, s.client);
  for (std::size_t i = 0; i < trials; ++i) {
    const std::int64_t want = xs[i] >> bits;  // floor
    const std::int64_t err = f.centered(y[i]) - want;
    if (err < -1 || err > 1) {
      ++r.failures;
    } else {
      r.worst_error = std::max<std::int64_t>(r.worst_error, std::abs(err));
    }
  }
  return r;
}

TEST(MpcTruncate, ErrorIsAtMostOneUlpAndFailuresNeverHappenInsideThePlannedRange) {
  const Field f(test::test_prime(60), 12);
  const int l = max_truncation_value_bits(f, 40);
  EXPECT_GE(l, 19);
  EXPECT_LE(truncation_failure_log2(f, l), -40.0);
  const TruncRun r = run_truncation(f, l, 12, 200000);
  EXPECT_EQ(r.failures, 0u) << "seed " << test::test_seed();
  EXPECT_LE(r.worst_error, 1);
}

TEST(MpcTruncate, MeasuredFailureRateMatchesTheStatedBound) {
  // A 24-bit field and 14-bit values make failures common enough to count: about 2^-11
  // per value. The measured count must match the prediction sum (|x|+1)/p (Poisson, so
  // +-50% is over six standard deviations at ~200 expected) and stay under the bound.
  const Field f(test::test_prime(24), 8);
  const TruncRun r = run_truncation(f, 14, 8, 400000);
  EXPECT_GT(r.expected_failures, 100.0);
  EXPECT_GT(static_cast<double>(r.failures), 0.5 * r.expected_failures) << "seed " << test::test_seed();
  EXPECT_LT(static_cast<double>(r.failures), 1.5 * r.expected_failures) << "seed " << test::test_seed();
  EXPECT_LE(static_cast<double>(r.failures) / 400000, std::exp2(truncation_failure_log2(f, 14)));
  EXPECT_LE(r.worst_error, 1);
}

TEST(MpcTruncate, ZeroSharesAndBadShiftCounts) {
  const Field f(test::test_prime(40), 8);
  std::vector<u64> zs{0}, zc{0};
  truncate_inplace(f, Role::kServer, zs, 8);
  truncate_inplace(f, Role::kClient, zc, 8);
  EXPECT_EQ(reconstruct(f, zs, zc)[0], 0u);
  EXPECT_THROW(truncate_inplace(f, Role::kServer, zs, 64), std::invalid_argument);
}

}  // namespace
}  // namespace veil::mpc
