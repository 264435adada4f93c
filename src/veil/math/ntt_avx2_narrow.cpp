// AVX2 negacyclic NTT for primes below 2^30, eight 32-bit lanes to a vector.
//
// Why a second AVX2 kernel: at scale 2^30 nearly every limb of the CKKS chain is a
// 30-bit prime, and the double-precision kernel (ntt_avx2.cpp) carries those residues in
// 64-bit lanes, four to a vector, one pass over the whole limb per stage; at N = 2^15 its
// 15 passes over 256 KiB are bound by the L2 cache more than by arithmetic. Here the limb
// is first compacted in place to 32-bit words (half the bytes, eight lanes), the stages
// run two to a pass (radix-4 blocks of Cooley-Tukey or Gentleman-Sande butterflies), the
// last three stages run inside registers on 16 coefficients at a time, and the limb is
// widened back at the end: 7 passes at N = 2^15 instead of 15, over half the bytes.
//
// Arithmetic: Harvey's lazy butterflies (Harvey 2014) with Shoup's products over 2^32:
// w' = floor(w 2^32 / q), T = w y - floor(w' y / 2^32) q (mod 2^32) lies in [0, 2q) for
// every y < 2^32. The forward butterflies keep values in [0, 4q), the inverse ones in
// [0, 2q); 4q < 2^32 is what bounds q below 2^30. The outputs equal the scalar kernel's
// bit for bit (both reduce to [0, q) at the end).
#include <immintrin.h>

#include "veil/math/ntt.hpp"

#define VEIL_AVX2_INT __attribute__((target("avx2")))

namespace veil::math {

namespace {

using u32 = std::uint32_t;

// floor(a * b / 2^32) in each of the eight lanes.
VEIL_AVX2_INT inline __m256i mulhi(__m256i a, __m256i b) {
  const __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(a, b), 32);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32));
  return _mm256_blend_epi32(even, odd, 0xAA);
}

// Shoup's product y w mod q in [0, 2q), for any y < 2^32.
VEIL_AVX2_INT inline __m256i mul_shoup(__m256i y, __m256i w, __m256i wp, __m256i q) {
  return _mm256_sub_epi32(_mm256_mullo_epi32(y, w), _mm256_mullo_epi32(mulhi(y, wp), q));
}

// x - m where x >= m, else x (one subtraction and an unsigned minimum).
VEIL_AVX2_INT inline __m256i csub(__m256i x, __m256i m) {
  return _mm256_min_epu32(x, _mm256_sub_epi32(x, m));
}

struct Twiddle {
  __m256i w, wp;
};

VEIL_AVX2_INT inline Twiddle broadcast(const u32* w, const u32* wp, std::size_t k) {
  return {_mm256_set1_epi32(static_cast<int>(w[k])), _mm256_set1_epi32(static_cast<int>(wp[k]))};
}

// Twiddles w[k + idx[lane]] for the in-register stages.
VEIL_AVX2_INT inline Twiddle gather(const u32* w, const u32* wp, std::size_t k, __m256i idx, int count) {
  __m256i a, b;
  if (count == 8) {
    a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
    b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + k));
  } else if (count == 4) {
    a = _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k)));
    b = _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wp + k)));
  } else {
    a = _mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w + k)));
    b = _mm256_castsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(wp + k)));
  }
  return {_mm256_permutevar8x32_epi32(a, idx), _mm256_permutevar8x32_epi32(b, idx)};
}

struct Consts {
  __m256i q, two_q;
};

// Forward (Cooley-Tukey) butterfly: x, y in [0, 4q) -> x + w y, x - w y in [0, 4q).
VEIL_AVX2_INT inline void ct(__m256i& x, __m256i& y, const Twiddle& t, const Consts& c) {
  const __m256i X = csub(x, c.two_q);
  const __m256i T = mul_shoup(y, t.w, t.wp, c.q);
  x = _mm256_add_epi32(X, T);
  y = _mm256_add_epi32(_mm256_sub_epi32(X, T), c.two_q);
}

