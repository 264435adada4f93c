// Fast base conversion's inner sum with AVX-512 IFMA (rns.cpp), for targets of 13 to 50
// bits: out = sum_i y_i w_i mod p over the source limbs, sixteen coefficients at a time.
// The products accumulate as sums of their 52-bit halves and are reduced once per output
// (ifma_avx512.hpp). Sources wider than 52 bits, which IFMA's 52-bit inputs cannot take
// whole, enter as y = lo + hi 2^32 with the constant w 2^32 mod p for the high part.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_epi32() as the unused merge source,
// which -Wmaybe-uninitialized reports at every inlined call (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstddef>

#include "veil/math/ifma_avx512.hpp"

namespace veil::math {

// tab holds, per source i, w_i and w_i 2^32 mod p; wide[i] says whether source i is wider
// than 52 bits. n is a multiple of 16; nf at most 64 (so at most 128 products a sum).
VEIL_AVX512 void convert_target_avx512(const Modulus& target, std::size_t nf, const u64* const* y,
                                       const u64* tab, const char* wide, u64* out, std::size_t n) {
  const ifma::Consts c = ifma::consts(target);
  const ifma::HalvesFold f = ifma::halves_fold(target);
  const __m512i lo32 = _mm512_set1_epi64(0xffffffffLL);
  for (std::size_t j = 0; j < n; j += 16) {
    __m512i h0 = _mm512_setzero_si512(), l0 = h0, h1 = h0, l1 = h0;
    for (std::size_t i = 0; i < nf; ++i) {
      const __m512i w = _mm512_set1_epi64(static_cast<long long>(tab[2 * i]));
      __m512i v0 = ifma::load(y[i] + j), v1 = ifma::load(y[i] + j + 8);
      if (wide[i]) {
        const __m512i w32 = _mm512_set1_epi64(static_cast<long long>(tab[2 * i + 1]));
        const __m512i u0 = _mm512_srli_epi64(v0, 32), u1 = _mm512_srli_epi64(v1, 32);
        h0 = _mm512_madd52hi_epu64(h0, u0, w32);
        l0 = _mm512_madd52lo_epu64(l0, u0, w32);
        h1 = _mm512_madd52hi_epu64(h1, u1, w32);
        l1 = _mm512_madd52lo_epu64(l1, u1, w32);
        v0 = _mm512_and_si512(v0, lo32);
        v1 = _mm512_and_si512(v1, lo32);
      }
      h0 = _mm512_madd52hi_epu64(h0, v0, w);
      l0 = _mm512_madd52lo_epu64(l0, v0, w);
      h1 = _mm512_madd52hi_epu64(h1, v1, w);
      l1 = _mm512_madd52lo_epu64(l1, v1, w);
    }
    ifma::store(out + j, ifma::fold_halves(h0, l0, f, c));
    ifma::store(out + j + 8, ifma::fold_halves(h1, l1, f, c));
  }
}

}  // namespace veil::math
