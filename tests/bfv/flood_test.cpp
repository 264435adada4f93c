// Circuit privacy by noise flooding: flooded results still decrypt exactly, the flood has
// the derived width, and a two-sample Kolmogorov-Smirnov test cannot tell the decrypted
// noise of two weight sets of the same shape apart after flooding -- while the same test
// separates them at once without flooding (so the test can fail).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "bfv_test_util.hpp"

namespace veil::test {
namespace {

// Two-sample Kolmogorov-Smirnov statistic D = sup |F_a - F_b|.
double ks_statistic(std::vector<double> a, std::vector<double> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  std::size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    d = std::max(d, std::fabs(static_cast<double>(i) / a.size() - static_cast<double>(j) / b.size()));
  }
  return d;
}

// Critical value of D at significance alpha (asymptotic Kolmogorov distribution).
double ks_critical(double alpha, std::size_t n, std::size_t m) {
  return std::sqrt(-0.5 * std::log(alpha / 2)) * std::sqrt(static_cast<double>(n + m) / (n * m));
}

struct NoiseSamples {
  // At the top level before and after flooding, and flooded then switched (the response).
  std::vector<double> unflooded, flooded, switched;
};

// The server's work on a fresh client encryption of random r: W r - s, then either its
// noise as is, or flooded, switched and measured at the response level.
NoiseSamples sample_noise(BfvFixture& f, const std::vector<std::int64_t>& w, int runs, std::mt19937_64& g) {
  NoiseSamples out;
  const std::size_t n = f.ctx->n();
  const auto prepared = f.eval->prepare(bfv::Plaintext::from_signed(*f.ctx, w));
  for (int run = 0; run < runs; ++run) {
    auto ct = f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, random_mod(n, f.t(), g)));
    f.eval->multiply_plain_inplace(ct, prepared);
    f.eval->sub_plain_inplace(ct, bfv::Plaintext(*f.ctx, random_mod(n, f.t(), g)));
    const auto before = f.dec->noise(ct);
    auto flooded_ct = ct;
    f.flooder->flood_inplace(flooded_ct);
    const auto flooded = f.dec->noise(flooded_ct);
    // The server's real path: flood, switch, extract 16 coefficients spread over the ring.
    std::vector<std::uint32_t> idx;
    for (std::size_t k = 0; k < 16; ++k) idx.push_back(static_cast<std::uint32_t>(k * n / 16 + run % 7));
    const auto switched = f.dec->noise(f.flooder->finalize(std::move(ct), idx));
    for (std::size_t k = 0; k < 16; ++k) {
      out.unflooded.push_back(before[idx[k]]);
      out.flooded.push_back(flooded[idx[k]]);
      out.switched.push_back(switched[k]);
    }
  }
  return out;
}

TEST(BfvFlood, NoiseOfTwoWeightSetsIsIndistinguishableOnlyWithFlooding) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  // Same shape (the same 64 positions), different values: all ones, and up to +-60
  // (L1 3840 <= the public bound 4096).
  std::vector<std::int64_t> w1(n, 0), w2(n, 0);
  for (int k = 0; k < 64; ++k) {
    const std::size_t at = static_cast<std::size_t>(k) * (n / 64) + 3;
    w1[at] = 1;
    w2[at] = (k % 2 ? 1 : -1) * (30 + static_cast<std::int64_t>(g() % 31));
  }
  const int runs = 250;
  const auto a = sample_noise(f, w1, runs, g);
  const auto b = sample_noise(f, w2, runs, g);
  const double crit = ks_critical(1e-6, a.flooded.size(), b.flooded.size());
  const double d_unflooded = ks_statistic(a.unflooded, b.unflooded);
  const double d_flooded = ks_statistic(a.flooded, b.flooded);
  const double d_switched = ks_statistic(a.switched, b.switched);
  EXPECT_GT(d_unflooded, crit) << "without flooding the noise should reveal the weights";
  EXPECT_LT(d_flooded, crit) << "after flooding the noise must not depend on the weights";
  EXPECT_LT(d_switched, crit) << "the response's noise must not depend on the weights";
}

TEST(BfvFlood, FloodWidthAndExactResults) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  const auto nb = bfv::noise_bounds(f.ctx->params());
  const auto m = random_mod(n, f.t(), g);
  auto ct = f.pk_enc->encrypt(bfv::Plaintext(*f.ctx, m));
  f.flooder->flood_inplace(ct);
  double worst = 0;
  for (double v : f.dec->noise(ct)) worst = std::max(worst, std::fabs(v));
  // Uniform in [-2^b, 2^b): over N samples the largest is almost surely above 2^(b-1), and
  // never beyond the derived bound.
  EXPECT_GT(worst, std::ldexp(1.0, nb.flood_log2 - 1));
  EXPECT_LE(worst, static_cast<double>(nb.before_switch));
  EXPECT_EQ(f.dec->decrypt(ct).coeffs(), m);
  EXPECT_GE(nb.flood_log2, static_cast<int>(std::log2(static_cast<double>(nb.evaluation))) + 40);
  // Through the whole server path.
  std::vector<std::uint32_t> all(n);
  for (std::size_t i = 0; i < n; ++i) all[i] = static_cast<std::uint32_t>(i);
  const auto resp = f.flooder->finalize(f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, m)), all);
  EXPECT_EQ(f.dec->decrypt(resp), m);
  // The response carries the flood scaled by Q'/Q, within the derived bound after switching.
  double ratio = 1;
  for (std::size_t i = f.ctx->params().response_level + 1; i < f.ctx->num_q(); ++i)
    ratio /= static_cast<double>(f.ctx->modulus(i).value());
  double worst_resp = 0;
  for (double v : f.dec->noise(resp)) worst_resp = std::max(worst_resp, std::fabs(v));
  EXPECT_GT(worst_resp, std::ldexp(ratio, nb.flood_log2 - 1));
  EXPECT_LE(worst_resp, static_cast<double>(nb.after_switch));
}

}  // namespace
}  // namespace veil::test