// Inverse (Gentleman-Sande) butterfly: x, y in [0, 2q) -> x + y, (x - y) w in [0, 2q).
VEIL_AVX2_INT inline void gs(__m256i& x, __m256i& y, const Twiddle& t, const Consts& c) {
  const __m256i U = csub(_mm256_add_epi32(x, y), c.two_q);
  const __m256i T = _mm256_add_epi32(_mm256_sub_epi32(x, y), c.two_q);
  x = U;
  y = mul_shoup(T, t.w, t.wp, c.q);
}

VEIL_AVX2_INT inline __m256i load(const u32* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
VEIL_AVX2_INT inline void store(u32* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

// Eight u64 residues (< 2^32) -> eight u32.
VEIL_AVX2_INT inline __m256i narrow8(const u64* p) {
  const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256i lo =
      _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), idx);
  const __m256i hi =
      _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4)), idx);
  return _mm256_permute2x128_si256(lo, hi, 0x20);
}

VEIL_AVX2_INT inline void widen8(u64* p, __m256i v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_cvtepu32_epi64(_mm256_castsi256_si128(v)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 4),
                      _mm256_cvtepu32_epi64(_mm256_extracti128_si256(v, 1)));
}

// The lane shuffles of the in-register stages on a pair of vectors A = d[b, b + 8),
// B = d[b + 8, b + 16): which halves are butterfly partners at distance 4, 2 and 1.
VEIL_AVX2_INT inline void split4(__m256i A, __m256i B, __m256i& X, __m256i& Y) {
  X = _mm256_permute2x128_si256(A, B, 0x20);
  Y = _mm256_permute2x128_si256(A, B, 0x31);
}
VEIL_AVX2_INT inline void split2(__m256i A, __m256i B, __m256i& X, __m256i& Y) {
  X = _mm256_unpacklo_epi64(A, B);
  Y = _mm256_unpackhi_epi64(A, B);
}
VEIL_AVX2_INT inline void split1(__m256i A, __m256i B, __m256i& X, __m256i& Y) {
  X = _mm256_blend_epi32(A, _mm256_slli_epi64(B, 32), 0xAA);
  Y = _mm256_blend_epi32(_mm256_srli_epi64(A, 32), B, 0xAA);
}
// The inverses: split4 and split2 are their own inverses; split1's is join1.
VEIL_AVX2_INT inline void join1(__m256i X, __m256i Y, __m256i& A, __m256i& B) {
  A = _mm256_blend_epi32(X, _mm256_slli_epi64(Y, 32), 0xAA);
  B = _mm256_blend_epi32(_mm256_srli_epi64(X, 32), Y, 0xAA);
}

// Lane -> twiddle offset within the chunk, for the distances 4, 2, 1 (see split*): at
// distance 4 the lanes of X hold block 0 then block 1, at 2 blocks 0, 2, 1, 3 in pairs,
// at 1 blocks 0, 4, 1, 5, 2, 6, 3, 7.
VEIL_AVX2_INT inline __m256i idx4() { return _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1); }
VEIL_AVX2_INT inline __m256i idx2() { return _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3); }
VEIL_AVX2_INT inline __m256i idx1() { return _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); }

}  // namespace

bool ntt_avx2_narrow_applicable(const NttTables& t) {
  return t.modulus().value() < (u64{1} << 30) && t.n() >= 16;
}

