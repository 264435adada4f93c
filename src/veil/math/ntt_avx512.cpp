// AVX-512 negacyclic NTT, eight residues a vector, Harvey's lazy butterflies as in the
// scalar kernel (ntt.cpp): values in [0, 4q) between stages, twiddle products in [0, 2q);
// for primes up to 46 bits the forward transform skips even that reduction (Ifma52's kGrow).
//
// Two twiddle multipliers, chosen per prime:
// - IFMA52 (primes below 2^50): Shoup's product with 52-bit quotients, three IFMA
//   instructions (ifma_avx512.hpp; the technique of Intel HEXL's NTT).
// - 64-bit (wider primes, up to 61 bits): Shoup's product with the 64-bit quotients of the
//   scalar kernel; AVX-512 has no 64 x 64 -> high 64-bit multiply, so the high half is
//   built from four 32 x 32-bit vpmuludq products, and the low halves use vpmullq.
// One stage a pass streamed the whole limb through the caches 16 times (17 for the
// inverse), 512 KB at N = 2^16: now the stages run two to a pass (radix-4 blocks), those
// that stay inside 2048 coefficients run block by block in the L1 cache, the last three
// (distances 4, 2, 1) run in registers on 16 coefficients at a time, and the inverse folds
// its scaling by 1/n into its last stage. The forward transform is then bound by its
// arithmetic (docs/benchmarks.md). The same structure as the narrow kernel
// (ntt_avx512_narrow.cpp); outputs equal the scalar kernel's bit for bit.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_epi32() as the unused merge source,
// which -Wmaybe-uninitialized reports at every inlined call (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <array>
#include <bit>

#include "veil/math/ifma_avx512.hpp"
#include "veil/math/ntt.hpp"

