// Multiply-accumulate kernels for the linear layers: out = sum_t w_t * x_t (mod q) over
// both polynomials of a ciphertext, reducing once per coefficient instead of per term.
//
// Primes below 2^32 (CKKS scales of up to 32 bits, the common case for CNN inference)
// accumulate 32x32 -> 64-bit products in 64-bit lanes, which vectorise (AVX2 vpmuludq),
// reducing only every floor(2^64 / q^2) terms; larger primes use 128-bit accumulators
// with a Barrett reduction every 32 terms.
#pragma once

#include <cstddef>
#include <span>

#include "veil/math/modarith.hpp"

namespace veil::he {

using math::u64;

// x holds, for each term t, the pointers to its `polys` polynomials (limb i) at
// x[t * polys + c]; out[c] receives polynomial c of the sum.

// Pointwise weights (a plaintext per term): out_c[j] = sum_t w[t][j] * x_c[t][j].
void mac_pointwise(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                   std::span<const u64* const> x, std::size_t polys, u64* const* out);

// One scalar weight per term (already reduced mod q): out_c[j] = sum_t w[t] * x_c[t][j].
void mac_scalar(const math::Modulus& q, std::size_t n, std::span<const u64> w, std::span<const u64* const> x,
                std::size_t polys, u64* const* out);

}  // namespace veil::he
