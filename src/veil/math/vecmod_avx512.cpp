// The element-wise kernels of vecmod.cpp with AVX-512 IFMA52, eight residues a vector,
// for primes of 13 to 50 bits (ifma_avx512.hpp). Products of reduced residues are below
// 2^100: their low and high 52-bit halves come from one vpmadd52luq and one vpmadd52huq,
// and a sum of products is kept as two 64-bit sums of halves (exact for up to 2^12
// terms), reduced once at the end instead of once per product.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_epi32() as the unused merge source,
// which -Wmaybe-uninitialized reports at every inlined call (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstdint>

#include "veil/math/ifma_avx512.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::math {

VEIL_AVX512 void add_avx512(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n) {
  const __m512i q = _mm512_set1_epi64(static_cast<long long>(m.value()));
  for (std::size_t j = 0; j < n; j += 8)
    ifma::store(out + j, ifma::csub(_mm512_add_epi64(ifma::load(a + j), ifma::load(b + j)), q));
}

// a - b + q lies in (0, 2q): one conditional subtraction.
VEIL_AVX512 void sub_avx512(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n) {
  const __m512i q = _mm512_set1_epi64(static_cast<long long>(m.value()));
  for (std::size_t j = 0; j < n; j += 8)
    ifma::store(out + j,
                ifma::csub(_mm512_add_epi64(_mm512_sub_epi64(ifma::load(a + j), ifma::load(b + j)), q), q));
}

VEIL_AVX512 void rank_avx512(const u64* r, std::size_t n, const u64* t, std::size_t m, u64* out) {
  const __m512i one = _mm512_set1_epi64(1);
  for (std::size_t j = 0; j < n; j += 8) {
    const __m512i v = ifma::load(r + j);
    __m512i acc = _mm512_setzero_si512();
    for (std::size_t k = 0; k < m; ++k)
      acc = _mm512_mask_add_epi64(
          acc, _mm512_cmpge_epu64_mask(v, _mm512_set1_epi64(static_cast<long long>(t[k]))), acc, one);
    ifma::store(out + j, acc);
  }
}

// r reduced (ifma::reduce64), and p mod q taken off (plus q where that is negative) in the
// lanes where r > p / 2.
VEIL_AVX512 void lift_centred_avx512(const Modulus& m, const u64* r, u64 p, u64* out, std::size_t n) {
  const ifma::Consts c = ifma::consts(m);
  const __m512i half = _mm512_set1_epi64(static_cast<long long>(p >> 1));
  const __m512i p_mod = _mm512_set1_epi64(static_cast<long long>(m.reduce(p)));
  for (std::size_t j = 0; j < n; j += 8) {
    const __m512i v = ifma::load(r + j);
    const __m512i ri = ifma::reduce64(v, c);
    const __m512i low = _mm512_sub_epi64(_mm512_add_epi64(ri, c.q), p_mod);  // (0, 2q)
    const __mmask8 upper = _mm512_cmpgt_epu64_mask(v, half);
    ifma::store(out + j, _mm512_mask_mov_epi64(ri, upper, ifma::csub(low, c.q)));
  }
}

// Both words reduced from 64 bits (ifma::reduce64), the product with w by Shoup's method.
VEIL_AVX512 void mul_const_add_wide_avx512(const Modulus& m, const u64* x, u64 w, const u64* y, u64* out,
                                           std::size_t n) {
  const ifma::Consts c = ifma::consts(m);
  const __m512i wv = _mm512_set1_epi64(static_cast<long long>(w));
  const __m512i ws = _mm512_set1_epi64(static_cast<long long>(ifma::shoup52(w, m.value())));
  for (std::size_t j = 0; j < n; j += 8) {
    const __m512i p = ifma::mul_shoup_lazy(ifma::reduce64(ifma::load(x + j), c), wv, ws, c);  // [0, 2q)
    ifma::store(out + j, ifma::reduce3(_mm512_add_epi64(p, ifma::reduce64(ifma::load(y + j), c)), c));
  }
}

