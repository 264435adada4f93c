#include "veil/rlwe/sampling.hpp"

#include <cmath>

#include "veil/common/thread_pool.hpp"

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

std::vector<std::int64_t> sample_gaussian(Prng& rng, std::size_t n, double sigma) {
  std::vector<std::int64_t> out(n);
  const double bound = 6.0 * sigma;
  std::size_t i = 0;
  while (i < n) {
    // Box-Muller: two independent normals per pair of uniforms.
    double u1 = rng.next_unit(), u2 = rng.next_unit();
    if (u1 <= 0.0) continue;
    const double r = sigma * std::sqrt(-2.0 * std::log(u1));
    const double v[2] = {r * std::cos(2 * M_PI * u2), r * std::sin(2 * M_PI * u2)};
    for (double x : v) {
      if (i < n && std::fabs(x) <= bound) out[i++] = std::llround(x);
    }
  }
  return out;
}

void small_to_ntt(const Context& ctx, std::span<const std::int64_t> coeffs,
                  std::span<const std::size_t> prime_indices, u64* out) {
  const std::size_t n = ctx.n();
  parallel_for(prime_indices.size(), [&](std::size_t k) {
    const auto& q = ctx.modulus(prime_indices[k]);
    u64* o = out + k * n;
    for (std::size_t j = 0; j < n; ++j) o[j] = q.from_signed(coeffs[j]);
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
