// AVX-512 negacyclic NTT for primes below 2^30, sixteen 32-bit lanes to a vector.
//
// Why: at scale 2^30 nearly every limb of a CKKS chain is a 30-bit prime. The IFMA kernel
// (ntt_avx512.cpp) carries residues in 64-bit lanes, eight to a vector, and on such
// primes it lost to the AVX2 kernel on eight 32-bit lanes (ntt_avx2_narrow.cpp): 76 us
// against 57 us for a forward transform at N = 2^15 on an AMD EPYC (Zen 4,
// `veil_kernels_bench`). This is that narrow kernel at twice the width: the limb is
// compacted in place to 32-bit words, the stages run two to a pass (radix-4 blocks), the
// last four stages (distances 8, 4, 2, 1) run inside registers on 32 coefficients at a
// time, and the limb is widened back at the end.
//
// Arithmetic as in the AVX2 narrow kernel: Harvey's lazy butterflies (Harvey 2014) with
// Shoup's products over 2^32, w' = floor(w 2^32 / q), T = w y - floor(w' y / 2^32) q
// (mod 2^32) in [0, 2q) for every y < 2^32; forward values in [0, 4q), inverse in [0, 2q),
// so 4q < 2^32 bounds q below 2^30. The outputs equal the scalar kernel's bit for bit.
//
// In-register stages: two vectors hold 32 consecutive coefficients; vpermt2d moves them
// between "natural" order and the order of the butterflies at distance s (X: the 16
// coefficients whose bit s is clear, in order; Y: their partners), one permutation pair
// per stage, with the index vectors worked out at compile time.
#if defined(__GNUC__) && !defined(__clang__)  // GCC bug 105593, as in ntt_avx512.cpp
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <array>
#include <cstring>

#include "veil/math/ntt.hpp"

#define VEIL_AVX512_INT __attribute__((target("avx512f,avx2")))

namespace veil::math {

namespace {

using u32 = std::uint32_t;

// floor(a * b / 2^32) in each of the sixteen lanes.
VEIL_AVX512_INT inline __m512i mulhi(__m512i a, __m512i b) {
  const __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(a, b), 32);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32));
  return _mm512_mask_blend_epi32(0xAAAA, even, odd);
}

// Shoup's product y w mod q in [0, 2q), for any y < 2^32.
VEIL_AVX512_INT inline __m512i mul_shoup(__m512i y, __m512i w, __m512i wp, __m512i q) {
  return _mm512_sub_epi32(_mm512_mullo_epi32(y, w), _mm512_mullo_epi32(mulhi(y, wp), q));
}

// x - m where x >= m, else x.
VEIL_AVX512_INT inline __m512i csub(__m512i x, __m512i m) {
  return _mm512_min_epu32(x, _mm512_sub_epi32(x, m));
}

struct Twiddle {
  __m512i w, wp;
};

VEIL_AVX512_INT inline Twiddle broadcast(const u32* w, const u32* wp, std::size_t k) {
  return {_mm512_set1_epi32(static_cast<int>(w[k])), _mm512_set1_epi32(static_cast<int>(wp[k]))};
}

struct Consts {
  __m512i q, two_q;
};

// Forward (Cooley-Tukey) butterfly: x, y in [0, 4q) -> x + w y, x - w y in [0, 4q).
VEIL_AVX512_INT inline void ct(__m512i& x, __m512i& y, const Twiddle& t, const Consts& c) {
  const __m512i X = csub(x, c.two_q);
  const __m512i T = mul_shoup(y, t.w, t.wp, c.q);
  x = _mm512_add_epi32(X, T);
  y = _mm512_add_epi32(_mm512_sub_epi32(X, T), c.two_q);
}

// Inverse (Gentleman-Sande) butterfly: x, y in [0, 2q) -> x + y, (x - y) w in [0, 2q).
VEIL_AVX512_INT inline void gs(__m512i& x, __m512i& y, const Twiddle& t, const Consts& c) {
  const __m512i U = csub(_mm512_add_epi32(x, y), c.two_q);
  const __m512i T = _mm512_add_epi32(_mm512_sub_epi32(x, y), c.two_q);
  x = U;
  y = mul_shoup(T, t.w, t.wp, c.q);
}

