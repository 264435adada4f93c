// Internal: modular arithmetic on four residues at a time in the 52-bit mantissa of
// doubles (AVX2 + FMA), for primes below 2^50. Shared by the NTT, the element-wise
// kernels of vecmod.cpp and fast base conversion.
//
// The product uses the FMA "two-product" (van der Hoeven, Lecerf, Quintin 2016, "Modular
// SIMD arithmetic in Mathemagix"): with h = x*y rounded and l = fma(x, y, -h), x*y = h + l
// exactly. A quotient estimate k within one of floor(x*y/q) then gives
// r = fma(-k, q, h) + l = x*y - k*q exactly, in [-q, 2q): every step is exact because the
// true value of each intermediate result fits in 53 bits.
#pragma once

#include <immintrin.h>

#include "veil/math/modarith.hpp"

#define VEIL_AVX2 __attribute__((target("avx2,fma")))

namespace veil::math::fp {

// u64 residues below 2^52 <-> doubles, via the 2^52 exponent trick.
VEIL_AVX2 inline __m256d to_double(__m256i v) {
  const __m256i bits = _mm256_set1_epi64x(0x4330000000000000LL);
  const __m256d magic = _mm256_set1_pd(4503599627370496.0);
  return _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(v, bits)), magic);
}

VEIL_AVX2 inline __m256d load(const u64* p) {
  return to_double(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

VEIL_AVX2 inline __m256i to_int(__m256d d) {
  const __m256i bits = _mm256_set1_epi64x(0x4330000000000000LL);
  const __m256d magic = _mm256_set1_pd(4503599627370496.0);
  return _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(d, magic)), bits);
}

VEIL_AVX2 inline void store(u64* p, __m256d d) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_int(d));
}

// A 64-bit sum s of products of residues (any s < 2^64) mod q < 2^30, in 64-bit lanes:
// two folds by fold_by = 2^32 mod q bring it below 2^32 + q^2 + q < 2^61; a quotient
// from doubles (the halves exact, their sum within 2^9, so off by at most one either
// way, and below 2^32) leaves a remainder in (-q, 2q), corrected to [0, q). What the
// integer-lane kernels for sub-30-bit primes end with (vecmod.cpp, rns.cpp).
VEIL_AVX2 inline __m256i reduce_narrow(__m256i s, __m256i fold_by, __m256i qv, __m256d qinv) {
  const __m256i low = _mm256_set1_epi64x(0xffffffffLL);
  s = _mm256_add_epi64(_mm256_and_si256(s, low), _mm256_mul_epu32(_mm256_srli_epi64(s, 32), fold_by));
  s = _mm256_add_epi64(_mm256_and_si256(s, low), _mm256_mul_epu32(_mm256_srli_epi64(s, 32), fold_by));
  const __m256d sd = _mm256_fmadd_pd(to_double(_mm256_srli_epi64(s, 32)), _mm256_set1_pd(4294967296.0),
                                     to_double(_mm256_and_si256(s, low)));
  const __m256d quot = _mm256_floor_pd(_mm256_mul_pd(sd, qinv));
  __m256i r = _mm256_sub_epi64(s, _mm256_mul_epu32(to_int(quot), qv));
  r = _mm256_add_epi64(r, _mm256_and_si256(qv, _mm256_cmpgt_epi64(_mm256_setzero_si256(), r)));
  return _mm256_sub_epi64(r, _mm256_andnot_si256(_mm256_cmpgt_epi64(qv, r), qv));
}

// x - m if x >= m.
VEIL_AVX2 inline __m256d csub(__m256d x, __m256d m) {
  return _mm256_sub_pd(x, _mm256_and_pd(_mm256_cmp_pd(x, m, _CMP_GE_OQ), m));
}

// x + m if x < 0.
VEIL_AVX2 inline __m256d cadd(__m256d x, __m256d m) {
  return _mm256_add_pd(x, _mm256_and_pd(_mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ), m));
}

VEIL_AVX2 inline __m256d floor(__m256d x) {
  return _mm256_round_pd(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
}

// y*w - k*q in [-q, 2q) for a constant w < q with wq = w/q precomputed; y < 2^52.
VEIL_AVX2 inline __m256d mul_const(__m256d y, __m256d w, __m256d wq, __m256d q) {
  const __m256d h = _mm256_mul_pd(y, w);
  const __m256d l = _mm256_fmsub_pd(y, w, h);
  const __m256d k = floor(_mm256_mul_pd(y, wq));
  return _mm256_add_pd(_mm256_fnmadd_pd(k, q, h), l);
}

// x*y - k*q in [-q, 2q) for x, y in [0, q); qinv = 1/q. The estimate h/q is within a
// relative 2^-51 of x*y/q < 2^50, so its floor is within one of the true quotient.
VEIL_AVX2 inline __m256d mul(__m256d x, __m256d y, __m256d q, __m256d qinv) {
  const __m256d h = _mm256_mul_pd(x, y);
  const __m256d l = _mm256_fmsub_pd(x, y, h);
  const __m256d k = floor(_mm256_mul_pd(h, qinv));
  return _mm256_add_pd(_mm256_fnmadd_pd(k, q, h), l);
}

// Any integer |x| < 2^53 to [0, q).
VEIL_AVX2 inline __m256d reduce(__m256d x, __m256d q, __m256d qinv) {
  const __m256d r = _mm256_fnmadd_pd(floor(_mm256_mul_pd(x, qinv)), q, x);
  return csub(cadd(r, q), q);
}

}  // namespace veil::math::fp
