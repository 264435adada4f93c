// The multiply-accumulate kernels compiled for AVX2 (4-lane vpmuludq on the sub-32-bit
// path); mac.cpp calls them when the CPU has AVX2 and SIMD is enabled.
#include <immintrin.h>

#include <cstring>

#include "veil/he/mac.hpp"
#include "veil/he/mac_impl.hpp"
#include "veil/he/mac_kernels.hpp"
#include "veil/math/fpmod_avx2.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::he {

namespace {

// Pointwise products for primes of 33 to 50 bits in doubles (the FMA two-product of
// math/fpmod_avx2.hpp), where the portable path multiplies in 128-bit integers: about 2 ns
// a product against a fraction of that here. The sums of a tile of coefficients stay in
// L1 while the terms stream by; a sum in [0, q) plus three products in [-q, 2q) stays
// below 2^53 in magnitude, so it is reduced every third term, and three terms go in one
// pass (each sum loaded and stored once per three products). load_w(t, j) gives four
// weights of term t from coefficient j as doubles; each is loaded once for all polys.
template <class LoadW>
void mac_pointwise_fp(const math::Modulus& m, std::size_t n, std::size_t terms, LoadW load_w,
                      std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  constexpr std::size_t kFpTile = 256, kMaxPolys = 3;
  const __m256d q = _mm256_set1_pd(static_cast<double>(m.value()));
  const __m256d qinv = _mm256_set1_pd(1.0 / static_cast<double>(m.value()));
  alignas(32) double acc[kMaxPolys][kFpTile];
  for (std::size_t base = 0; base < n; base += kFpTile) {
    const std::size_t len = std::min(kFpTile, n - base);
    for (std::size_t c = 0; c < polys; ++c) std::fill(acc[c], acc[c] + len, 0.0);
    for (std::size_t t = 0; t < terms; t += 3) {
      const std::size_t k = std::min<std::size_t>(3, terms - t);  // fewer only at the end
      for (std::size_t j = 0; j < len; j += 4) {
        __m256d wv[3];
        for (std::size_t u = 0; u < k; ++u) wv[u] = load_w(t + u, base + j);
        for (std::size_t c = 0; c < polys; ++c) {
          double* a = acc[c] + j;
          __m256d s = _mm256_load_pd(a);
          for (std::size_t u = 0; u < k; ++u)
            s = _mm256_add_pd(
                s, math::fp::mul(wv[u], math::fp::load(x[(t + u) * polys + c] + base + j), q, qinv));
          if (k == 3) s = math::fp::reduce(s, q, qinv);
          _mm256_store_pd(a, s);
        }
      }
    }
    for (std::size_t c = 0; c < polys; ++c)
      for (std::size_t j = 0; j < len; j += 4)
        math::fp::store(out[c] + base + j, math::fp::reduce(_mm256_load_pd(acc[c] + j), q, qinv));
  }
}

// Pointwise products for primes below 2^31 in 64-bit integer lanes: one vpmuludq and one
// vpaddq per four products, where the double-precision kernel above needs the FMA
// two-product and a correction for each. The sums of a tile stay in L1 and are folded,
// not reduced, between batches of terms: a = lo + hi * (2^32 mod q), twice, leaves
// a < 2^32 + (q - 1)^2, room for `batch` more products below 2^64 (2-3 at 31 bits, 15 at
// 30); each sum is reduced exactly once, at the end. load_w(t, j) gives four weights of
// term t from coefficient j in the low halves of 64-bit lanes.
template <class LoadW>
void mac_pointwise_narrow(const math::Modulus& m, std::size_t n, std::size_t terms, LoadW load_w,
                          std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  constexpr std::size_t kNarrowTile = 256, kMaxPolys = 3, kPass = 4;
  const u64 q = m.value();
  const u128 sq = static_cast<u128>(q - 1) * (q - 1);
  const std::size_t batch = static_cast<std::size_t>(((~u128{0} >> 64) - (u128{1} << 32) - sq) / sq);
  const __m256i fold_by = _mm256_set1_epi64x(static_cast<long long>((u64{1} << 32) % q));
  const __m256i low = _mm256_set1_epi64x(0xffffffffLL);
  const auto fold = [&](__m256i a) {
    a = _mm256_add_epi64(_mm256_and_si256(a, low), _mm256_mul_epu32(_mm256_srli_epi64(a, 32), fold_by));
    return _mm256_add_epi64(_mm256_and_si256(a, low), _mm256_mul_epu32(_mm256_srli_epi64(a, 32), fold_by));
  };
  alignas(32) u64 acc[kMaxPolys][kNarrowTile];
  const std::size_t pass = std::min(kPass, batch);
  for (std::size_t base = 0; base < n; base += kNarrowTile) {
    const std::size_t len = std::min(kNarrowTile, n - base);
    for (std::size_t c = 0; c < polys; ++c) std::fill(acc[c], acc[c] + len, u64{0});
    std::size_t since_fold = 0;
    for (std::size_t t = 0; t < terms; t += pass) {
      const std::size_t k = std::min(pass, terms - t);
      if (since_fold + k > batch) {
        for (std::size_t c = 0; c < polys; ++c)
          for (std::size_t j = 0; j < len; j += 4) {
            auto* a = reinterpret_cast<__m256i*>(acc[c] + j);
            _mm256_store_si256(a, fold(_mm256_load_si256(a)));
          }
        since_fold = 0;
      }
      // The inputs' addresses in locals: read through the span, they would be reloaded
      // after every store to the sums.
      const u64* xp[kPass][kMaxPolys] = {};
      for (std::size_t u = 0; u < k; ++u)
        for (std::size_t c = 0; c < polys; ++c) xp[u][c] = x[(t + u) * polys + c] + base;
      const auto product = [](__m256i w, const u64* p) {
        return _mm256_mul_epu32(w, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      };
      if (k == kPass && polys == 2) {
        // The common case unrolled: four terms of a two-polynomial ciphertext.
        for (std::size_t j = 0; j < len; j += 4) {
          const __m256i w0 = load_w(t, base + j), w1 = load_w(t + 1, base + j), w2 = load_w(t + 2, base + j),
                        w3 = load_w(t + 3, base + j);
          for (std::size_t c = 0; c < 2; ++c) {
            auto* a = reinterpret_cast<__m256i*>(acc[c] + j);
            const __m256i s01 = _mm256_add_epi64(product(w0, xp[0][c] + j), product(w1, xp[1][c] + j));
            const __m256i s23 = _mm256_add_epi64(product(w2, xp[2][c] + j), product(w3, xp[3][c] + j));
            _mm256_store_si256(a, _mm256_add_epi64(_mm256_load_si256(a), _mm256_add_epi64(s01, s23)));
          }
        }
      } else {
        for (std::size_t j = 0; j < len; j += 4) {
          __m256i wv[kPass];
          for (std::size_t u = 0; u < k; ++u) wv[u] = load_w(t + u, base + j);
          for (std::size_t c = 0; c < polys; ++c) {
            auto* a = reinterpret_cast<__m256i*>(acc[c] + j);
            __m256i s = _mm256_load_si256(a);
            for (std::size_t u = 0; u < k; ++u) s = _mm256_add_epi64(s, product(wv[u], xp[u][c] + j));
            _mm256_store_si256(a, s);
          }
        }
      }
      since_fold += k;
    }
    for (std::size_t c = 0; c < polys; ++c)
      for (std::size_t j = 0; j < len; ++j) out[c][base + j] = m.reduce(acc[c][j]);
  }
}

// The narrow kernel's condition: a prime below 2^31 leaves room for at least two products
// between folds, and a tile of four coefficients at a time.
bool narrow_kernel_applies(const math::Modulus& q, std::size_t n, std::size_t polys) {
  return q.value() < (u64{1} << 31) && n % 4 == 0 && polys <= 3;
}

bool fp_kernel_applies(const math::Modulus& q, std::size_t n, std::size_t polys) {
  return math::vecmod_simd(q) && n % 4 == 0 && polys <= 3;
}

}  // namespace

void mac_pointwise_avx2(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                        std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (narrow_kernel_applies(q, n, polys)) {
    const auto load = [&](std::size_t t, std::size_t j) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[t] + j));
    };
    return mac_pointwise_narrow(q, n, w.size(), load, x, polys, out);
  }
  // Below 2^32 the integer kernel's 32-bit products are cheaper still.
  if (q.value() >= (u64{1} << 32) && fp_kernel_applies(q, n, polys)) {
    const auto load = [&](std::size_t t, std::size_t j) { return math::fp::load(w[t] + j); };
    return mac_pointwise_fp(q, n, w.size(), load, x, polys, out);
  }
  mac(
      q, n, w.size(), [&](std::size_t t, std::size_t j) { return w[t][j]; }, x, polys, out);
}

