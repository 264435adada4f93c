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
std::vector<std::int64_t> sample_gaussian(Prng& rng, std::size_t n, double sigma = kErrorSigma);

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
