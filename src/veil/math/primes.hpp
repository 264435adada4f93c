// NTT-friendly primes: q = 1 (mod 2N), so Z_q contains a primitive 2N-th root of unity
// and the negacyclic NTT of length N exists.
#pragma once

#include <cstdint>
#include <vector>

namespace veil::math {

// Deterministic Miller-Rabin for 64-bit integers (the first 12 prime bases suffice).
bool is_prime(std::uint64_t n);

// Returns `count` distinct primes of exactly `bits` bits with q = 1 mod 2N, none in
// `exclude`, searching downward from 2^bits (so the first ones sit close to 2^bits, which
// keeps CKKS scales near a power of two). Throws if fewer exist.
std::vector<std::uint64_t> generate_ntt_primes(int bits, std::size_t count, std::uint64_t two_n,
                                               const std::vector<std::uint64_t>& exclude = {});

// Generates primes for a list of bit sizes (entries may repeat), all distinct.
std::vector<std::uint64_t> generate_ntt_primes(const std::vector<int>& bit_sizes, std::uint64_t two_n,
                                               const std::vector<std::uint64_t>& exclude = {});

// A primitive 2N-th root of unity mod q (q prime, q = 1 mod 2N); the smallest one, so the
// choice is reproducible across runs and machines.
std::uint64_t minimal_primitive_root(std::uint64_t two_n, std::uint64_t q);

}  // namespace veil::math