namespace {

// The forward transform on the limb at d. kWide: d holds n 64-bit words, compacted in place
// to 32 bits first and widened back at the end; else n 32-bit words, which stay so.
template <bool kWide>
VEIL_AVX2_INT void forward_narrow(const NttTables& tab, u32* d) {
  const std::size_t n = tab.n();
  const u32 qv = static_cast<u32>(tab.modulus().value());
  const Consts c{_mm256_set1_epi32(static_cast<int>(qv)), _mm256_set1_epi32(static_cast<int>(2 * qv))};
  const u32* w = tab.psi_rev32().data();
  const u32* wp = tab.psi_rev32_shoup().data();
  u64* const a = reinterpret_cast<u64*>(d);
  // Compact in place: word i moves from byte 8i to byte 4i, so going up never overwrites
  // a residue not yet read.
  if constexpr (kWide)
    for (std::size_t i = 0; i < n; i += 8) store(d + i, narrow8(a + i));
  // Stages with half-block t >= 8: one alone first when their count is odd, then two per
  // pass (a radix-4 block: distance t with twiddle w[m + i], then t / 2 with
  // w[2m + 2i] and w[2m + 2i + 1]).
  std::size_t m = 1, t = n / 2;
  if (tab.log_n() % 2 == 0) {  // log_n - 3 stages above distance 4: odd
    const Twiddle W = broadcast(w, wp, 1);
    for (std::size_t j = 0; j < t; j += 8) {
      __m256i X = load(d + j), Y = load(d + t + j);
      ct(X, Y, W, c);
      store(d + j, X);
      store(d + t + j, Y);
    }
    m = 2;
    t /= 2;
  }
  for (; t >= 16; m *= 4, t /= 4) {
    const std::size_t h = t / 2;
    for (std::size_t i = 0; i < m; ++i) {
      const Twiddle W1 = broadcast(w, wp, m + i);
      const Twiddle W2 = broadcast(w, wp, 2 * m + 2 * i), W3 = broadcast(w, wp, 2 * m + 2 * i + 1);
      u32* x = d + 2 * i * t;
      for (std::size_t j = 0; j < h; j += 8) {
        __m256i A0 = load(x + j), A1 = load(x + h + j), A2 = load(x + t + j), A3 = load(x + t + h + j);
        ct(A0, A2, W1, c);
        ct(A1, A3, W1, c);
        ct(A0, A1, W2, c);
        ct(A2, A3, W3, c);
        store(x + j, A0);
        store(x + h + j, A1);
        store(x + t + j, A2);
        store(x + t + h + j, A3);
      }
    }
  }
  // Distances 4, 2, 1 on 16 coefficients in registers, the reduction to [0, q) and the
  // widening back to 64 bits (kWide), from the top down so that no word is overwritten
  // unread.
  const __m256i i4 = idx4(), i2 = idx2(), i1 = idx1();
  for (std::size_t b = n; b > 0;) {
    b -= 16;
    const __m256i A = load(d + b), B = load(d + b + 8);
    __m256i X, Y, P, Q;
    split4(A, B, X, Y);
    ct(X, Y, gather(w, wp, n / 8 + b / 8, i4, 2), c);
    split4(X, Y, P, Q);
    split2(P, Q, X, Y);
    ct(X, Y, gather(w, wp, n / 4 + b / 4, i2, 4), c);
    split2(X, Y, P, Q);
    split1(P, Q, X, Y);
    ct(X, Y, gather(w, wp, n / 2 + b / 2, i1, 8), c);
    join1(X, Y, P, Q);
    P = csub(csub(P, c.two_q), c.q);
    Q = csub(csub(Q, c.two_q), c.q);
    if constexpr (kWide) {
      widen8(a + b + 8, Q);
      widen8(a + b, P);
    } else {
      store(d + b, P);
      store(d + b + 8, Q);
    }
  }
}

}  // namespace

VEIL_AVX2_INT void ntt_forward_avx2_narrow(const NttTables& tab, u64* a) {
  forward_narrow<true>(tab, reinterpret_cast<u32*>(a));
}

VEIL_AVX2_INT void ntt_forward_avx2_narrow32(const NttTables& tab, std::uint32_t* a) {
  forward_narrow<false>(tab, a);
}

