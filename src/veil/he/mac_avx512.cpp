// The multiply-accumulate kernels with AVX-512 (IFMA52 where products exceed 32 bits),
// eight coefficients a vector; mac.cpp calls them when simd_level() is kAvx512. Cases
// they do not cover go to the AVX2 builds (mac_avx2.cpp). Every function that uses
// AVX-512 carries VEIL_AVX512 (a function attribute, not a per-file flag, so no inline
// function of a shared header is ever compiled for AVX-512 here and picked by the linker
// for code that runs on AVX2-only CPUs).
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_epi32() as the unused merge source,
// which -Wmaybe-uninitialized reports at every inlined call (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)  // clang has no such warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cstring>

#include "veil/he/mac_kernels.hpp"
#include "veil/math/ifma_avx512.hpp"

namespace veil::he {

using math::u128;
namespace ifma = math::ifma;

namespace {

constexpr std::size_t kTile = 256, kMaxPolys = 3;
using Sums = u64[kMaxPolys][kTile];

// K terms into the sums of one tile: each weight vector is loaded once for all polys,
// and each sum once per K products.
template <std::size_t K, class LoadW>
VEIL_AVX512 inline void mac_pass(std::size_t t, std::size_t base, std::size_t len, const LoadW& load_w,
                                 std::span<const u64* const> x, std::size_t polys, Sums& hi, Sums& lo) {
  for (std::size_t j = 0; j < len; j += 8) {
    __m512i wv[K];
    for (std::size_t u = 0; u < K; ++u) wv[u] = load_w(t + u, base + j);
    for (std::size_t ci = 0; ci < polys; ++ci) {
      __m512i h = _mm512_load_si512(hi[ci] + j), l = _mm512_load_si512(lo[ci] + j);
      for (std::size_t u = 0; u < K; ++u) {
        const __m512i xv = ifma::load(x[(t + u) * polys + ci] + base + j);
        h = _mm512_madd52hi_epu64(h, wv[u], xv);
        l = _mm512_madd52lo_epu64(l, wv[u], xv);
      }
      _mm512_store_si512(hi[ci] + j, h);
      _mm512_store_si512(lo[ci] + j, l);
    }
  }
}

// Pointwise products of residues below 2^50 kept as two 64-bit sums of their 52-bit
// halves (vpmadd52luq / vpmadd52huq): exact for 2^11 terms, then folded to [0, q). The
// sums of a tile of coefficients stay in L1 while the terms stream by, four terms a pass
// (the rest of a batch in one shorter pass) so that the sums are loaded and stored once
// per four products: one term a pass is bound by those loads and stores, not by the
// multiplies (eight a pass measured no faster: then the terms' own loads bound it).
// load_w(t, j) gives eight weights of term t.
template <class LoadW>
VEIL_AVX512 void pointwise_ifma(const math::Modulus& m, std::size_t n, std::size_t terms, LoadW load_w,
                                std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  constexpr std::size_t kFold = std::size_t{1} << 11, kUnroll = 4;
  static_assert(kFold % kUnroll == 0);
  const ifma::Consts c = ifma::consts(m);
  const ifma::HalvesFold f = ifma::halves_fold(m);
  const auto fold = [&](__m512i hi, __m512i lo) VEIL_AVX512 { return ifma::fold_halves(hi, lo, f, c); };
  alignas(64) Sums hi, lo;
  for (std::size_t base = 0; base < n; base += kTile) {
    const std::size_t len = std::min(kTile, n - base);
    for (std::size_t ci = 0; ci < polys; ++ci) {
      std::fill(hi[ci], hi[ci] + len, 0);
      std::fill(lo[ci], lo[ci] + len, 0);
    }
    for (std::size_t t = 0; t < terms;) {
      // Terms up to the next fold (kFold products at most in a sum), kUnroll at a time.
      const std::size_t stop = std::min(terms, (t / kFold + 1) * kFold);
      for (; t + kUnroll <= stop; t += kUnroll) mac_pass<kUnroll>(t, base, len, load_w, x, polys, hi, lo);
      switch (stop - t) {
        case 3:
          mac_pass<3>(t, base, len, load_w, x, polys, hi, lo);
          break;
        case 2:
          mac_pass<2>(t, base, len, load_w, x, polys, hi, lo);
          break;
        case 1:
          mac_pass<1>(t, base, len, load_w, x, polys, hi, lo);
          break;
        default:
          break;
      }
      t = stop;
      if (t < terms)  // fold before the next kFold terms
        for (std::size_t ci = 0; ci < polys; ++ci)
          for (std::size_t j = 0; j < len; j += 8) {
            _mm512_store_si512(lo[ci] + j,
                               fold(_mm512_load_si512(hi[ci] + j), _mm512_load_si512(lo[ci] + j)));
            _mm512_store_si512(hi[ci] + j, _mm512_setzero_si512());
          }
    }
    for (std::size_t ci = 0; ci < polys; ++ci)
      for (std::size_t j = 0; j < len; j += 8)
        ifma::store(out[ci] + base + j, fold(_mm512_load_si512(hi[ci] + j), _mm512_load_si512(lo[ci] + j)));
  }
}

bool ifma_applies(const math::Modulus& q, std::size_t n, std::size_t polys) {
  return ifma::applicable(q) && n % 8 == 0 && polys <= 3;
}

// Terms that fit a 64-bit accumulator of 32 x 32-bit products before it must be reduced,
// counting the reduced remainder (< q) it may hold: q + (q-1)^2 terms < 2^64.
std::size_t batch_64(const math::Modulus& q) {
  const u128 sq = static_cast<u128>(q.value() - 1) * (q.value() - 1);
  return static_cast<std::size_t>(std::min<u128>(((~u128{0} >> 64) - q.value()) / sq, 1u << 20));
}

// The register-blocked micro-kernel of mac_avx2.cpp (after Goto and van de Geijn 2008)
// at twice the width and rows: R rows x 16 coefficients of 64-bit accumulators (2R of the
// 32 zmm registers) while the terms stream by, reduced in registers by the IFMA Barrett
// step instead of lane by lane. Primes of 13 to 32 bits.
template <int R>
VEIL_AVX512 void rows_x16(std::size_t terms, std::size_t batch, const u64* const* w,
                          std::span<const u64* const> x, std::size_t polys, std::size_t ci, std::size_t j,
                          u64* const* out, const ifma::Consts& c) {
  __m512i acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (std::size_t t0 = 0; t0 < terms; t0 += batch) {
    const std::size_t t1 = std::min(terms, t0 + batch);
    for (std::size_t t = t0; t < t1; ++t) {
      const u64* p = x[t * polys + ci] + j;
      const __m512i x0 = _mm512_loadu_si512(p), x1 = _mm512_loadu_si512(p + 8);
      for (int r = 0; r < R; ++r) {
        const __m512i wv = _mm512_set1_epi64(static_cast<long long>(w[r][t]));
        acc[r][0] = _mm512_add_epi64(acc[r][0], _mm512_mul_epu32(wv, x0));
        acc[r][1] = _mm512_add_epi64(acc[r][1], _mm512_mul_epu32(wv, x1));
      }
    }
    for (int r = 0; r < R; ++r)
      acc[r][0] = ifma::reduce64(acc[r][0], c), acc[r][1] = ifma::reduce64(acc[r][1], c);
  }
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_si512(out[r * polys + ci] + j, acc[r][0]);
    _mm512_storeu_si512(out[r * polys + ci] + j + 8, acc[r][1]);
  }
}

}  // namespace

