// Samplers for RLWE: uniform ternary secrets, rounded Gaussian errors (sigma = 3.19,
// tails cut at 6 sigma, as in the HE standard) and uniform polynomials expanded from a
// seed. All randomness comes from ChaCha20 streams keyed by CSPRNG seeds.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/common/rng.hpp"
#include "veil/rlwe/context.hpp"

namespace veil::rlwe {

inline constexpr double kErrorSigma = 3.19;

// Small signed coefficient vectors.
std::vector<std::int64_t> sample_ternary(Prng& rng, std::size_t n);
// round(X) for X ~ N(0, sigma^2) conditioned on |X| <= 6 sigma, from a cumulative table
// (gaussian_thresholds) in constant time per value; statistical distance below 2^-56 to
// that distribution.
std::vector<std::int64_t> sample_gaussian(Prng& rng, std::size_t n, double sigma = kErrorSigma);
// The table: threshold k (k = 0 .. 2 top - 1, top = round(6 sigma)) is 2^64 P(round(X) <= k - top),
// so a uniform 64-bit word r gives the value (number of thresholds <= r) - top.
std::vector<std::uint64_t> gaussian_thresholds(double sigma);

// Writes `coeffs` reduced modulo each listed prime, then transformed to NTT form.
// `prime_indices` index the context's primes; out has prime_indices.size() limbs.
void small_to_ntt(const Context& ctx, std::span<const std::int64_t> coeffs,
                  std::span<const std::size_t> prime_indices, u64* out);

// Uniform polynomial (directly in NTT form: the NTT is a bijection) from a seed; limb k
// uses stream (stream_base + prime index), so the same seed expands identically for any
// subset of primes.
void expand_uniform(const Context& ctx, const Seed& seed, std::uint64_t stream_base,
                    std::span<const std::size_t> prime_indices, u64* out);

// 0..count-1 and L+1..L+K: the prime indices of Q_level * P.
std::vector<std::size_t> qp_indices(const Context& ctx, int level);
std::vector<std::size_t> q_indices(int level);
// The primes those indices name, e.g. for a KeyPoly over them.
std::vector<u64> prime_values(const Context& ctx, std::span<const std::size_t> prime_indices);

}  // namespace veil::rlwe
