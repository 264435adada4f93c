// The error sampler against the distribution it claims: round(X), X ~ N(0, sigma^2) cut at
// 6 sigma. The cumulative table is checked against the density integrated independently
// (Simpson's rule), and the samples' frequencies against the probabilities, with a fixed
// seed so the check is deterministic.
#include "veil/rlwe/sampling.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <vector>

namespace veil::rlwe {
namespace {

// P(round(X) = k | |X| <= 6 sigma) by Simpson's rule on the density over each value's
// interval [k - 1/2, k + 1/2] cut to the bound, not by erfc.
std::map<int, double> rounded_gaussian(double sigma) {
  const double bound = 6 * sigma;
  const int top = static_cast<int>(std::floor(bound + 0.5));
  const auto density = [&](double x) { return std::exp(-x * x / (2 * sigma * sigma)); };
  std::map<int, double> p;
  double total = 0;
  for (int k = -top; k <= top; ++k) {
    const double a = std::max(k - 0.5, -bound), b = std::min(k + 0.5, bound);
    const int m = 1000;  // even
    const double h = (b - a) / m;
    double sum = density(a) + density(b);
    for (int i = 1; i < m; ++i) sum += (i % 2 ? 4 : 2) * density(a + i * h);
    p[k] = sum * h / 3;
    total += p[k];
  }
  for (auto& [k, v] : p) v /= total;
  return p;
}

TEST(Sampling, GaussianTableIsTheRoundedGaussiansDistribution) {
  for (double sigma : {kErrorSigma, 1.0, 8.0}) {
    const auto t = gaussian_thresholds(sigma);
    const int top = static_cast<int>(std::floor(6 * sigma + 0.5));
    ASSERT_EQ(t.size(), static_cast<std::size_t>(2 * top)) << sigma;
    const auto p = rounded_gaussian(sigma);
    double cdf = 0;
    for (int k = -top; k < top; ++k) {
      cdf += p.count(k) ? p.at(k) : 0.0;
      EXPECT_NEAR(std::ldexp(static_cast<double>(t[k + top]), -64), cdf, 1e-12)
          << "sigma " << sigma << ", k " << k;
      if (k > -top) {
        EXPECT_LE(t[k + top - 1], t[k + top]) << "thresholds ascend";
      }
    }
  }
  EXPECT_THROW(gaussian_thresholds(0), std::invalid_argument);
}

TEST(Sampling, GaussianSamplesFollowTheTable) {
  Seed seed{};
  seed[0] = 7;
  Prng rng(seed, 3);
  const std::size_t n = std::size_t{1} << 20;
  const auto x = sample_gaussian(rng, n);
  const int top = static_cast<int>(std::floor(6 * kErrorSigma + 0.5));
  std::map<int, std::size_t> count;
  double sum = 0, sq = 0;
  for (std::int64_t v : x) {
    ASSERT_LE(std::llabs(v), top);
    ++count[static_cast<int>(v)];
    sum += static_cast<double>(v);
    sq += static_cast<double>(v * v);
  }
  // Each frequency within 6 standard deviations of its probability.
  for (const auto& [k, p] : rounded_gaussian(kErrorSigma)) {
    const double expect = p * static_cast<double>(n), sd = std::sqrt(expect * (1 - p));
    EXPECT_NEAR(static_cast<double>(count[k]), expect, 6 * sd + 1) << "k = " << k;
  }
  // Mean 0, variance sigma^2 + 1/12 (rounding), to within 6 standard errors.
  const double mean = sum / static_cast<double>(n), var = sq / static_cast<double>(n) - mean * mean;
  const double want = kErrorSigma * kErrorSigma + 1.0 / 12;
  EXPECT_NEAR(mean, 0.0, 6 * std::sqrt(want / static_cast<double>(n)));
  EXPECT_NEAR(var, want, 6 * want * std::sqrt(2.0 / static_cast<double>(n)));
}

// small_to_ntt against Modulus::from_signed and the NTT, limb by limb: coefficients inside
// every prime (the branch-free path, with the extremes +-(q - 1) of the smallest prime) and
// ones beyond the smallest prime, INT64_MIN included (the general path).
TEST(Sampling, SmallToNttMatchesTheDefinition) {
  const auto ctx = std::make_shared<const Context>(Parameters::create(6, {40, 30}, {50}, 1, true));
  const std::size_t n = ctx->n();
  const std::vector<std::size_t> idx = {0, 1, 2};
  const auto small_q = static_cast<std::int64_t>(ctx->modulus(1).value());
  std::mt19937_64 g(23);
  for (int wide = 0; wide < 2; ++wide) {
    std::vector<std::int64_t> c(n);
    for (auto& x : c) x = static_cast<std::int64_t>(g() % 41) - 20;
    c[0] = small_q - 1;
    c[1] = -(small_q - 1);
    if (wide) c[2] = small_q, c[3] = std::numeric_limits<std::int64_t>::min(), c[4] = -(small_q << 20);
    std::vector<u64> got(idx.size() * n);
    small_to_ntt(*ctx, c, idx, got.data());
    for (std::size_t k = 0; k < idx.size(); ++k) {
      std::vector<u64> want(n);
      for (std::size_t j = 0; j < n; ++j) want[j] = ctx->modulus(idx[k]).from_signed(c[j]);
      ctx->ntt(idx[k]).forward(want.data());
      EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin() + static_cast<std::ptrdiff_t>(k * n)))
          << "limb " << k << (wide ? ", wide coefficients" : "");
    }
  }
}

}  // namespace
}  // namespace veil::rlwe
