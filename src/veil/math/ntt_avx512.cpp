// AVX-512 negacyclic NTT, eight residues a vector, Harvey's lazy butterflies as in the
// scalar kernel (ntt.cpp): values in [0, 4q) between stages, twiddle products in [0, 2q).
//
// Two twiddle multipliers, chosen per prime:
// - IFMA52 (primes below 2^50): Shoup's product with 52-bit quotients, three IFMA
//   instructions (ifma_avx512.hpp; the technique of Intel HEXL's NTT).
// - 64-bit (wider primes, up to 61 bits): Shoup's product with the 64-bit quotients of the
//   scalar kernel; AVX-512 has no 64 x 64 -> high 64-bit multiply, so the high half is
//   built from four 32 x 32-bit vpmuludq products, and the low halves use vpmullq.
// The last stages (t = 4, 2, 1) pair lanes inside vectors: two vectors hold 16
// consecutive residues, and vpermt2q sorts them into the x and y halves of their
// butterflies and back.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_epi32() as the unused merge source,
// which -Wmaybe-uninitialized reports at every inlined call (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <array>

#include "veil/math/ifma_avx512.hpp"
#include "veil/math/ntt.hpp"

namespace veil::math {

namespace {

using ifma::csub;

struct Ifma52 {
  ifma::Consts c;
  VEIL_AVX512 __m512i mul_lazy(__m512i y, __m512i w, __m512i ws) const {
    return ifma::mul_shoup_lazy(y, w, ws, c);
  }
};

// The high 64 bits of a 64 x 64-bit product, lane by lane.
VEIL_AVX512 inline __m512i mulhi_epu64(__m512i a, __m512i b) {
  const __m512i lo32 = _mm512_set1_epi64(0xffffffffLL);
  const __m512i a_hi = _mm512_srli_epi64(a, 32), b_hi = _mm512_srli_epi64(b, 32);
  const __m512i ll = _mm512_mul_epu32(a, b), lh = _mm512_mul_epu32(a, b_hi);
  const __m512i hl = _mm512_mul_epu32(a_hi, b), hh = _mm512_mul_epu32(a_hi, b_hi);
  const __m512i mid = _mm512_add_epi64(lh, _mm512_srli_epi64(ll, 32));  // no carry out
  const __m512i mid2 = _mm512_add_epi64(hl, _mm512_and_si512(mid, lo32));
  return _mm512_add_epi64(_mm512_add_epi64(hh, _mm512_srli_epi64(mid, 32)), _mm512_srli_epi64(mid2, 32));
}

struct Wide64 {
  __m512i q;
  VEIL_AVX512 __m512i mul_lazy(__m512i y, __m512i w, __m512i ws) const {
    const __m512i quot = mulhi_epu64(y, ws);
    return _mm512_sub_epi64(_mm512_mullo_epi64(y, w), _mm512_mullo_epi64(quot, q));
  }
};

// Forward (Cooley-Tukey) butterfly on eight lanes.
template <class Mul>
VEIL_AVX512 inline void ct_bfly(__m512i& x, __m512i& y, __m512i w, __m512i ws, __m512i two_q,
                                const Mul& mul) {
  const __m512i X = csub(x, two_q);
  const __m512i T = mul.mul_lazy(y, w, ws);
  x = _mm512_add_epi64(X, T);
  y = _mm512_add_epi64(_mm512_sub_epi64(X, T), two_q);
}

// Inverse (Gentleman-Sande) butterfly on eight lanes.
template <class Mul>
VEIL_AVX512 inline void gs_bfly(__m512i& x, __m512i& y, __m512i w, __m512i ws, __m512i two_q,
                                const Mul& mul) {
  const __m512i U = csub(_mm512_add_epi64(x, y), two_q);
  const __m512i T = _mm512_add_epi64(_mm512_sub_epi64(x, y), two_q);
  x = U;
  y = mul.mul_lazy(T, w, ws);
}

// Lane permutations for a butterfly distance t in {1, 2, 4} over 16 consecutive residues
// (vector A = 0..7, B = 8..15): split[0] gathers the x positions (bit t clear), split[1]
// the y positions, in order; merge[0] and merge[1] put them back into A and B (indices
// 0..7 take from the x vector, 8..15 from the y vector). twid spreads the twiddles of
// the 16 / (2t) blocks over the x lanes.
struct Shuffle {
  __m512i split[2], merge[2], twid;
};

VEIL_AVX512 Shuffle make_shuffle(int t) {
  alignas(64) std::array<long long, 8> sx{}, sy{}, m0{}, m1{}, tw{};
  int nx = 0, ny = 0;
  std::array<int, 16> rank{};
  for (int p = 0; p < 16; ++p) {
    if (p & t) {
      sy[ny] = p, rank[p] = 8 + ny++;
    } else {
      tw[nx] = p / (2 * t), sx[nx] = p, rank[p] = nx++;
    }
  }
  for (int p = 0; p < 8; ++p) m0[p] = rank[p], m1[p] = rank[p + 8];
  return {{_mm512_load_si512(sx.data()), _mm512_load_si512(sy.data())},
          {_mm512_load_si512(m0.data()), _mm512_load_si512(m1.data())},
          _mm512_load_si512(tw.data())};
}

// The twiddles (and quotients) of the 16 / (2t) blocks starting at block b, one per x lane.
VEIL_AVX512 inline __m512i spread(const u64* w, std::size_t b, int t, const Shuffle& s) {
  const __mmask8 k = static_cast<__mmask8>((1u << (8 / t)) - 1);
  return _mm512_permutexvar_epi64(s.twid, _mm512_maskz_loadu_epi64(k, w + b));
}

template <class Mul>
VEIL_AVX512 void forward(std::size_t n, const u64* w, const u64* ws, u64 qv, const Mul& mul, u64* a) {
  const __m512i q = _mm512_set1_epi64(static_cast<long long>(qv));
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * qv));
  std::size_t t = n, m = 1;
  for (; t > 8; m <<= 1) {  // t >= 8 after halving: whole vectors per half-block
    t >>= 1;
    for (std::size_t i = 0; i < m; ++i) {
      const __m512i W = _mm512_set1_epi64(static_cast<long long>(w[m + i]));
      const __m512i WS = _mm512_set1_epi64(static_cast<long long>(ws[m + i]));
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; j += 8) {
        __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
        ct_bfly(X, Y, W, WS, two_q, mul);
        _mm512_storeu_si512(x + j, X);
        _mm512_storeu_si512(y + j, Y);
      }
    }
  }
  // t = 4, 2, 1 (m = n/8, n/4, n/2): 16 residues at a time; the last stage also reduces
  // from [0, 4q) to [0, q).
  for (int tt = 4; tt >= 1; tt >>= 1, m <<= 1) {
    const Shuffle s = make_shuffle(tt);
    for (std::size_t g = 0; g < n; g += 16) {
      const __m512i A = _mm512_loadu_si512(a + g), B = _mm512_loadu_si512(a + g + 8);
      __m512i X = _mm512_permutex2var_epi64(A, s.split[0], B);
      __m512i Y = _mm512_permutex2var_epi64(A, s.split[1], B);
      const std::size_t b = m + g / (2 * tt);
      ct_bfly(X, Y, spread(w, b, tt, s), spread(ws, b, tt, s), two_q, mul);
      if (tt == 1) {
        X = csub(csub(X, two_q), q);
        Y = csub(csub(Y, two_q), q);
      }
      _mm512_storeu_si512(a + g, _mm512_permutex2var_epi64(X, s.merge[0], Y));
      _mm512_storeu_si512(a + g + 8, _mm512_permutex2var_epi64(X, s.merge[1], Y));
    }
  }
}