void mac_pointwise_packed_avx2(const math::Modulus& q, std::size_t n, std::span<const PackedRow> w,
                               std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (narrow_kernel_applies(q, n, polys)) {
    // Below 2^32 the two high bits are zero: the low words are the residues.
    const auto load = [&](std::size_t t, std::size_t j) {
      return _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[t].lo + j)));
    };
    return mac_pointwise_narrow(q, n, w.size(), load, x, polys, out);
  }
  if (!fp_kernel_applies(q, n, polys)) {
    mac(
        q, n, w.size(), [&](std::size_t t, std::size_t j) { return packed_at(w[t], j); }, x, polys, out);
    return;
  }
  // Four residues: widen the low words, and add the bits above them by the width.
  const auto lo_at = [&](std::size_t t, std::size_t j) {
    return _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[t].lo + j)));
  };
  switch (packed_width(q)) {
    case PackedWidth::k32: {
      const auto load = [&](std::size_t t, std::size_t j) { return math::fp::to_double(lo_at(t, j)); };
      return mac_pointwise_fp(q, n, w.size(), load, x, polys, out);
    }
    case PackedWidth::k34: {
      // The hi byte's four 2-bit fields spread to bits 32-33 of each lane.
      const __m256i shifts = _mm256_set_epi64x(6, 4, 2, 0), three = _mm256_set1_epi64x(3);
      const auto load = [&](std::size_t t, std::size_t j) {
        const __m256i hi =
            _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(w[t].hi[j >> 2]), shifts), three);
        return math::fp::to_double(_mm256_or_si256(lo_at(t, j), _mm256_slli_epi64(hi, 32)));
      };
      return mac_pointwise_fp(q, n, w.size(), load, x, polys, out);
    }
    case PackedWidth::k48: {
      const auto load = [&](std::size_t t, std::size_t j) {
        std::uint64_t bits;
        std::memcpy(&bits, w[t].hi16 + j, sizeof bits);
        const __m256i hi = _mm256_cvtepu16_epi64(_mm_cvtsi64_si128(static_cast<long long>(bits)));
        return math::fp::to_double(_mm256_or_si256(lo_at(t, j), _mm256_slli_epi64(hi, 32)));
      };
      return mac_pointwise_fp(q, n, w.size(), load, x, polys, out);
    }
  }
}