VEIL_AVX512 void mul_avx512(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n) {
  const ifma::Consts c = ifma::consts(m);
  for (std::size_t j = 0; j < n; j += 8)
    ifma::store(out + j, ifma::reduce3(ifma::mul_lazy(ifma::load(a + j), ifma::load(b + j), c), c));
}

// y = null: out = x * w; else out = (x - y) * w. x - y + q lies in (0, 2q), below 2^52.
VEIL_AVX512 void mul_const_avx512(const Modulus& m, const u64* x, const u64* y, u64 w, u64* out,
                                  std::size_t n) {
  const ifma::Consts c = ifma::consts(m);
  const __m512i wv = _mm512_set1_epi64(static_cast<long long>(w));
  const __m512i ws = _mm512_set1_epi64(static_cast<long long>(ifma::shoup52(w, m.value())));
  for (std::size_t j = 0; j < n; j += 8) {
    __m512i v = ifma::load(x + j);
    if (y) v = _mm512_add_epi64(_mm512_sub_epi64(v, ifma::load(y + j)), c.q);
    ifma::store(out + j, ifma::csub(ifma::mul_shoup_lazy(v, wv, ws, c), c.q));
  }
}

VEIL_AVX512 void tensor_avx512(const Modulus& m, const u64* a0, const u64* a1, const u64* b0, const u64* b1,
                               u64* c0, u64* c1, u64* c2, std::size_t n) {
  const ifma::Consts c = ifma::consts(m);
  const bool square = a0 == b0 && a1 == b1;
  const __m512i z = _mm512_setzero_si512();
  for (std::size_t j = 0; j < n; j += 8) {
    const __m512i x0 = ifma::load(a0 + j), x1 = ifma::load(a1 + j);
    const __m512i y0 = square ? x0 : ifma::load(b0 + j), y1 = square ? x1 : ifma::load(b1 + j);
    // The middle term x0 y1 + x1 y0 < 2 q^2 < 2^(L+51): one Barrett step for the sum.
    __m512i mid;
    if (square) {
      mid = ifma::mul_lazy(_mm512_add_epi64(x0, x0), x1, c);
    } else {
      const __m512i hi = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, x0, y1), x1, y0);
      const __m512i lo = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, x0, y1), x1, y0);
      mid = ifma::barrett_lazy(hi, lo, c);
    }
    ifma::store(c0 + j, ifma::reduce3(ifma::mul_lazy(x0, y0, c), c));
    ifma::store(c1 + j, ifma::reduce3(mid, c));
    ifma::store(c2 + j, ifma::reduce3(ifma::mul_lazy(x1, y1, c), c));
  }
}

namespace {

// Eight key words in 64-bit lanes: held whole, in 32-bit words, or in 33 bits (Words33; j
// is a multiple of 8, so the eight words' 33rd bits are the byte high[j / 8], used as a
// lane mask).
VEIL_AVX512 inline __m512i load_key(const u64* k, std::size_t j) { return ifma::load(k + j); }
VEIL_AVX512 inline __m512i load_key(const std::uint32_t* k, std::size_t j) {
  return _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + j)));
}
VEIL_AVX512 inline __m512i load_key(const Words33& k, std::size_t j) {
  const __m512i low = _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.low + j)));
  return _mm512_mask_or_epi64(low, static_cast<__mmask8>(k.high[j / 8]), low, _mm512_set1_epi64(1LL << 32));
}