VEIL_AVX512_INT inline __m512i load(const u32* p) { return _mm512_loadu_si512(p); }
VEIL_AVX512_INT inline void store(u32* p, __m512i v) { _mm512_storeu_si512(p, v); }

// Sixteen u64 residues (< 2^32) -> sixteen u32; both halves are read before any store.
VEIL_AVX512_INT inline __m512i narrow16(const u64* p) {
  const __m256i lo = _mm512_cvtepi64_epi32(_mm512_loadu_si512(p));
  const __m256i hi = _mm512_cvtepi64_epi32(_mm512_loadu_si512(p + 8));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

VEIL_AVX512_INT inline void widen16(u64* p, __m512i v) {
  _mm512_storeu_si512(p, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(v)));
  _mm512_storeu_si512(p + 8, _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(v, 1)));
}

// Where coefficient e (0..31) of a chunk sits: order 0 is natural (vector e / 16, lane
// e % 16); order s (a power of two up to 8) pairs e with e ^ s, the one with bit s clear in
// vector 0 and its partner in vector 1, both at lane (e % s) * (16 / s) + e / 2s. That
// lane order puts butterfly block e / 2s at every (16 / s)-th lane, so the stage's twiddle
// vector is its 16 / s entries repeated: one broadcasting load (or a plain load of 16),
// where a lane order by block took a permute per twiddle vector.
struct Place {
  int vec, lane;
};
constexpr Place place(int order, int e) {
  if (order == 0) return {e >> 4, e & 15};
  return {(e & order) ? 1 : 0, (e & (order - 1)) * (16 / order) + e / (2 * order)};
}

// vpermt2d indices taking a chunk from order `from` to order `to`: output vector v, lane k
// reads lane idx & 15 of input vector idx >> 4.
using Perm = std::array<std::array<u32, 16>, 2>;
constexpr Perm permutation(int from, int to) {
  Perm p{};
  for (int e = 0; e < 32; ++e) {
    const Place t = place(to, e), f = place(from, e);
    p[t.vec][t.lane] = static_cast<u32>(f.vec * 16 + f.lane);
  }
  return p;
}

alignas(64) constexpr Perm kNatTo8 = permutation(0, 8), k8To4 = permutation(8, 4), k4To2 = permutation(4, 2),
                           k2To1 = permutation(2, 1), k1ToNat = permutation(1, 0);
alignas(64) constexpr Perm kNatTo1 = permutation(0, 1), k1To2 = permutation(1, 2), k2To4 = permutation(2, 4),
                           k4To8 = permutation(4, 8), k8ToNat = permutation(8, 0);

VEIL_AVX512_INT inline void regroup(__m512i& x, __m512i& y, const Perm& p) {
  const __m512i nx = _mm512_permutex2var_epi32(x, load(p[0].data()), y);
  const __m512i ny = _mm512_permutex2var_epi32(x, load(p[1].data()), y);
  x = nx;
  y = ny;
}

// The twiddles of the 16 / s butterfly blocks at distance s that start at entry k, lane l
// holding entry k + l % (16 / s) (Place's lane order).
VEIL_AVX512_INT inline __m512i repeat(const u32* p, int s) {
  switch (s) {
    case 1:
      return load(p);
    case 2:
      return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    case 4:
      return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    default: {  // 8: two entries
      std::uint64_t two;
      std::memcpy(&two, p, sizeof two);
      return _mm512_set1_epi64(static_cast<long long>(two));
    }
  }
}
VEIL_AVX512_INT inline Twiddle spread_twiddles(const u32* w, const u32* wp, std::size_t k, int s) {
  return {repeat(w + k, s), repeat(wp + k, s)};
}

}  // namespace