namespace {

// A register-blocked micro-kernel in the manner of a GEMM (Goto and van de Geijn 2008):
// R rows x 8 coefficients of 64-bit accumulators stay in registers (2R of the 16 ymm)
// while the terms stream by; each term costs two loads of x, R weight broadcasts and 2R
// vpmuludq + vpaddq. Coefficients [j, j + 8) of polynomial c; primes below 2^32.
template <int R>
void rows_x8(const math::Modulus& q, std::size_t terms, std::size_t batch, const u64* const* w,
             std::span<const u64* const> x, std::size_t polys, std::size_t c, std::size_t j,
             u64* const* out) {
  __m256i acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  // Reduced lane by lane through registers: storing the accumulators to memory here would
  // make the compiler keep them in memory throughout the loop.
  const auto reduce = [&q](__m256i v) {
    return _mm256_set_epi64x(static_cast<long long>(q.reduce(static_cast<u64>(_mm256_extract_epi64(v, 3)))),
                             static_cast<long long>(q.reduce(static_cast<u64>(_mm256_extract_epi64(v, 2)))),
                             static_cast<long long>(q.reduce(static_cast<u64>(_mm256_extract_epi64(v, 1)))),
                             static_cast<long long>(q.reduce(static_cast<u64>(_mm256_extract_epi64(v, 0)))));
  };
  for (std::size_t t0 = 0; t0 < terms; t0 += batch) {
    const std::size_t t1 = std::min(terms, t0 + batch);
    for (std::size_t t = t0; t < t1; ++t) {
      const u64* p = x[t * polys + c] + j;
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4));
      for (int r = 0; r < R; ++r) {
        const __m256i wv = _mm256_set1_epi64x(static_cast<long long>(w[r][t]));
        acc[r][0] = _mm256_add_epi64(acc[r][0], _mm256_mul_epu32(wv, x0));
        acc[r][1] = _mm256_add_epi64(acc[r][1], _mm256_mul_epu32(wv, x1));
      }
    }
    for (int r = 0; r < R; ++r) acc[r][0] = reduce(acc[r][0]), acc[r][1] = reduce(acc[r][1]);
  }
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[r * polys + c] + j), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[r * polys + c] + j + 4), acc[r][1]);
  }
}

// Signed 31-bit weights against residues of a prime of up to 62 bits: every residue is
// split into K chunks of `cb` bits, so each product is a 32 x 32 -> 64-bit signed
// vpmuldq below 2^(31 + cb) and 2^(32 - cb) terms fit a 64-bit accumulator (the wide
// base prime then costs K narrow multiplies instead of a scalar 128-bit one). R rows x 4
// coefficients x K chunks of accumulators; acc_out receives them as [r][k][lane].
template <int R, int K>
void rows_x4_signed(std::size_t t0, std::size_t t1, const std::int32_t* const* w,
                    std::span<const u64* const> x, std::size_t polys, std::size_t c, std::size_t j, int cb,
                    std::int64_t* acc_out) {
  __m256i acc[R][K];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) acc[r][k] = _mm256_setzero_si256();
  const __m256i mask = _mm256_set1_epi64x((std::int64_t{1} << cb) - 1);
  const __m128i shift = _mm_cvtsi32_si128(cb);
  for (std::size_t t = t0; t < t1; ++t) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t * polys + c] + j));
    __m256i chunk[K];
    for (int k = 0; k < K; ++k) {
      chunk[k] = k + 1 < K ? _mm256_and_si256(v, mask) : v;
      v = _mm256_srl_epi64(v, shift);
    }
    for (int r = 0; r < R; ++r) {
      const __m256i wv = _mm256_set1_epi64x(w[r][t]);
      for (int k = 0; k < K; ++k) acc[r][k] = _mm256_add_epi64(acc[r][k], _mm256_mul_epi32(wv, chunk[k]));
    }
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc_out + (r * K + k) * 4), acc[r][k]);
}