namespace veil::math {

namespace {

using ifma::csub;

// kGrow: the forward butterflies leave out Harvey's reduction of x from [0, 4q) to
// [0, 2q). Each stage then adds at most 2q to the largest value, so the 16 stages at
// N = 2^16 end below (1 + 2 log n) q = 33q, and every value stays below 2^52, what IFMA
// reads and what the Shoup product needs (y w - floor(y ws / 2^52) q < (1 + y / 2^52) q),
// while q < 2^52 / 33: primes of up to 46 bits (every data prime of the default chains and
// their 45-bit special primes). The butterfly drops two of its nine vector instructions,
// which is what the transform is bound by (docs/benchmarks.md); the outputs are reduced
// from [0, 33q) by one Shoup product with 1. (grow_fits checks the bound for the ring.)
template <bool Grow>
struct Ifma52 {
  static constexpr bool kGrow = Grow;
  ifma::Consts c;
  VEIL_AVX512 __m512i mul_lazy(__m512i y, __m512i w, __m512i ws) const {
    return ifma::mul_shoup_lazy(y, w, ws, c);
  }
};
bool grow_fits(const NttTables& t) {
  const auto stages = static_cast<unsigned>(std::countr_zero(t.n()));
  return static_cast<u128>(2 * stages + 1) * t.modulus().value() < (u128{1} << 52);
}

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
  static constexpr bool kGrow = false;
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
  const __m512i X = Mul::kGrow ? x : csub(x, two_q);
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

// Distances 4, 2, 1 run inside registers on 16 consecutive coefficients held in two
// vectors. Where coefficient e (0..15) sits: order 0 is natural (vector e / 8, lane e % 8);
// order s pairs e with e ^ s, the one with bit s clear in vector 0 and its partner in
// vector 1, both at lane (e % s) * (8 / s) + e / 2s. That lane order puts butterfly block
// e / 2s (whose twiddle is entry e / 2s of the 8 / s the 16 coefficients need) at every
// (8 / s)-th lane, so the twiddle vector is those entries repeated: one broadcasting load
// of 2 or 4 entries (or a plain load of 8), where a lane order by block took a permute per
// twiddle vector (four of them per 16 coefficients).
struct Place {
  int vec, lane;
};
constexpr Place place(int order, int e) {
  if (order == 0) return {e >> 3, e & 7};
  return {(e & order) ? 1 : 0, (e & (order - 1)) * (8 / order) + e / (2 * order)};
}

// vpermt2q indices taking 16 coefficients from order `from` to order `to`: output vector
// v, lane k reads lane idx & 7 of input vector idx >> 3.
using Perm = std::array<std::array<long long, 8>, 2>;
constexpr Perm permutation(int from, int to) {
  Perm p{};
  for (int e = 0; e < 16; ++e) {
    const Place t = place(to, e), f = place(from, e);
    p[t.vec][t.lane] = f.vec * 8 + f.lane;
  }
  return p;
}

alignas(64) constexpr Perm kNatTo4 = permutation(0, 4), k4To2 = permutation(4, 2), k2To1 = permutation(2, 1),
                           k1ToNat = permutation(1, 0);
alignas(64) constexpr Perm kNatTo1 = permutation(0, 1), k1To2 = permutation(1, 2), k2To4 = permutation(2, 4),
                           k4ToNat = permutation(4, 0);

VEIL_AVX512 inline void regroup(__m512i& x, __m512i& y, const Perm& p) {
  const __m512i nx = _mm512_permutex2var_epi64(x, _mm512_load_si512(p[0].data()), y);
  const __m512i ny = _mm512_permutex2var_epi64(x, _mm512_load_si512(p[1].data()), y);
  x = nx;
  y = ny;
}

struct Twiddle {
  __m512i w, ws;
};

VEIL_AVX512 inline Twiddle broadcast(const u64* w, const u64* ws, std::size_t k) {
  return {_mm512_set1_epi64(static_cast<long long>(w[k])), _mm512_set1_epi64(static_cast<long long>(ws[k]))};
}

// The twiddles (and quotients) of the 8 / s butterfly blocks at distance s that start at
// entry k, lane l holding entry k + l % (8 / s) (Place's lane order).
VEIL_AVX512 inline __m512i repeat(const u64* p, int s) {
  if (s == 1) return _mm512_loadu_si512(p);
  if (s == 2) return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_broadcast_i64x2(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
VEIL_AVX512 inline Twiddle spread(const u64* w, const u64* ws, std::size_t k, int s) {
  return {repeat(w + k, s), repeat(ws + k, s)};
}

// The stages at distances 4, 2, 1 run on this many groups of 16 coefficients at once,
// stage by stage: a group's three butterflies form one chain through its permutes, and
// four independent chains keep the vector units busy where one left them waiting
// (veil_kernels_bench at N = 2^16, 40-bit prime: forward 124-127 us against 130-131 us,
// inverse 117-122 us against 124-125 us).
constexpr int kTailGroups = 4;

// One register stage at distance s on G groups of 16 coefficients (starting at b0), in the
// order for s: the butterflies with the stage's twiddles (entries (n + b) / 2s on), then
// the regrouping into the next stage's order.
template <int G, class Butterfly>
VEIL_AVX512 inline void register_stage(__m512i* X, __m512i* Y, const u64* w, const u64* ws, std::size_t n,
                                       std::size_t b0, int s, const Perm& next, const Butterfly& bfly) {
  for (int g = 0; g < G; ++g) {
    const Twiddle W = spread(w, ws, (n + b0 + 16 * g) / (2 * s), s);
    bfly(X[g], Y[g], W);
    regroup(X[g], Y[g], next);
  }
}

// group(b) over the block [lo, lo + block) in steps of kTailGroups groups of 16 (one group
// at a time when the block is smaller): group is a generic lambda taking the group count.
template <class Group>
VEIL_AVX512 inline void for_groups(std::size_t lo, std::size_t block, const Group& group) {
  if (block % (16 * kTailGroups) == 0) {
    for (std::size_t b = lo; b < lo + block; b += 16 * kTailGroups) group.template operator()<kTailGroups>(b);
  } else {
    for (std::size_t b = lo; b < lo + block; b += 16) group.template operator()<1>(b);
  }
}

// Coefficients per cache block: the stages whose butterflies stay inside such a block
// (distances up to kBlock / 2) run block by block, so a block's 16 KB stay in the L1 cache
// between its stages, where a whole limb at N = 2^16 (512 KB) streams through L2 at every
// stage. Measured with veil_kernels_bench (BM_NttForward, BM_NttInverse).
constexpr std::size_t kBlock = 2048;

// One stage at distance t over coefficients [lo, lo + len) (one alone, when a run of
// stages has an odd count): block i pairs coefficients j and j + t of a + 2it with twiddle
// w[first + i].
template <class Butterfly>
VEIL_AVX512 void radix2_pass(u64* a, std::size_t lo, std::size_t len, std::size_t t, std::size_t first,
                             const u64* w, const u64* ws, const Butterfly& bfly) {
  for (std::size_t i = lo / (2 * t); i < (lo + len) / (2 * t); ++i) {
    const Twiddle W = broadcast(w, ws, first + i);
    u64* x = a + 2 * i * t;
    for (std::size_t j = 0; j < t; j += 8) {
      __m512i X = _mm512_loadu_si512(x + j), Y = _mm512_loadu_si512(x + t + j);
      bfly(X, Y, W);
      _mm512_storeu_si512(x + j, X);
      _mm512_storeu_si512(x + t + j, Y);
    }
  }
}

// Two stages on the four quarters of a block, x[j], x[d + j], x[2d + j], x[3d + j] for j
// in [0, d), loaded and stored once (body holds the four butterflies).
template <class Body>
VEIL_AVX512 void radix4_block(u64* x, std::size_t d, const Body& body) {
  for (std::size_t j = 0; j < d; j += 8) {
    __m512i A0 = _mm512_loadu_si512(x + j), A1 = _mm512_loadu_si512(x + d + j);
    __m512i A2 = _mm512_loadu_si512(x + 2 * d + j), A3 = _mm512_loadu_si512(x + 3 * d + j);
    body(A0, A1, A2, A3);
    _mm512_storeu_si512(x + j, A0);
    _mm512_storeu_si512(x + d + j, A1);
    _mm512_storeu_si512(x + 2 * d + j, A2);
    _mm512_storeu_si512(x + 3 * d + j, A3);
  }
}

// Forward (Cooley-Tukey) stages at distances t = t_first, t_first / 2, ..., t_last (t_last
// >= 8), two per pass where they can (distance t with w[m + i], then t / 2 with w[2m + 2i],
// w[2m + 2i + 1]; m = n / 2t), over coefficients [lo, lo + len).
template <class Mul>
VEIL_AVX512 void forward_stages(u64* a, std::size_t n, std::size_t lo, std::size_t len, std::size_t t_first,
                                std::size_t t_last, const u64* w, const u64* ws, __m512i two_q,
                                const Mul& mul) {
  for (std::size_t t = t_first; t >= t_last;) {
    const std::size_t m = n / (2 * t);
    if (t / 2 >= t_last) {
      const std::size_t h = t / 2;
      for (std::size_t i = lo / (2 * t); i < (lo + len) / (2 * t); ++i) {
        const Twiddle W1 = broadcast(w, ws, m + i);
        const Twiddle W2 = broadcast(w, ws, 2 * m + 2 * i), W3 = broadcast(w, ws, 2 * m + 2 * i + 1);
        radix4_block(a + 2 * i * t, h, [&](__m512i& A0, __m512i& A1, __m512i& A2, __m512i& A3) VEIL_AVX512 {
          ct_bfly(A0, A2, W1.w, W1.ws, two_q, mul);
          ct_bfly(A1, A3, W1.w, W1.ws, two_q, mul);
          ct_bfly(A0, A1, W2.w, W2.ws, two_q, mul);
          ct_bfly(A2, A3, W3.w, W3.ws, two_q, mul);
        });
      }
      t /= 4;
    } else {
      radix2_pass(a, lo, len, t, m, w, ws, [&](__m512i& x, __m512i& y, const Twiddle& W) VEIL_AVX512 {
        ct_bfly(x, y, W.w, W.ws, two_q, mul);
      });
      t /= 2;
    }
  }
}

// Inverse (Gentleman-Sande) stages at distances t = t_first, 2 t_first, ..., t_last, two
// per pass where they can (distance t with w[hh + 2i], w[hh + 2i + 1], then 2t with
// w[hh / 2 + i]; hh = n / 2t), over coefficients [lo, lo + len).
template <class Mul>
VEIL_AVX512 void inverse_stages(u64* a, std::size_t n, std::size_t lo, std::size_t len, std::size_t t_first,
                                std::size_t t_last, const u64* w, const u64* ws, __m512i two_q,
                                const Mul& mul) {
  for (std::size_t t = t_first; t <= t_last;) {
    const std::size_t hh = n / (2 * t);
    if (2 * t <= t_last) {
      for (std::size_t i = lo / (4 * t); i < (lo + len) / (4 * t); ++i) {
        const Twiddle W1 = broadcast(w, ws, hh + 2 * i), W2 = broadcast(w, ws, hh + 2 * i + 1);
        const Twiddle W3 = broadcast(w, ws, hh / 2 + i);
        radix4_block(a + 4 * i * t, t, [&](__m512i& A0, __m512i& A1, __m512i& A2, __m512i& A3) VEIL_AVX512 {
          gs_bfly(A0, A1, W1.w, W1.ws, two_q, mul);
          gs_bfly(A2, A3, W2.w, W2.ws, two_q, mul);
          gs_bfly(A0, A2, W3.w, W3.ws, two_q, mul);
          gs_bfly(A1, A3, W3.w, W3.ws, two_q, mul);
        });
      }
      t *= 4;
    } else {
      radix2_pass(a, lo, len, t, hh, w, ws, [&](__m512i& x, __m512i& y, const Twiddle& W) VEIL_AVX512 {
        gs_bfly(x, y, W.w, W.ws, two_q, mul);
      });
      t *= 2;
    }
  }
}

template <class Mul>
VEIL_AVX512 void forward(std::size_t n, const u64* w, const u64* ws, u64 qv, const Mul& mul, u64* a) {
  const __m512i q = _mm512_set1_epi64(static_cast<long long>(qv));
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * qv));
  const std::size_t block = std::min(n, kBlock);
  const __m512i one = _mm512_set1_epi64(1),
                one_s = _mm512_set1_epi64(static_cast<long long>(ifma::shoup52(1, qv)));
  auto reduce = [&](__m512i x) VEIL_AVX512 {
    if constexpr (Mul::kGrow) return csub(mul.mul_lazy(x, one, one_s), q);
    return csub(csub(x, two_q), q);
  };
  // Distances n / 2 .. block over the whole limb, then, block by block, block / 2 .. 8 and
  // distances 4, 2, 1 in registers with the reduction from [0, 4q) (or [0, 33q)) to [0, q).
  if (n > block) forward_stages(a, n, 0, n, n / 2, block, w, ws, two_q, mul);
  for (std::size_t lo = 0; lo < n; lo += block) {
    forward_stages(a, n, lo, block, block / 2, 8, w, ws, two_q, mul);
    // G groups of 16 coefficients at a time, stage by stage (see kTailGroups).
    const auto ct = [&](__m512i& x, __m512i& y, const Twiddle& W)
                        VEIL_AVX512 { ct_bfly(x, y, W.w, W.ws, two_q, mul); };
    for_groups(lo, block, [&]<int G>(std::size_t b0) VEIL_AVX512 {
      __m512i X[G], Y[G];
      for (int g = 0; g < G; ++g) {
        X[g] = _mm512_loadu_si512(a + b0 + 16 * g);
        Y[g] = _mm512_loadu_si512(a + b0 + 16 * g + 8);
        regroup(X[g], Y[g], kNatTo4);
      }
      register_stage<G>(X, Y, w, ws, n, b0, 4, k4To2, ct);
      register_stage<G>(X, Y, w, ws, n, b0, 2, k2To1, ct);
      register_stage<G>(X, Y, w, ws, n, b0, 1, k1ToNat, ct);
      for (int g = 0; g < G; ++g) {
        _mm512_storeu_si512(a + b0 + 16 * g, reduce(X[g]));
        _mm512_storeu_si512(a + b0 + 16 * g + 8, reduce(Y[g]));
      }
    });
  }
}

// w1_n, w1_ns: w[1] / n and its quotient, the last stage's twiddle with the scaling folded in.
template <class Mul>
VEIL_AVX512 void inverse(std::size_t n, const u64* w, const u64* ws, u64 qv, u64 ni, u64 nis, u64 w1_n,
                         u64 w1_ns, const Mul& mul, u64* a) {
  const __m512i q = _mm512_set1_epi64(static_cast<long long>(qv));
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * qv));
  const std::size_t block = std::min(n, kBlock);
  // Block by block: distances 1, 2, 4 in registers, then 8 .. block / 2 (but not n / 2).
  for (std::size_t lo = 0; lo < n; lo += block) {
    const auto gs = [&](__m512i& x, __m512i& y, const Twiddle& W)
                        VEIL_AVX512 { gs_bfly(x, y, W.w, W.ws, two_q, mul); };
    for_groups(lo, block, [&]<int G>(std::size_t b0) VEIL_AVX512 {
      __m512i X[G], Y[G];
      for (int g = 0; g < G; ++g) {
        X[g] = _mm512_loadu_si512(a + b0 + 16 * g);
        Y[g] = _mm512_loadu_si512(a + b0 + 16 * g + 8);
        regroup(X[g], Y[g], kNatTo1);
      }
      register_stage<G>(X, Y, w, ws, n, b0, 1, k1To2, gs);
      register_stage<G>(X, Y, w, ws, n, b0, 2, k2To4, gs);
      register_stage<G>(X, Y, w, ws, n, b0, 4, k4ToNat, gs);
      for (int g = 0; g < G; ++g) {
        _mm512_storeu_si512(a + b0 + 16 * g, X[g]);
        _mm512_storeu_si512(a + b0 + 16 * g + 8, Y[g]);
      }
    });
    inverse_stages(a, n, lo, block, 8, std::min(block / 2, n / 4), w, ws, two_q, mul);
  }
  // Distances block .. n / 4 over the whole limb.
  if (n / 4 >= block) inverse_stages(a, n, 0, n, block, n / 4, w, ws, two_q, mul);
  // Distance n / 2 with the scaling by 1/n folded in: x' = (x + y) / n and
  // y' = (x - y) w[1] / n, then [0, q). Inputs lie in [0, 2q), so x + y < 4q suits Mul.
  const std::size_t half = n / 2;
  const __m512i N = _mm512_set1_epi64(static_cast<long long>(ni));
  const __m512i NS = _mm512_set1_epi64(static_cast<long long>(nis));
  const __m512i W1 = _mm512_set1_epi64(static_cast<long long>(w1_n));
  const __m512i W1S = _mm512_set1_epi64(static_cast<long long>(w1_ns));
  for (std::size_t j = 0; j < half; j += 8) {
    const __m512i X = _mm512_loadu_si512(a + j), Y = _mm512_loadu_si512(a + half + j);
    const __m512i U = mul.mul_lazy(_mm512_add_epi64(X, Y), N, NS);
    const __m512i V = mul.mul_lazy(_mm512_add_epi64(_mm512_sub_epi64(X, Y), two_q), W1, W1S);
    _mm512_storeu_si512(a + j, csub(U, q));
    _mm512_storeu_si512(a + half + j, csub(V, q));
  }
}

}  // namespace