bool ntt_avx512_narrow_applicable(const NttTables& t) {
  return t.modulus().value() < (u64{1} << 30) && t.n() >= 32 && !t.psi_rev32().empty();
}

namespace {

// The forward transform on the limb at d. kWide: d holds n 64-bit words, compacted in place
// to 32 bits first and widened back at the end; else n 32-bit words, which stay so (two
// passes over the limb fewer, for callers that take 32-bit residues).
template <bool kWide>
VEIL_AVX512_INT void forward_narrow(const NttTables& tab, u32* d) {
  const std::size_t n = tab.n();
  const u32 qv = static_cast<u32>(tab.modulus().value());
  const Consts c{_mm512_set1_epi32(static_cast<int>(qv)), _mm512_set1_epi32(static_cast<int>(2 * qv))};
  const u32* w = tab.psi_rev32().data();
  const u32* wp = tab.psi_rev32_shoup().data();
  u64* const a = reinterpret_cast<u64*>(d);
  // Compact in place: word i moves from byte 8i to byte 4i (going up, nothing unread is
  // overwritten).
  if constexpr (kWide)
    for (std::size_t i = 0; i < n; i += 16) store(d + i, narrow16(a + i));
  // Stages with half-block t >= 16: one alone first when their count (log_n - 4) is odd,
  // then two per pass (distance t with w[m + i], then t / 2 with w[2m + 2i], w[2m + 2i + 1]).
  std::size_t m = 1, t = n / 2;
  if (tab.log_n() % 2 == 1) {
    const Twiddle W = broadcast(w, wp, 1);
    for (std::size_t j = 0; j < t; j += 16) {
      __m512i X = load(d + j), Y = load(d + t + j);
      ct(X, Y, W, c);
      store(d + j, X);
      store(d + t + j, Y);
    }
    m = 2;
    t /= 2;
  }
  for (; t >= 32; m *= 4, t /= 4) {
    const std::size_t h = t / 2;
    for (std::size_t i = 0; i < m; ++i) {
      const Twiddle W1 = broadcast(w, wp, m + i);
      const Twiddle W2 = broadcast(w, wp, 2 * m + 2 * i), W3 = broadcast(w, wp, 2 * m + 2 * i + 1);
      u32* x = d + 2 * i * t;
      for (std::size_t j = 0; j < h; j += 16) {
        __m512i A0 = load(x + j), A1 = load(x + h + j), A2 = load(x + t + j), A3 = load(x + t + h + j);
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
  // Distances 8, 4, 2, 1 on 32 coefficients in registers, the reduction to [0, q) and the
  // widening back to 64 bits (kWide), from the top down so that no word is overwritten
  // unread.
  for (std::size_t b = n; b > 0;) {
    b -= 32;
    __m512i X = load(d + b), Y = load(d + b + 16);
    regroup(X, Y, kNatTo8);
    ct(X, Y, spread_twiddles(w, wp, n / 16 + b / 16, 8), c);
    regroup(X, Y, k8To4);
    ct(X, Y, spread_twiddles(w, wp, n / 8 + b / 8, 4), c);
    regroup(X, Y, k4To2);
    ct(X, Y, spread_twiddles(w, wp, n / 4 + b / 4, 2), c);
    regroup(X, Y, k2To1);
    ct(X, Y, spread_twiddles(w, wp, n / 2 + b / 2, 1), c);
    regroup(X, Y, k1ToNat);
    X = csub(csub(X, c.two_q), c.q);
    Y = csub(csub(Y, c.two_q), c.q);
    if constexpr (kWide) {
      widen16(a + b + 16, Y);
      widen16(a + b, X);
    } else {
      store(d + b, X);
      store(d + b + 16, Y);
    }
  }
}

}  // namespace

VEIL_AVX512_INT void ntt_forward_avx512_narrow(const NttTables& tab, u64* a) {
  forward_narrow<true>(tab, reinterpret_cast<u32*>(a));
}

VEIL_AVX512_INT void ntt_forward_avx512_narrow32(const NttTables& tab, std::uint32_t* a) {
  forward_narrow<false>(tab, a);
}

VEIL_AVX512_INT void ntt_inverse_avx512_narrow(const NttTables& tab, u64* a) {
  const std::size_t n = tab.n();
  const u32 qv = static_cast<u32>(tab.modulus().value());
  const Consts c{_mm512_set1_epi32(static_cast<int>(qv)), _mm512_set1_epi32(static_cast<int>(2 * qv))};
  const u32* w = tab.psi_inv_rev32().data();
  const u32* wp = tab.psi_inv_rev32_shoup().data();
  u32* d = reinterpret_cast<u32*>(a);
  // Distances 1, 2, 4, 8 in registers, compacting to 32 bits on the way (going up: the
  // words written lie below those still to read).
  for (std::size_t b = 0; b < n; b += 32) {
    __m512i X = narrow16(a + b), Y = narrow16(a + b + 16);
    regroup(X, Y, kNatTo1);
    gs(X, Y, spread_twiddles(w, wp, n / 2 + b / 2, 1), c);
    regroup(X, Y, k1To2);
    gs(X, Y, spread_twiddles(w, wp, n / 4 + b / 4, 2), c);
    regroup(X, Y, k2To4);
    gs(X, Y, spread_twiddles(w, wp, n / 8 + b / 8, 4), c);
    regroup(X, Y, k4To8);
    gs(X, Y, spread_twiddles(w, wp, n / 16 + b / 16, 8), c);
    regroup(X, Y, k8ToNat);
    store(d + b, X);
    store(d + b + 16, Y);
  }
  // Distances 16 .. n / 4: two per pass (distance t with w[h + 2i], w[h + 2i + 1], then 2t
  // with w[h / 2 + i]), one alone last when their count is odd.
  std::size_t t = 16, h = n / 32;  // h: blocks of 2t at distance t
  for (; 4 * t <= n / 2; t *= 4, h /= 4) {
    for (std::size_t i = 0; i < h / 2; ++i) {
      const Twiddle W1 = broadcast(w, wp, h + 2 * i), W2 = broadcast(w, wp, h + 2 * i + 1);
      const Twiddle W3 = broadcast(w, wp, h / 2 + i);
      u32* x = d + 4 * i * t;
      for (std::size_t j = 0; j < t; j += 16) {
        __m512i A0 = load(x + j), A1 = load(x + t + j), A2 = load(x + 2 * t + j), A3 = load(x + 3 * t + j);
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
      for (std::size_t j = 0; j < t; j += 16) {
        __m512i X = load(x + j), Y = load(x + t + j);
        gs(X, Y, W, c);
        store(x + j, X);
        store(x + t + j, Y);
      }
    }
  }
  // Distance n / 2 with the scaling by 1/n folded in: x' = (x + y) / n and
  // y' = (x - y) w / n, then [0, q).
  const std::size_t half = n / 2;
  const Twiddle S{_mm512_set1_epi32(static_cast<int>(tab.n_inv32())),
                  _mm512_set1_epi32(static_cast<int>(tab.n_inv32_shoup()))};
  const Twiddle WS{_mm512_set1_epi32(static_cast<int>(tab.last_inv32())),
                   _mm512_set1_epi32(static_cast<int>(tab.last_inv32_shoup()))};
  for (std::size_t j = 0; j < half; j += 16) {
    const __m512i X = load(d + j), Y = load(d + half + j);
    const __m512i U = mul_shoup(_mm512_add_epi32(X, Y), S.w, S.wp, c.q);
    const __m512i V = mul_shoup(_mm512_add_epi32(_mm512_sub_epi32(X, Y), c.two_q), WS.w, WS.wp, c.q);
    store(d + j, csub(U, c.q));
    store(d + half + j, csub(V, c.q));
  }
  // Widen back, from the top down.
  for (std::size_t i = n; i > 0;) {
    i -= 16;
    widen16(a + i, load(d + i));
  }
}

}  // namespace veil::math