template <class Mul>
VEIL_AVX512 void inverse(std::size_t n, const u64* w, const u64* ws, u64 qv, u64 ni, u64 nis, const Mul& mul,
                         u64* a) {
  const __m512i q = _mm512_set1_epi64(static_cast<long long>(qv));
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * qv));
  // t = 1, 2, 4 (h = n/2, n/4, n/8).
  std::size_t h = n / 2;
  for (int tt = 1; tt <= 4; tt <<= 1, h >>= 1) {
    const Shuffle s = make_shuffle(tt);
    for (std::size_t g = 0; g < n; g += 16) {
      const __m512i A = _mm512_loadu_si512(a + g), B = _mm512_loadu_si512(a + g + 8);
      __m512i X = _mm512_permutex2var_epi64(A, s.split[0], B);
      __m512i Y = _mm512_permutex2var_epi64(A, s.split[1], B);
      const std::size_t b = h + g / (2 * tt);
      gs_bfly(X, Y, spread(w, b, tt, s), spread(ws, b, tt, s), two_q, mul);
      _mm512_storeu_si512(a + g, _mm512_permutex2var_epi64(X, s.merge[0], Y));
      _mm512_storeu_si512(a + g + 8, _mm512_permutex2var_epi64(X, s.merge[1], Y));
    }
  }
  std::size_t t = 8;
  for (std::size_t m = n / 8; m > 1; m >>= 1) {
    const std::size_t hh = m >> 1;
    for (std::size_t i = 0; i < hh; ++i) {
      const __m512i W = _mm512_set1_epi64(static_cast<long long>(w[hh + i]));
      const __m512i WS = _mm512_set1_epi64(static_cast<long long>(ws[hh + i]));
      u64* x = a + 2 * i * t;
      u64* y = x + t;
      for (std::size_t j = 0; j < t; j += 8) {
        __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(y + j);
        gs_bfly(X, Y, W, WS, two_q, mul);
        _mm512_storeu_si512(x + j, X);
        _mm512_storeu_si512(y + j, Y);
      }
    }
    t <<= 1;
  }
  // Scale by 1/n and reduce from [0, 2q) to [0, q).
  const __m512i N = _mm512_set1_epi64(static_cast<long long>(ni));
  const __m512i NS = _mm512_set1_epi64(static_cast<long long>(nis));
  for (std::size_t j = 0; j < n; j += 8)
    _mm512_storeu_si512(a + j, csub(mul.mul_lazy(_mm512_loadu_si512(a + j), N, NS), q));
}

}  // namespace