VEIL_AVX2_INT void ntt_inverse_avx2_narrow(const NttTables& tab, u64* a) {
  const std::size_t n = tab.n();
  const u32 qv = static_cast<u32>(tab.modulus().value());
  const Consts c{_mm256_set1_epi32(static_cast<int>(qv)), _mm256_set1_epi32(static_cast<int>(2 * qv))};
  const u32* w = tab.psi_inv_rev32().data();
  const u32* wp = tab.psi_inv_rev32_shoup().data();
  u32* d = reinterpret_cast<u32*>(a);
  // Distances 1, 2, 4 in registers, compacting to 32 bits on the way (going up: the
  // words written lie below those still to read).
  const __m256i i4 = idx4(), i2 = idx2(), i1 = idx1();
  for (std::size_t b = 0; b < n; b += 16) {
    const __m256i A = narrow8(a + b), B = narrow8(a + b + 8);
    __m256i X, Y, P, Q;
    split1(A, B, X, Y);
    gs(X, Y, gather(w, wp, n / 2 + b / 2, i1, 8), c);
    join1(X, Y, P, Q);
    split2(P, Q, X, Y);
    gs(X, Y, gather(w, wp, n / 4 + b / 4, i2, 4), c);
    split2(X, Y, P, Q);
    split4(P, Q, X, Y);
    gs(X, Y, gather(w, wp, n / 8 + b / 8, i4, 2), c);
    split4(X, Y, P, Q);
    store(d + b, P);
    store(d + b + 8, Q);
  }
  // Distances 8 .. n / 4: two per pass (distance t with w[h + 2i], w[h + 2i + 1], then 2t
  // with w[h / 2 + i]), one alone last when their count is odd.
  std::size_t t = 8, h = n / 16;  // h: blocks of 2t at distance t
  for (; 4 * t <= n / 2; t *= 4, h /= 4) {
    for (std::size_t i = 0; i < h / 2; ++i) {
      const Twiddle W1 = broadcast(w, wp, h + 2 * i), W2 = broadcast(w, wp, h + 2 * i + 1);
      const Twiddle W3 = broadcast(w, wp, h / 2 + i);
      u32* x = d + 4 * i * t;
      for (std::size_t j = 0; j < t; j += 8) {
        __m256i A0 = load(x + j), A1 = load(x + t + j), A2 = load(x + 2 * t + j), A3 = load(x + 3 * t + j);
        gs(A0, A1, W1, c);
        gs(A2, A3, W2, c);
        gs(A0, A2, W3, c);
        gs(A1, A3, W3, c);
        store(x + j, A0);
        store(x + t + j, A1);
        store(x + 2 * t + j, A2);
        store(x + 3 * t + j, A3);
      }
    }
  }
  if (2 * t <= n / 2) {  // distance t = n / 4 alone
    for (std::size_t i = 0; i < h; ++i) {
      const Twiddle W = broadcast(w, wp, h + i);
      u32* x = d + 2 * i * t;
      for (std::size_t j = 0; j < t; j += 8) {
        __m256i X = load(x + j), Y = load(x + t + j);
        gs(X, Y, W, c);
        store(x + j, X);
        store(x + t + j, Y);
      }
    }
    t *= 2;
  }
  // Distance n / 2 with the scaling by 1/n folded in: x' = (x + y) / n and
  // y' = (x - y) w / n, then [0, q).
  const std::size_t half = n / 2;
  const Twiddle S{_mm256_set1_epi32(static_cast<int>(tab.n_inv32())),
                  _mm256_set1_epi32(static_cast<int>(tab.n_inv32_shoup()))};
  const Twiddle WS{_mm256_set1_epi32(static_cast<int>(tab.last_inv32())),
                   _mm256_set1_epi32(static_cast<int>(tab.last_inv32_shoup()))};
  for (std::size_t j = 0; j < half; j += 8) {
    const __m256i X = load(d + j), Y = load(d + half + j);
    const __m256i U = mul_shoup(_mm256_add_epi32(X, Y), S.w, S.wp, c.q);
    const __m256i V = mul_shoup(_mm256_add_epi32(_mm256_sub_epi32(X, Y), c.two_q), WS.w, WS.wp, c.q);
    store(d + j, csub(U, c.q));
    store(d + half + j, csub(V, c.q));
  }
  // Widen back, from the top down.
  for (std::size_t i = n; i > 0;) {
    i -= 8;
    widen8(a + i, load(d + i));
  }
}

}  // namespace veil::math
