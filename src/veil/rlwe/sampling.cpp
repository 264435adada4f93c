#include "veil/rlwe/sampling.hpp"

#include <algorithm>
#include <cmath>

#include <sodium.h>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::rlwe {

std::vector<std::int64_t> sample_ternary(Prng& rng, std::size_t n) {
  std::vector<std::int64_t> out(n);
  std::size_t i = 0;
  while (i < n) {
    std::uint64_t w = rng.next_u64();
    for (int b = 0; b < 8 && i < n; ++b, w >>= 8) {
      const unsigned byte = w & 0xff;
      if (byte >= 255) continue;  // rejection keeps the three values exactly uniform
      out[i++] = static_cast<std::int64_t>(byte % 3) - 1;
    }
  }
  return out;
}

std::vector<std::uint64_t> gaussian_thresholds(double sigma) {
  VEIL_REQUIRE(sigma > 0 && sigma <= 64, "error width sigma must lie in (0, 64], got " << sigma);
  const long double s = sigma, bound = 6.0L * s;
  const int top = static_cast<int>(std::floor(bound + 0.5L));  // the largest |k| with mass
  // P(X <= x | |X| <= bound) for X ~ N(0, sigma^2), in long double (64-bit mantissa: the
  // thresholds below are exact to their last bit but for erfc's own rounding).
  const auto phi = [&](long double x) { return 0.5L * std::erfc(-x / (s * std::sqrt(2.0L))); };
  const long double lo = phi(-bound), mass = phi(bound) - lo;
  std::vector<std::uint64_t> t;
  for (int k = -top; k < top; ++k) {
    const long double f = (phi(std::min(k + 0.5L, bound)) - lo) / mass;
    t.push_back(static_cast<std::uint64_t>(std::min(std::ldexp(f, 64), std::ldexp(1.0L, 64) - 1)));
  }
  return t;
}

std::vector<std::int64_t> sample_gaussian(Prng& rng, std::size_t n, double sigma) {
  // The rounded Gaussian cut at 6 sigma by its cumulative distribution table: k is -top
  // plus the number of thresholds a uniform 64-bit word reaches, every threshold compared
  // (math::rank_vec: no branch or table access depends on the secret value). The
  // Box-Muller sampler this replaced drew the same distribution through a logarithm, a
  // square root and a sine and cosine for every two values: an eighth of the hybrid
  // preprocessing.
  thread_local double cached_sigma = 0;
  thread_local std::vector<std::uint64_t> table;
  if (sigma != cached_sigma) {
    table = gaussian_thresholds(sigma);
    cached_sigma = sigma;
  }
  const auto top = static_cast<std::int64_t>(table.size() / 2);
  std::vector<std::uint64_t> r(n);
  for (auto& x : r) x = rng.next_u64();
  math::rank_vec(r.data(), n, table.data(), table.size(), r.data());
  std::vector<std::int64_t> out(n);
  for (std::size_t j = 0; j < n; ++j) out[j] = static_cast<std::int64_t>(r[j]) - top;
  sodium_memzero(r.data(), n * sizeof(std::uint64_t));
  return out;
}

void small_to_ntt(const Context& ctx, std::span<const std::int64_t> coeffs,
                  std::span<const std::size_t> prime_indices, u64* out) {
  const std::size_t n = ctx.n();
  // Errors, secrets and most messages lie well inside every prime: then x + q where x is
  // negative, without a branch (the sign of an error is a coin flip, which the branch of
  // Modulus::from_signed mispredicted half the time) or a reduction.
  u64 largest = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const u64 x = static_cast<u64>(coeffs[j]);
    largest = std::max(largest, coeffs[j] < 0 ? 0 - x : x);
  }
  parallel_for(prime_indices.size(), [&](std::size_t k) {
    const auto& q = ctx.modulus(prime_indices[k]);
    u64* o = out + k * n;
    if (largest < q.value()) {
      for (std::size_t j = 0; j < n; ++j)
        o[j] = static_cast<u64>(coeffs[j]) + (q.value() & static_cast<u64>(coeffs[j] >> 63));
    } else {
      for (std::size_t j = 0; j < n; ++j) o[j] = q.from_signed(coeffs[j]);
    }
    ctx.ntt(prime_indices[k]).forward(o);
  });
}

void expand_uniform(const Context& ctx, const Seed& seed, std::uint64_t stream_base,
                    std::span<const std::size_t> prime_indices, u64* out) {
  const std::size_t n = ctx.n();
  parallel_for(prime_indices.size(), [&](std::size_t k) {
    const std::size_t pi = prime_indices[k];
    Prng rng(seed, stream_base + pi);
    const u64 q = ctx.modulus(pi).value();
    const int bits = ctx.modulus(pi).bits();
    const u64 mask = bits == 64 ? ~u64{0} : ((u64{1} << bits) - 1);
    u64* o = out + k * n;
    for (std::size_t j = 0; j < n;) {
      const u64 v = rng.next_u64() & mask;
      if (v < q) o[j++] = v;  // rejection sampling: exactly uniform mod q
    }
  });
}

std::vector<std::size_t> q_indices(int level) {
  std::vector<std::size_t> idx(static_cast<std::size_t>(level) + 1);
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  return idx;
}

std::vector<std::size_t> qp_indices(const Context& ctx, int level) {
  auto idx = q_indices(level);
  for (std::size_t k = 0; k < ctx.num_p(); ++k) idx.push_back(ctx.p_index() + k);
  return idx;
}

std::vector<u64> prime_values(const Context& ctx, std::span<const std::size_t> prime_indices) {
  std::vector<u64> v;
  v.reserve(prime_indices.size());
  for (std::size_t i : prime_indices) v.push_back(ctx.modulus(i).value());
  return v;
}

}  // namespace veil::rlwe