template <typename Key>
VEIL_AVX512 void dot2_ifma(const Modulus& m, std::size_t terms, const u64* const* v,
                           const std::uint32_t* perm, const Key* k0, const Key* k1, u64* o0, u64* o1,
                           std::size_t n) {
  const ifma::Consts c = ifma::consts(m);
  const ifma::HalvesFold f = ifma::halves_fold(m);
  // Each term adds below 2^52 to a 64-bit sum of halves: fold every 2^11 terms.
  constexpr std::size_t kFold = std::size_t{1} << 11;
  for (std::size_t j = 0; j < n; j += 8) {
    __m512i h0 = _mm512_setzero_si512(), l0 = h0, h1 = h0, l1 = h0;
    const __m256i idx = perm ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(perm + j)) : __m256i{};
    for (std::size_t t = 0; t < terms; ++t) {
      const __m512i x = perm ? _mm512_i32gather_epi64(idx, v[t], 8) : ifma::load(v[t] + j);
      const __m512i a = load_key(k0[t], j), b = load_key(k1[t], j);
      h0 = _mm512_madd52hi_epu64(h0, x, a);
      l0 = _mm512_madd52lo_epu64(l0, x, a);
      h1 = _mm512_madd52hi_epu64(h1, x, b);
      l1 = _mm512_madd52lo_epu64(l1, x, b);
      if ((t + 1) % kFold == 0 && t + 1 < terms) {
        l0 = ifma::fold_halves(h0, l0, f, c);
        l1 = ifma::fold_halves(h1, l1, f, c);
        h0 = h1 = _mm512_setzero_si512();
      }
    }
    ifma::store(o0 + j, ifma::fold_halves(h0, l0, f, c));
    ifma::store(o1 + j, ifma::fold_halves(h1, l1, f, c));
  }
}

}  // namespace

VEIL_AVX512 void dot2_avx512(const Modulus& m, std::size_t terms, const u64* const* v,
                             const std::uint32_t* perm, const u64* const* k0, const u64* const* k1, u64* o0,
                             u64* o1, std::size_t n) {
  dot2_ifma(m, terms, v, perm, k0, k1, o0, o1, n);
}

VEIL_AVX512 void dot2_avx512(const Modulus& m, std::size_t terms, const u64* const* v,
                             const std::uint32_t* perm, const Words33* k0, const Words33* k1, u64* o0,
                             u64* o1, std::size_t n) {
  dot2_ifma(m, terms, v, perm, k0, k1, o0, o1, n);
}

VEIL_AVX512 void dot2_avx512(const Modulus& m, std::size_t terms, const u64* const* v,
                             const std::uint32_t* perm, const std::uint32_t* const* k0,
                             const std::uint32_t* const* k1, u64* o0, u64* o1, std::size_t n) {
  dot2_ifma(m, terms, v, perm, k0, k1, o0, o1, n);
}

namespace {

// c = hi 2^32 + lo, sign-extended, plus a multiple of q above 2^39 so that it is
// non-negative (and below 2^51), then one Barrett reduction (ifma::reduce64).
template <class Word>
VEIL_AVX512 void lift_signed40_ifma(const Modulus& m, const std::uint32_t* lo, const std::int8_t* hi,
                                    Word* out, std::size_t n) {
  const ifma::Consts c = ifma::consts(m);
  const u64 q = m.value();
  const __m512i offset = _mm512_set1_epi64(static_cast<long long>(((u64{1} << 39) / q + 1) * q));
  for (std::size_t j = 0; j < n; j += 8) {
    const __m512i l = _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + j)));
    const __m512i h = _mm512_cvtepi8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(hi + j)));
    const __m512i v =
        ifma::reduce64(_mm512_add_epi64(_mm512_or_si512(_mm512_slli_epi64(h, 32), l), offset), c);
    if constexpr (sizeof(Word) == 8) {
      ifma::store(out + j, v);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), _mm512_cvtepi64_epi32(v));
    }
  }
}

}  // namespace

VEIL_AVX512 void lift_signed40_avx512(const Modulus& m, const std::uint32_t* lo, const std::int8_t* hi,
                                      u64* out, std::size_t n) {
  lift_signed40_ifma(m, lo, hi, out, n);
}

VEIL_AVX512 void lift_signed40_avx512(const Modulus& m, const std::uint32_t* lo, const std::int8_t* hi,
                                      std::uint32_t* out, std::size_t n) {
  lift_signed40_ifma(m, lo, hi, out, n);
}

}  // namespace veil::math
