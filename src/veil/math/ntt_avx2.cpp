// AVX2 + FMA negacyclic NTT for primes below 2^50.
//
// Residues live in the 52-bit mantissa of doubles (fpmod_avx2.hpp): the twiddle products
// are exact two-products in [-q, 2q), corrected once to [0, 2q): the same lazy range as
// Shoup's product, so Harvey's butterflies and their [0, 4q) bounds carry over unchanged
// (4q < 2^52).
#include "veil/math/fpmod_avx2.hpp"
#include "veil/math/ntt.hpp"

namespace veil::math {

namespace {

struct Consts {
  __m256d q, two_q;
};

VEIL_AVX2 inline __m256d mulmod_lazy(__m256d y, __m256d w, __m256d wq, const Consts& c) {
  return fp::cadd(fp::mul_const(y, w, wq, c.q), c.q);
}

using fp::csub;

// Forward (Cooley-Tukey) butterfly on four lanes.
VEIL_AVX2 inline void ct_bfly(__m256d& x, __m256d& y, __m256d w, __m256d wq, const Consts& c) {
  const __m256d X = csub(x, c.two_q);
  const __m256d T = mulmod_lazy(y, w, wq, c);
  x = _mm256_add_pd(X, T);
  y = _mm256_add_pd(_mm256_sub_pd(X, T), c.two_q);
}

// Inverse (Gentleman-Sande) butterfly on four lanes.
VEIL_AVX2 inline void gs_bfly(__m256d& x, __m256d& y, __m256d w, __m256d wq, const Consts& c) {
  const __m256d U = csub(_mm256_add_pd(x, y), c.two_q);
  const __m256d T = _mm256_add_pd(_mm256_sub_pd(x, y), c.two_q);
  x = U;
  y = mulmod_lazy(T, w, wq, c);
}

// u64 residues < 2^52 -> doubles, in place.
VEIL_AVX2 void to_double_inplace(u64* a, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 4) _mm256_storeu_pd(reinterpret_cast<double*>(a + i), fp::load(a + i));
}

}  // namespace

bool ntt_avx2_applicable(const NttTables& t) { return t.modulus().bits() <= 50 && t.n() >= 8; }

VEIL_AVX2 void ntt_forward_avx2(const NttTables& tab, u64* a) {
  const std::size_t n = tab.n();
  const double qd = static_cast<double>(tab.modulus().value());
  const Consts c{_mm256_set1_pd(qd), _mm256_set1_pd(2 * qd)};
  const double* w = tab.psi_rev_double().data();
  const double* wq = tab.psi_rev_quot().data();
  double* d = reinterpret_cast<double*>(a);
  to_double_inplace(a, n);
  std::size_t t = n;
  std::size_t m = 1;
  for (; m < n / 4; m <<= 1) {  // t >= 4: whole vectors per half-block
    t >>= 1;
    for (std::size_t i = 0; i < m; ++i) {
      const __m256d W = _mm256_set1_pd(w[m + i]), WQ = _mm256_set1_pd(wq[m + i]);
      double* x = d + 2 * i * t;
      double* y = x + t;
      for (std::size_t j = 0; j < t; j += 4) {
        __m256d X = _mm256_loadu_pd(x + j), Y = _mm256_loadu_pd(y + j);
        ct_bfly(X, Y, W, WQ, c);
        _mm256_storeu_pd(x + j, X);
        _mm256_storeu_pd(y + j, Y);
      }
    }
  }
  // t = 2: blocks [x0 x1 y0 y1]; two blocks per iteration.
  for (std::size_t i = 0; i < m; i += 2) {
    double* p = d + 4 * i;
    const __m256d A = _mm256_loadu_pd(p), B = _mm256_loadu_pd(p + 4);
    __m256d X = _mm256_permute2f128_pd(A, B, 0x20), Y = _mm256_permute2f128_pd(A, B, 0x31);
    const __m256d W = _mm256_permute4x64_pd(_mm256_castpd128_pd256(_mm_loadu_pd(w + m + i)), 0x50);
    const __m256d WQ = _mm256_permute4x64_pd(_mm256_castpd128_pd256(_mm_loadu_pd(wq + m + i)), 0x50);
    ct_bfly(X, Y, W, WQ, c);
    _mm256_storeu_pd(p, _mm256_permute2f128_pd(X, Y, 0x20));
    _mm256_storeu_pd(p + 4, _mm256_permute2f128_pd(X, Y, 0x31));
  }
  m <<= 1;
  // t = 1: pairs (a_2k, a_2k+1); four pairs per iteration, then the final reduction
  // from [0, 4q) to [0, q) and the conversion back to integers.
  for (std::size_t i = 0; i < m; i += 4) {
    double* p = d + 2 * i;
    const __m256d A = _mm256_loadu_pd(p), B = _mm256_loadu_pd(p + 4);
    __m256d X = _mm256_unpacklo_pd(A, B), Y = _mm256_unpackhi_pd(A, B);
    const __m256d W = _mm256_permute4x64_pd(_mm256_loadu_pd(w + m + i), 0xD8);
    const __m256d WQ = _mm256_permute4x64_pd(_mm256_loadu_pd(wq + m + i), 0xD8);
    ct_bfly(X, Y, W, WQ, c);
    __m256d lo = _mm256_unpacklo_pd(X, Y), hi = _mm256_unpackhi_pd(X, Y);
    lo = csub(csub(lo, c.two_q), c.q);
    hi = csub(csub(hi, c.two_q), c.q);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), fp::to_int(lo));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4), fp::to_int(hi));
  }
}