template <int K>
void signed_rows(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                 const std::int32_t* const* w, std::span<const u64* const> x, std::size_t polys,
                 u64* const* out, int cb) {
  // Terms per pass so that sum |w * chunk| < terms * 2^(31 + cb) stays below 2^63.
  const std::size_t group = std::size_t{1} << (32 - cb);
  // The chunk sums recombine exactly in 128 bits (|acc_k| < 2^63, shifts <= 2 cb <= 42):
  // one reduction per coefficient.
  const auto to_residue = [&](const std::int64_t* a) {
    __int128 v = 0;
    for (int k = K - 1; k >= 0; --k) v = (v << cb) + a[k * 4];
    const u64 m = q.reduce128(static_cast<u128>(v < 0 ? -v : v));
    return v < 0 ? q.neg(m) : m;
  };
  alignas(32) std::int64_t acc[4 * K * 4];
  for (std::size_t c = 0; c < polys; ++c)
    for (std::size_t r0 = 0; r0 < rows; r0 += 4) {
      const std::size_t rr = std::min<std::size_t>(4, rows - r0);
      for (std::size_t j = 0; j < n; j += 4)
        for (std::size_t t0 = 0; t0 < terms; t0 += group) {
          const std::size_t t1 = std::min(terms, t0 + group);
          switch (rr) {
            case 4:
              rows_x4_signed<4, K>(t0, t1, w + r0, x, polys, c, j, cb, acc);
              break;
            case 3:
              rows_x4_signed<3, K>(t0, t1, w + r0, x, polys, c, j, cb, acc);
              break;
            case 2:
              rows_x4_signed<2, K>(t0, t1, w + r0, x, polys, c, j, cb, acc);
              break;
            default:
              rows_x4_signed<1, K>(t0, t1, w + r0, x, polys, c, j, cb, acc);
              break;
          }
          for (std::size_t r = 0; r < rr; ++r)
            for (std::size_t lane = 0; lane < 4; ++lane) {
              const u64 v = to_residue(acc + r * K * 4 + lane);
              u64& o = out[(r0 + r) * polys + c][j + lane];
              o = t0 == 0 ? v : q.add(o, v);
            }
        }
    }
}

}  // namespace

void mac_scalar_rows_signed_avx2(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                                 const std::int32_t* const* w, std::span<const u64* const> x,
                                 std::size_t polys, u64* const* out) {
  const int bits = 64 - __builtin_clzll(q.value());
  if (n % 4 != 0 || bits > 62) return mac_rows_signed_portable(q, n, rows, terms, w, x, polys, out);
  if (bits <= 40) return signed_rows<2>(q, n, rows, terms, w, x, polys, out, (bits + 1) / 2);
  signed_rows<3>(q, n, rows, terms, w, x, polys, out, (bits + 2) / 3);
}

void mac_scalar_rows_avx2(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                          const u64* const* w, std::span<const u64* const> x, std::size_t polys,
                          u64* const* out) {
  if (q.value() >= (u64{1} << 32) || n % 8 != 0) return mac_rows(q, n, rows, terms, w, x, polys, out);
  const std::size_t batch = batch_64(q);
  // 32 coefficients of every term (256 B each) stay in L2 while all rows pass over them.
  constexpr std::size_t kTile = 32;
  for (std::size_t base = 0; base < n; base += kTile) {
    const std::size_t end = std::min(n, base + kTile);
    for (std::size_t c = 0; c < polys; ++c)
      for (std::size_t r = 0; r < rows; r += 4) {
        const u64* const* wr = w + r;
        u64* const* o = out + r * polys;
        for (std::size_t j = base; j < end; j += 8) switch (std::min<std::size_t>(4, rows - r)) {
            case 4:
              rows_x8<4>(q, terms, batch, wr, x, polys, c, j, o);
              break;
            case 3:
              rows_x8<3>(q, terms, batch, wr, x, polys, c, j, o);
              break;
            case 2:
              rows_x8<2>(q, terms, batch, wr, x, polys, c, j, o);
              break;
            default:
              rows_x8<1>(q, terms, batch, wr, x, polys, c, j, o);
              break;
          }
      }
  }
}

}  // namespace veil::he
