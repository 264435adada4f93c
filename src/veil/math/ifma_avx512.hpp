// Internal: modular arithmetic on eight 64-bit residues at a time with AVX-512 and IFMA52
// (vpmadd52luq / vpmadd52huq: the low and high 52 bits of a 52 x 52-bit product, added to
// a 64-bit lane), for primes below 2^50. Shared by the NTT, the element-wise kernels of
// vecmod and the multiply-accumulate of he/. Every function carries VEIL_AVX512, so these
// instructions only ever run behind a simd_level() check (math/cpu.hpp).
//
// - Shoup's product by a constant w with the 52-bit quotient w' = floor(w 2^52 / q)
//   (Shoup 2001; the IFMA form as in Intel HEXL, Boemer et al. 2021): for y < 2^52,
//   y w - floor(y w' / 2^52) q lies in [0, 2q), the lazy range of Harvey's butterflies.
// - Barrett reduction of a product P = a b < 2^(L+51) of a prime q of L bits (2^(L-1) < q
//   < 2^L, 13 <= L <= 50): with x = floor(P / 2^(L-1)) < 2^52 and
//   m = floor(2^(L+51) / q) < 2^52, the estimate floor(x m / 2^52) is at most 2 below
//   floor(P / q), so the remainder lies in [0, 3q), below 2^52, and is computed modulo
//   2^52 from the low 52 bits alone.
#pragma once

#include <immintrin.h>

#include "veil/math/modarith.hpp"

#define VEIL_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512ifma,avx2,fma")))

namespace veil::math::ifma {

// The IFMA kernels serve primes of 13 to 50 bits: 4q < 2^52 keeps lazy values inside the
// multiplier's 52 bits; from 13 bits up a 64-bit sum fits one Barrett step.
inline bool applicable(const Modulus& q) { return q.bits() >= 13 && q.bits() <= 50; }

// floor(w 2^52 / q): Shoup's quotient for the 52-bit multiplier.
inline u64 shoup52(u64 w, u64 q) { return static_cast<u64>((static_cast<u128>(w) << 52) / q); }

struct Consts {
  __m512i q, two_q, neg_q, mask52, barrett;
  __m128i shift_lo, shift_hi;  // L - 1 and 53 - L
};

VEIL_AVX512 inline Consts consts(const Modulus& m) {
  const int L = m.bits();
  const u64 barrett = static_cast<u64>((u128{1} << (L + 51)) / m.value());
  return {_mm512_set1_epi64(static_cast<long long>(m.value())),
          _mm512_set1_epi64(static_cast<long long>(2 * m.value())),
          _mm512_set1_epi64(-static_cast<long long>(m.value())),
          _mm512_set1_epi64((1LL << 52) - 1),
          _mm512_set1_epi64(static_cast<long long>(barrett)),
          _mm_cvtsi32_si128(L - 1),
          _mm_cvtsi32_si128(53 - L)};
}

VEIL_AVX512 inline __m512i load(const u64* p) { return _mm512_loadu_si512(p); }
VEIL_AVX512 inline void store(u64* p, __m512i v) { _mm512_storeu_si512(p, v); }

// x - m if x >= m (unsigned): the wrapped difference is the larger one otherwise.
VEIL_AVX512 inline __m512i csub(__m512i x, __m512i m) { return _mm512_min_epu64(x, _mm512_sub_epi64(x, m)); }

// y w mod q in [0, 2q) for y < 2^52, w < q and ws = shoup52(w, q).
VEIL_AVX512 inline __m512i mul_shoup_lazy(__m512i y, __m512i w, __m512i ws, const Consts& c) {
  const __m512i quot = _mm512_madd52hi_epu64(_mm512_setzero_si512(), y, ws);
  const __m512i lo = _mm512_madd52lo_epu64(_mm512_setzero_si512(), y, w);
  // (y w - quot q) mod 2^52, exact because the true value lies in [0, 2^52).
  return _mm512_and_si512(_mm512_madd52lo_epu64(lo, quot, c.neg_q), c.mask52);
}

// P mod q in [0, 3q) for P = hi 2^52 + lo (hi and lo sums of IFMA halves, lo < 2^64)
// below 2^(L+51).
VEIL_AVX512 inline __m512i barrett_lazy(__m512i hi, __m512i lo, const Consts& c) {
  const __m512i x = _mm512_add_epi64(_mm512_sll_epi64(hi, c.shift_hi), _mm512_srl_epi64(lo, c.shift_lo));
  const __m512i quot = _mm512_madd52hi_epu64(_mm512_setzero_si512(), x, c.barrett);
  return _mm512_and_si512(_mm512_madd52lo_epu64(lo, quot, c.neg_q), c.mask52);
}

// a b mod q in [0, 3q) for a, b < 2^52 with a b < 2^(L+51) (a, b < q suffices, and so
// does a < 2q, b < q).
VEIL_AVX512 inline __m512i mul_lazy(__m512i a, __m512i b, const Consts& c) {
  const __m512i z = _mm512_setzero_si512();
  return barrett_lazy(_mm512_madd52hi_epu64(z, a, b), _mm512_madd52lo_epu64(z, a, b), c);
}

// [0, 3q) -> [0, q).
VEIL_AVX512 inline __m512i reduce3(__m512i x, const Consts& c) { return csub(csub(x, c.two_q), c.q); }

// Any 64-bit value -> [0, q) (needs L >= 13: then x < 2^52).
VEIL_AVX512 inline __m512i reduce64(__m512i v, const Consts& c) {
  return reduce3(barrett_lazy(_mm512_setzero_si512(), v, c), c);
}

// Sums of products kept as two 64-bit sums of their 52-bit halves (vpmadd52huq into hi,
// vpmadd52luq into lo; exact for up to 2^11 products of residues below 2^52), folded to
// [0, q) once at the end: (hi 2^52 + lo) mod q = (hi mod q)(2^52 mod q) + lo mod q.
struct HalvesFold {
  __m512i c52, c52s;  // 2^52 mod q and its Shoup quotient
};

VEIL_AVX512 inline HalvesFold halves_fold(const Modulus& m) {
  const u64 c52 = static_cast<u64>((u128{1} << 52) % m.value());
  return {_mm512_set1_epi64(static_cast<long long>(c52)),
          _mm512_set1_epi64(static_cast<long long>(shoup52(c52, m.value())))};
}

VEIL_AVX512 inline __m512i fold_halves(__m512i hi, __m512i lo, const HalvesFold& f, const Consts& c) {
  const __m512i h = mul_shoup_lazy(reduce64(hi, c), f.c52, f.c52s, c);  // [0, 2q)
  return reduce3(_mm512_add_epi64(h, reduce64(lo, c)), c);
}

}  // namespace veil::math::ifma