VEIL_AVX512 void mac_pointwise_avx512(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                                      std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (!ifma_applies(q, n, polys)) return mac_pointwise_avx2(q, n, w, x, polys, out);
  const auto load = [&](std::size_t t, std::size_t j) VEIL_AVX512 { return ifma::load(w[t] + j); };
  pointwise_ifma(q, n, w.size(), load, x, polys, out);
}

VEIL_AVX512 void mac_pointwise_packed_avx512(const math::Modulus& q, std::size_t n,
                                             std::span<const PackedRow> w, std::span<const u64* const> x,
                                             std::size_t polys, u64* const* out) {
  if (!ifma_applies(q, n, polys)) return mac_pointwise_packed_avx2(q, n, w, x, polys, out);
  // Eight residues: widen the low words, and add the bits above them by the width.
  const auto lo_at = [&](std::size_t t, std::size_t j) VEIL_AVX512 {
    return _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[t].lo + j)));
  };
  switch (packed_width(q)) {
    case PackedWidth::k32:
      return pointwise_ifma(q, n, w.size(), lo_at, x, polys, out);
    case PackedWidth::k34: {
      // The two hi bytes' eight 2-bit fields spread to bits 32-33 of each lane.
      const __m512i shifts = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), three = _mm512_set1_epi64(3);
      const auto load = [&](std::size_t t, std::size_t j) VEIL_AVX512 {
        std::uint16_t bits;
        std::memcpy(&bits, w[t].hi + (j >> 2), sizeof bits);
        const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(bits), shifts), three);
        return _mm512_or_si512(lo_at(t, j), _mm512_slli_epi64(hi, 32));
      };
      return pointwise_ifma(q, n, w.size(), load, x, polys, out);
    }
    case PackedWidth::k48: {
      const auto load = [&](std::size_t t, std::size_t j) VEIL_AVX512 {
        const __m512i hi =
            _mm512_cvtepu16_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[t].hi16 + j)));
        return _mm512_or_si512(lo_at(t, j), _mm512_slli_epi64(hi, 32));
      };
      return pointwise_ifma(q, n, w.size(), load, x, polys, out);
    }
  }
}

VEIL_AVX512 void mac_scalar_rows_avx512(const math::Modulus& q, std::size_t n, std::size_t rows,
                                        std::size_t terms, const u64* const* w, std::span<const u64* const> x,
                                        std::size_t polys, u64* const* out) {
  if (q.value() >= (u64{1} << 32) || q.bits() < 13 || n % 16 != 0)
    return mac_scalar_rows_avx2(q, n, rows, terms, w, x, polys, out);
  const ifma::Consts c = ifma::consts(q);
  const std::size_t batch = batch_64(q);
  // 64 coefficients of every term (512 B each) stay in L2 while all rows pass over them.
  constexpr std::size_t kTile = 64;
  for (std::size_t base = 0; base < n; base += kTile) {
    const std::size_t end = std::min(n, base + kTile);
    for (std::size_t ci = 0; ci < polys; ++ci)
      for (std::size_t r = 0; r < rows; r += 8) {
        const u64* const* wr = w + r;
        u64* const* o = out + r * polys;
        for (std::size_t j = base; j < end; j += 16) switch (std::min<std::size_t>(8, rows - r)) {
            case 8:
              rows_x16<8>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
            case 7:
              rows_x16<7>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
            case 6:
              rows_x16<6>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
            case 5:
              rows_x16<5>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
            case 4:
              rows_x16<4>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
            case 3:
              rows_x16<3>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
            case 2:
              rows_x16<2>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
            default:
              rows_x16<1>(terms, batch, wr, x, polys, ci, j, o, c);
              break;
          }
      }
  }
}

}  // namespace veil::he