bool ntt_avx512_applicable(const NttTables& t) { return t.n() >= 16; }
bool ntt_avx512_uses_ifma(const NttTables& t) { return !t.psi_rev_shoup52().empty(); }

VEIL_AVX512 void ntt_forward_avx512(const NttTables& tab, u64* a) {
  const u64 q = tab.modulus().value();
  if (ntt_avx512_uses_ifma(tab)) {
    forward(tab.n(), tab.psi_rev().data(), tab.psi_rev_shoup52().data(), q,
            Ifma52{ifma::consts(tab.modulus())}, a);
  } else {
    forward(tab.n(), tab.psi_rev().data(), tab.psi_rev_shoup().data(), q,
            Wide64{_mm512_set1_epi64(static_cast<long long>(q))}, a);
  }
}

VEIL_AVX512 void ntt_inverse_avx512(const NttTables& tab, u64* a) {
  const u64 q = tab.modulus().value();
  if (ntt_avx512_uses_ifma(tab)) {
    inverse(tab.n(), tab.psi_inv_rev().data(), tab.psi_inv_rev_shoup52().data(), q, tab.n_inv(),
            tab.n_inv_shoup52(), Ifma52{ifma::consts(tab.modulus())}, a);
  } else {
    inverse(tab.n(), tab.psi_inv_rev().data(), tab.psi_inv_rev_shoup().data(), q, tab.n_inv(),
            tab.n_inv_shoup(), Wide64{_mm512_set1_epi64(static_cast<long long>(q))}, a);
  }
}

}  // namespace veil::math