bool ntt_avx512_applicable(const NttTables& t) { return t.n() >= 16; }
bool ntt_avx512_uses_ifma(const NttTables& t) { return !t.psi_rev_shoup52().empty(); }

VEIL_AVX512 void ntt_forward_avx512(const NttTables& tab, u64* a) {
  const u64 q = tab.modulus().value();
  if (ntt_avx512_uses_ifma(tab) && grow_fits(tab)) {
    forward(tab.n(), tab.psi_rev().data(), tab.psi_rev_shoup52().data(), q,
            Ifma52<true>{ifma::consts(tab.modulus())}, a);
  } else if (ntt_avx512_uses_ifma(tab)) {
    forward(tab.n(), tab.psi_rev().data(), tab.psi_rev_shoup52().data(), q,
            Ifma52<false>{ifma::consts(tab.modulus())}, a);
  } else {
    forward(tab.n(), tab.psi_rev().data(), tab.psi_rev_shoup().data(), q,
            Wide64{_mm512_set1_epi64(static_cast<long long>(q))}, a);
  }
}

VEIL_AVX512 void ntt_inverse_avx512(const NttTables& tab, u64* a) {
  const Modulus& m = tab.modulus();
  const u64 q = m.value();
  const u64 w1_n = m.mul(tab.psi_inv_rev()[1], tab.n_inv());
  if (ntt_avx512_uses_ifma(tab)) {
    inverse(tab.n(), tab.psi_inv_rev().data(), tab.psi_inv_rev_shoup52().data(), q, tab.n_inv(),
            tab.n_inv_shoup52(), w1_n, ifma::shoup52(w1_n, q), Ifma52<false>{ifma::consts(m)}, a);
  } else {
    inverse(tab.n(), tab.psi_inv_rev().data(), tab.psi_inv_rev_shoup().data(), q, tab.n_inv(),
            tab.n_inv_shoup(), w1_n, m.shoup(w1_n), Wide64{_mm512_set1_epi64(static_cast<long long>(q))}, a);
  }
}

}  // namespace veil::math
