// Element-wise modular kernels on residue vectors (inputs and outputs in [0, q)).
//
// For primes below 2^50 on a CPU with AVX2 + FMA they compute on four residues at a time
// in doubles (fpmod_avx2.hpp), with AVX-512 IFMA on eight (vecmod_avx512.cpp);
// otherwise with 128-bit integer products. All paths give
// identical, fully reduced results, so callers never care which one ran.
#pragma once

#include <cstddef>
#include <cstdint>

#include "veil/math/cpu.hpp"
#include "veil/math/modarith.hpp"

namespace veil::math {

// The kernel level that serves this modulus (CPU, simd_level(), prime size): AVX-512 IFMA
// for primes of 13 to 50 bits, AVX2 in doubles below 2^50, scalar otherwise.
SimdLevel vecmod_level(const Modulus& q);
// Whether a SIMD path serves this modulus (vecmod_level above scalar).
bool vecmod_simd(const Modulus& q);

// out = a + b. (out may be a or b.)
void add_vec(const Modulus& q, const u64* a, const u64* b, u64* out, std::size_t n);

// out = a - b. (out may be a or b.)
void sub_vec(const Modulus& q, const u64* a, const u64* b, u64* out, std::size_t n);

// out = a * b.
void mul_vec(const Modulus& q, const u64* a, const u64* b, u64* out, std::size_t n);

// out = x * w for a constant w < q.
void mul_const_vec(const Modulus& q, const u64* x, u64 w, u64* out, std::size_t n);
// out = (x - y) * w for a constant w < q.
void sub_mul_const_vec(const Modulus& q, const u64* x, const u64* y, u64 w, u64* out, std::size_t n);
// out = r centred modulo p (r - p where r > p / 2), then reduced mod q, for residues
// r < p of another prime p: a limb's last prime carried to the others when a modulus
// switch divides by it (BFV's mod_switch_to and its responses).
void lift_centred_vec(const Modulus& q, const u64* r, u64 p, u64* out, std::size_t n);
// out = (x * w + y) mod q for any 64-bit words x and y (not reduced) and a constant w < q:
// BFV's scaling of a plaintext by Delta, with x the message mod t and y the rounding.
void mul_const_add_wide_vec(const Modulus& q, const u64* x, u64 w, const u64* y, u64* out, std::size_t n);

// The tensor product of two ciphertext limbs: (a0 + a1 s)(b0 + b1 s) = c0 + c1 s + c2 s^2.
// With a == b (the same pointers) it squares.
void tensor_vec(const Modulus& q, const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* c0,
                u64* c1, u64* c2, std::size_t n);

// The inner product of key switching, over `terms` digits:
//   o0[x] = sum_j v[j][p(x)] * k0[j][x],  o1[x] = sum_j v[j][p(x)] * k1[j][x],
// with p(x) = perm[x] (an automorphism as a permutation of NTT slots), or x if perm is null.
void dot2_vec(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
              const u64* const* k0, const u64* const* k1, u64* o0, u64* o1, std::size_t n);
// The same with the keys in 32-bit words (primes below 2^32): rlwe::KeyPoly's narrow
// limbs, half the memory of a session's keys and half the bytes this product streams.
void dot2_vec(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
              const std::uint32_t* const* k0, const std::uint32_t* const* k1, u64* o0, u64* o1,
              std::size_t n);

// A key limb of a prime between 2^32 and 2^33 in 33 bits a word: the low 32 bits in `low`,
// bit 32 of word x as bit x % 8 of high[x / 8] (rlwe::KeyPoly's 33-bit limbs: the chains
// at scale 2^33 that deep networks use get 52% of the memory 64-bit words take, and this
// product streams 52% of the bytes).
struct Words33 {
  const std::uint32_t* low = nullptr;
  const std::uint8_t* high = nullptr;
  u64 operator[](std::size_t x) const { return low[x] | (u64{(high[x / 8] >> (x % 8)) & 1u} << 32); }
};
// Bit 32 of each of n words packed as a Words33 plane, into (n + 7) / 8 bytes at `high`.
inline void pack_bit32(const u64* words, std::size_t n, std::uint8_t* high) {
  for (std::size_t x = 0; x < (n + 7) / 8; ++x) high[x] = 0;
  for (std::size_t x = 0; x < n; ++x)
    high[x / 8] |= static_cast<std::uint8_t>(((words[x] >> 32) & 1) << (x % 8));
}
// The same with the keys in 33-bit words (primes below 2^33).
void dot2_vec(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
              const Words33* k0, const Words33* k1, u64* o0, u64* o1, std::size_t n);

// out[j] = the number of thresholds t[k] (k < m) with t[k] <= r[j]: a sample's rank in a
// cumulative distribution table (rlwe::sample_gaussian), comparing every threshold, so
// that nothing the time or the memory accesses show depends on r. Not modular, but the
// same dispatch as the kernels above.
void rank_vec(const u64* r, std::size_t n, const u64* t, std::size_t m, u64* out);

// The residues modulo q of the signed integers c[j] = hi[j] 2^32 + lo[j] with |c[j]| <=
// largest < 2^39: he::CoefficientPlaintext's weight diagonals in five bytes a coefficient,
// lifted to a limb before its NTT at every use. The 32-bit form needs q < 2^32.
void lift_signed40(const Modulus& q, u64 largest, const std::uint32_t* lo, const std::int8_t* hi, u64* out,
                   std::size_t n);
void lift_signed40(const Modulus& q, u64 largest, const std::uint32_t* lo, const std::int8_t* hi,
                   std::uint32_t* out, std::size_t n);

}  // namespace veil::math