VEIL_AVX2 void ntt_inverse_avx2(const NttTables& tab, u64* a) {
  const std::size_t n = tab.n();
  const double qd = static_cast<double>(tab.modulus().value());
  const Consts c{_mm256_set1_pd(qd), _mm256_set1_pd(2 * qd)};
  const double* w = tab.psi_inv_rev_double().data();
  const double* wq = tab.psi_inv_rev_quot().data();
  double* d = reinterpret_cast<double*>(a);
  // t = 1 (h = n/2), fused with the conversion to doubles.
  {
    const std::size_t h = n / 2;
    for (std::size_t i = 0; i < h; i += 4) {
      double* p = d + 2 * i;
      const __m256d A = fp::load(a + 2 * i), B = fp::load(a + 2 * i + 4);
      __m256d X = _mm256_unpacklo_pd(A, B), Y = _mm256_unpackhi_pd(A, B);
      const __m256d W = _mm256_permute4x64_pd(_mm256_loadu_pd(w + h + i), 0xD8);
      const __m256d WQ = _mm256_permute4x64_pd(_mm256_loadu_pd(wq + h + i), 0xD8);
      gs_bfly(X, Y, W, WQ, c);
      _mm256_storeu_pd(p, _mm256_unpacklo_pd(X, Y));
      _mm256_storeu_pd(p + 4, _mm256_unpackhi_pd(X, Y));
    }
  }
  // t = 2 (h = n/4).
  {
    const std::size_t h = n / 4;
    for (std::size_t i = 0; i < h; i += 2) {
      double* p = d + 4 * i;
      const __m256d A = _mm256_loadu_pd(p), B = _mm256_loadu_pd(p + 4);
      __m256d X = _mm256_permute2f128_pd(A, B, 0x20), Y = _mm256_permute2f128_pd(A, B, 0x31);
      const __m256d W = _mm256_permute4x64_pd(_mm256_castpd128_pd256(_mm_loadu_pd(w + h + i)), 0x50);
      const __m256d WQ = _mm256_permute4x64_pd(_mm256_castpd128_pd256(_mm_loadu_pd(wq + h + i)), 0x50);
      gs_bfly(X, Y, W, WQ, c);
      _mm256_storeu_pd(p, _mm256_permute2f128_pd(X, Y, 0x20));
      _mm256_storeu_pd(p + 4, _mm256_permute2f128_pd(X, Y, 0x31));
    }
  }
  std::size_t t = 4;
  for (std::size_t m = n / 4; m > 1; m >>= 1) {
    const std::size_t h = m >> 1;
    for (std::size_t i = 0; i < h; ++i) {
      const __m256d W = _mm256_set1_pd(w[h + i]), WQ = _mm256_set1_pd(wq[h + i]);
      double* x = d + 2 * i * t;
      double* y = x + t;
      for (std::size_t j = 0; j < t; j += 4) {
        __m256d X = _mm256_loadu_pd(x + j), Y = _mm256_loadu_pd(y + j);
        gs_bfly(X, Y, W, WQ, c);
        _mm256_storeu_pd(x + j, X);
        _mm256_storeu_pd(y + j, Y);
      }
    }
    t <<= 1;
  }
  // Scale by 1/n, reduce to [0, q), back to integers.
  const __m256d ni = _mm256_set1_pd(tab.n_inv_double()), niq = _mm256_set1_pd(tab.n_inv_quot());
  for (std::size_t j = 0; j < n; j += 4) {
    __m256d v = mulmod_lazy(_mm256_loadu_pd(d + j), ni, niq, c);
    v = csub(v, c.q);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + j), fp::to_int(v));
  }
}

}  // namespace veil::math
