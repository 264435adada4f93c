#include "veil/math/vecmod.hpp"

#include <algorithm>
#include <vector>

#include "veil/common/error.hpp"
#include "veil/math/cpu.hpp"
#include "veil/math/fpmod_avx2.hpp"
#include "veil/math/ifma_avx512.hpp"

namespace veil::math {

// The AVX-512 IFMA builds (vecmod_avx512.cpp): primes of 13 to 50 bits, n a multiple of 8.
void add_avx512(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n);
void sub_avx512(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n);
void mul_avx512(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n);
void mul_const_add_wide_avx512(const Modulus& m, const u64* x, u64 w, const u64* y, u64* out, std::size_t n);
void lift_centred_avx512(const Modulus& m, const u64* r, u64 p, u64* out, std::size_t n);
void rank_avx512(const u64* r, std::size_t n, const u64* t, std::size_t m, u64* out);
void mul_const_avx512(const Modulus& m, const u64* x, const u64* y, u64 w, u64* out, std::size_t n);
void tensor_avx512(const Modulus& m, const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* c0,
                   u64* c1, u64* c2, std::size_t n);
void dot2_avx512(const Modulus& m, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
                 const u64* const* k0, const u64* const* k1, u64* o0, u64* o1, std::size_t n);
void dot2_avx512(const Modulus& m, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
                 const Words33* k0, const Words33* k1, u64* o0, u64* o1, std::size_t n);
void dot2_avx512(const Modulus& m, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
                 const std::uint32_t* const* k0, const std::uint32_t* const* k1, u64* o0, u64* o1,
                 std::size_t n);
void lift_signed40_avx512(const Modulus& m, const std::uint32_t* lo, const std::int8_t* hi, u64* out,
                          std::size_t n);
void lift_signed40_avx512(const Modulus& m, const std::uint32_t* lo, const std::int8_t* hi,
                          std::uint32_t* out, std::size_t n);

namespace {

// ---- AVX2 + FMA paths (q < 2^50) ----

struct FpConsts {
  __m256d q, qinv;
};

VEIL_AVX2 FpConsts fp_consts(const Modulus& m) {
  const double qd = static_cast<double>(m.value());
  return {_mm256_set1_pd(qd), _mm256_set1_pd(1.0 / qd)};
}

// x*y - k*q in [-q, 2q) -> [0, q).
VEIL_AVX2 inline __m256d normalise(__m256d r, __m256d q) { return fp::csub(fp::cadd(r, q), q); }

// a + b - q where that is not negative (signed compares: residues stay below 2^50).
VEIL_AVX2 void add_avx2(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n) {
  const __m256i q = _mm256_set1_epi64x(static_cast<long long>(m.value()));
  for (std::size_t j = 0; j < n; j += 4) {
    const __m256i s = _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j)),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j)));
    const __m256i below = _mm256_cmpgt_epi64(q, s);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                        _mm256_blendv_epi8(_mm256_sub_epi64(s, q), s, below));
  }
}

// a - b, plus q where that is negative (signed compares, as above).
VEIL_AVX2 void sub_avx2(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n) {
  const __m256i q = _mm256_set1_epi64x(static_cast<long long>(m.value()));
  const __m256i zero = _mm256_setzero_si256();
  for (std::size_t j = 0; j < n; j += 4) {
    const __m256i d = _mm256_sub_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j)),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j)));
    const __m256i negative = _mm256_cmpgt_epi64(zero, d);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                        _mm256_add_epi64(d, _mm256_and_si256(q, negative)));
  }
}

// Unsigned compares through the signed ones, both sides with the top bit flipped.
VEIL_AVX2 void rank_avx2(const u64* r, std::size_t n, const u64* t, std::size_t m, u64* out) {
  const __m256i flip = _mm256_set1_epi64x(static_cast<long long>(u64{1} << 63));
  for (std::size_t j = 0; j < n; j += 4) {
    const __m256i v =
        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + j)), flip);  // r ^ 2^63
    __m256i acc = _mm256_setzero_si256();
    for (std::size_t k = 0; k < m; ++k) {
      const __m256i tk = _mm256_xor_si256(_mm256_set1_epi64x(static_cast<long long>(t[k])), flip);
      acc = _mm256_sub_epi64(acc, _mm256_cmpgt_epi64(tk, v));  // -1 where t > r
    }
    // acc = -(thresholds above r); the rank is m minus that count.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                        _mm256_sub_epi64(_mm256_set1_epi64x(static_cast<long long>(m)), acc));
  }
}

VEIL_AVX2 void mul_avx2(const Modulus& m, const u64* a, const u64* b, u64* out, std::size_t n) {
  const FpConsts c = fp_consts(m);
  for (std::size_t j = 0; j < n; j += 4) {
    fp::store(out + j, normalise(fp::mul(fp::load(a + j), fp::load(b + j), c.q, c.qinv), c.q));
  }
}

// y = null: out = x * w; else out = (x - y) * w. x - y + q lies in (0, 2q), below 2^52.
VEIL_AVX2 void mul_const_avx2(const Modulus& m, const u64* x, const u64* y, u64 w, u64* out, std::size_t n) {
  const FpConsts c = fp_consts(m);
  const __m256d wd = _mm256_set1_pd(static_cast<double>(w));
  const __m256d wq = _mm256_set1_pd(static_cast<double>(w) / static_cast<double>(m.value()));
  for (std::size_t j = 0; j < n; j += 4) {
    __m256d v = fp::load(x + j);
    if (y) v = _mm256_add_pd(_mm256_sub_pd(v, fp::load(y + j)), c.q);
    fp::store(out + j, normalise(fp::mul_const(v, wd, wq, c.q), c.q));
  }
}

VEIL_AVX2 void tensor_avx2(const Modulus& m, const u64* a0, const u64* a1, const u64* b0, const u64* b1,
                           u64* c0, u64* c1, u64* c2, std::size_t n) {
  const FpConsts c = fp_consts(m);
  const bool square = a0 == b0 && a1 == b1;
  for (std::size_t j = 0; j < n; j += 4) {
    const __m256d x0 = fp::load(a0 + j), x1 = fp::load(a1 + j);
    const __m256d y0 = square ? x0 : fp::load(b0 + j), y1 = square ? x1 : fp::load(b1 + j);
    // Four products: in doubles a multiply costs less than Karatsuba's extra reductions.
    __m256d mid;
    if (square) {
      const __m256d r = fp::mul(x0, x1, c.q, c.qinv);
      mid = _mm256_add_pd(r, r);
    } else {
      mid = _mm256_add_pd(fp::mul(x0, y1, c.q, c.qinv), fp::mul(x1, y0, c.q, c.qinv));
    }
    fp::store(c0 + j, normalise(fp::mul(x0, y0, c.q, c.qinv), c.q));
    fp::store(c1 + j, fp::reduce(mid, c.q, c.qinv));
    fp::store(c2 + j, normalise(fp::mul(x1, y1, c.q, c.qinv), c.q));
  }
}

// Four key words as doubles: held whole, or in 33 bits (Words33; j is a multiple of 4, so
// their 33rd bits are a nibble of high[j / 8], looked up as four lanes of 0 or 2^32: one
// load where shifting the nibble into the lanes took four instructions and 60% more time
// in BM_KeySwitchDotNarrow).
struct HighLanes {
  alignas(32) std::uint64_t lanes[16][4];
  HighLanes() {
    for (unsigned nibble = 0; nibble < 16; ++nibble)
      for (unsigned lane = 0; lane < 4; ++lane) lanes[nibble][lane] = u64{(nibble >> lane) & 1u} << 32;
  }
};
const HighLanes kHighLanes;

VEIL_AVX2 inline __m256d load_key_fp(const u64* k, std::size_t j) { return fp::load(k + j); }
VEIL_AVX2 inline __m256d load_key_fp(const Words33& k, std::size_t j) {
  const __m256i low = _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k.low + j)));
  const __m256i high =
      _mm256_load_si256(reinterpret_cast<const __m256i*>(kHighLanes.lanes[(k.high[j / 8] >> (j % 8)) & 0xF]));
  return fp::to_double(_mm256_or_si256(low, high));
}

template <typename Key>
VEIL_AVX2 void dot2_avx2(const Modulus& m, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
                         const Key* k0, const Key* k1, u64* o0, u64* o1, std::size_t n) {
  const FpConsts c = fp_consts(m);
  for (std::size_t j = 0; j < n; j += 4) {
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    const __m128i idx =
        perm ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(perm + j)) : _mm_setzero_si128();
    for (std::size_t t = 0; t < terms; ++t) {
      const __m256d x =
          perm ? fp::to_double(_mm256_i32gather_epi64(reinterpret_cast<const long long*>(v[t]), idx, 8))
               : fp::load(v[t] + j);
      s0 = _mm256_add_pd(s0, fp::mul(x, load_key_fp(k0[t], j), c.q, c.qinv));
      s1 = _mm256_add_pd(s1, fp::mul(x, load_key_fp(k1[t], j), c.q, c.qinv));
      // Three terms in [-q, 2q) on top of [0, q) stay within (-2^53, 2^53), where
      // doubles hold integers exactly.
      if (t % 3 == 2 && t + 1 < terms) {
        s0 = fp::reduce(s0, c.q, c.qinv);
        s1 = fp::reduce(s1, c.q, c.qinv);
      }
    }
    fp::store(o0 + j, fp::reduce(s0, c.q, c.qinv));
    fp::store(o1 + j, fp::reduce(s1, c.q, c.qinv));
  }
}

// The inner product for primes below 2^30 in 64-bit integer lanes: one vpmuludq per
// product, the sums exact (15 products below 2^60 fit in 64 bits), one reduction per
// output at the end, where dot2_avx2 spends an FMA two-product and a correction on every
// product (fp::reduce_narrow, once per output).
constexpr std::size_t kNarrowDotTerms = 15;

VEIL_AVX2 inline __m256i load(const u64* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

VEIL_AVX2 inline void finish(u64* out, __m256i sum, __m256i fold_by, __m256i qv, __m256d qinv) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), fp::reduce_narrow(sum, fold_by, qv, qinv));
}

// Four key words widened to 64-bit lanes: keys held whole, or in 32-bit words (the
// narrow limbs of rlwe::KeyPoly), which halves the bytes this memory-bound loop streams.
VEIL_AVX2 inline __m256i load_key(const u64* p) { return load(p); }
VEIL_AVX2 inline __m256i load_key(const std::uint32_t* p) {
  return _mm256_cvtepu32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <typename Key>
VEIL_AVX2 void dot2_avx2_narrow(const Modulus& m, std::size_t terms, const u64* const* v,
                                const std::uint32_t* perm, const Key* const* k0, const Key* const* k1,
                                u64* o0, u64* o1, std::size_t n) {
  const __m256i qv = _mm256_set1_epi64x(static_cast<long long>(m.value()));
  const __m256i fold_by = _mm256_set1_epi64x(static_cast<long long>((u64{1} << 32) % m.value()));
  const __m256d qinv = _mm256_set1_pd(1.0 / static_cast<double>(m.value()));
  // Eight coefficients a step (n a multiple of 8; dot2_vec leaves the rest to the scalar
  // tail): a rotation's permuted source is read with one 8-lane gather of the residues'
  // low words (they fit 32 bits), where 4-lane gathers of whole words took twice the
  // instructions.
  for (std::size_t j = 0; j < n; j += 8) {
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    __m256i s2 = _mm256_setzero_si256(), s3 = _mm256_setzero_si256();
    const __m256i idx = perm ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(perm + j)) : __m256i{};
    for (std::size_t t = 0; t < terms; ++t) {
      __m256i xa, xb;
      if (perm) {
        const __m256i x = _mm256_i32gather_epi32(reinterpret_cast<const int*>(v[t]), idx, 8);
        xa = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(x));
        xb = _mm256_cvtepu32_epi64(_mm256_extracti128_si256(x, 1));
      } else {
        xa = load(v[t] + j);
        xb = load(v[t] + j + 4);
      }
      s0 = _mm256_add_epi64(s0, _mm256_mul_epu32(xa, load_key(k0[t] + j)));
      s1 = _mm256_add_epi64(s1, _mm256_mul_epu32(xa, load_key(k1[t] + j)));
      s2 = _mm256_add_epi64(s2, _mm256_mul_epu32(xb, load_key(k0[t] + j + 4)));
      s3 = _mm256_add_epi64(s3, _mm256_mul_epu32(xb, load_key(k1[t] + j + 4)));
    }
    finish(o0 + j, s0, fold_by, qv, qinv);
    finish(o1 + j, s1, fold_by, qv, qinv);
    finish(o0 + j + 4, s2, fold_by, qv, qinv);
    finish(o1 + j + 4, s3, fold_by, qv, qinv);
  }
}

// ---- portable paths ----

void tensor_scalar(const Modulus& q, const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* c0,
                   u64* c1, u64* c2, std::size_t n) {
  if (a0 == b0 && a1 == b1) {
    for (std::size_t j = 0; j < n; ++j) {
      c0[j] = q.mul(a0[j], a0[j]);
      c1[j] = q.mul(q.add(a0[j], a0[j]), a1[j]);
      c2[j] = q.mul(a1[j], a1[j]);
    }
    return;
  }
  // Karatsuba: c1 = (a0 + a1)(b0 + b1) - c0 - c2, three products instead of four.
  for (std::size_t j = 0; j < n; ++j) {
    const u64 p0 = q.mul(a0[j], b0[j]), p2 = q.mul(a1[j], b1[j]);
    const u64 mid = q.mul(q.add(a0[j], a1[j]), q.add(b0[j], b1[j]));
    c0[j] = p0;
    c1[j] = q.sub(q.sub(mid, p0), p2);
    c2[j] = p2;
  }
}

void dot2_scalar(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
                 const u64* const* k0, const u64* const* k1, u64* o0, u64* o1, std::size_t n) {
  // 128-bit sums over tiles of coefficients: the sums of a tile stay in L1 while each
  // inner loop streams three arrays. Products lie below q^2, so 2^(128 - 2 bits) of them
  // fit (64 below 2^122); the sums are reduced after as many (bfv::Evaluator's products
  // take hundreds of terms).
  constexpr std::size_t kTile = 256;
  u128 s0[kTile], s1[kTile];
  const int slack = 128 - 2 * q.bits();
  const std::size_t fold = slack >= 30 ? (std::size_t{1} << 30) : (std::size_t{1} << slack) - 1;
  for (std::size_t x0 = 0; x0 < n; x0 += kTile) {
    const std::size_t len = std::min(kTile, n - x0);
    std::fill(s0, s0 + len, 0);
    std::fill(s1, s1 + len, 0);
    for (std::size_t t = 0; t < terms; ++t) {
      if (t > 0 && t % fold == 0)
        for (std::size_t x = 0; x < len; ++x) s0[x] = q.reduce128(s0[x]), s1[x] = q.reduce128(s1[x]);
      const u64 *a = k0[t] + x0, *b = k1[t] + x0;
      if (perm) {
        const std::uint32_t* px = perm + x0;
        for (std::size_t x = 0; x < len; ++x) {
          const u64 val = v[t][px[x]];
          s0[x] += static_cast<u128>(val) * a[x];
          s1[x] += static_cast<u128>(val) * b[x];
        }
      } else {
        const u64* vx = v[t] + x0;
        for (std::size_t x = 0; x < len; ++x) {
          s0[x] += static_cast<u128>(vx[x]) * a[x];
          s1[x] += static_cast<u128>(vx[x]) * b[x];
        }
      }
    }
    for (std::size_t x = 0; x < len; ++x) {
      o0[x0 + x] = q.reduce128(s0[x]);
      o1[x0 + x] = q.reduce128(s1[x]);
    }
  }
}

// The SIMD kernels take whole vectors (of four for AVX2, eight for AVX-512); the rest
// goes through the scalar path.
std::size_t simd_part(SimdLevel level, std::size_t n) {
  return level == SimdLevel::kAvx512 ? n & ~std::size_t{7}
         : level == SimdLevel::kAvx2 ? n & ~std::size_t{3}
                                     : 0;
}

}  // namespace

SimdLevel vecmod_level(const Modulus& q) {
  const SimdLevel level = simd_level();
  if (level >= SimdLevel::kAvx512 && ifma::applicable(q)) return SimdLevel::kAvx512;
  if (level >= SimdLevel::kAvx2 && q.bits() <= 50) return SimdLevel::kAvx2;
  return SimdLevel::kScalar;
}

bool vecmod_simd(const Modulus& q) { return vecmod_level(q) != SimdLevel::kScalar; }

void add_vec(const Modulus& q, const u64* a, const u64* b, u64* out, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    add_avx512(q, a, b, out, s);
  } else if (s) {
    add_avx2(q, a, b, out, s);
  }
  for (std::size_t j = s; j < n; ++j) out[j] = q.add(a[j], b[j]);
}

void sub_vec(const Modulus& q, const u64* a, const u64* b, u64* out, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    sub_avx512(q, a, b, out, s);
  } else if (s) {
    sub_avx2(q, a, b, out, s);
  }
  for (std::size_t j = s; j < n; ++j) out[j] = q.sub(a[j], b[j]);
}

void mul_vec(const Modulus& q, const u64* a, const u64* b, u64* out, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    mul_avx512(q, a, b, out, s);
  } else if (s) {
    mul_avx2(q, a, b, out, s);
  }
  for (std::size_t j = s; j < n; ++j) out[j] = q.mul(a[j], b[j]);
}

void rank_vec(const u64* r, std::size_t n, const u64* t, std::size_t m, u64* out) {
  const SimdLevel level = simd_level();
  const std::size_t s = simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    rank_avx512(r, s, t, m, out);
  } else if (s) {
    rank_avx2(r, s, t, m, out);
  }
  for (std::size_t j = s; j < n; ++j) {
    u64 c = 0;
    for (std::size_t k = 0; k < m; ++k) c += r[j] >= t[k] ? 1 : 0;
    out[j] = c;
  }
}

void lift_centred_vec(const Modulus& q, const u64* r, u64 p, u64* out, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = level == SimdLevel::kAvx512 ? simd_part(level, n) : 0;
  if (s) lift_centred_avx512(q, r, p, out, s);
  const u64 half = p >> 1, p_mod = q.reduce(p);
  for (std::size_t j = s; j < n; ++j) {
    const u64 ri = q.reduce(r[j]);
    out[j] = r[j] > half ? q.sub(ri, p_mod) : ri;
  }
}

void mul_const_add_wide_vec(const Modulus& q, const u64* x, u64 w, const u64* y, u64* out, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  // AVX-512 only: the AVX2 kernels compute in doubles, which do not hold 64-bit words.
  const std::size_t s = level == SimdLevel::kAvx512 ? simd_part(level, n) : 0;
  if (s) mul_const_add_wide_avx512(q, x, w, y, out, s);
  for (std::size_t j = s; j < n; ++j) out[j] = q.add(q.mul(w, q.reduce(x[j])), q.reduce(y[j]));
}

void mul_const_vec(const Modulus& q, const u64* x, u64 w, u64* out, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    mul_const_avx512(q, x, nullptr, w, out, s);
  } else if (s) {
    mul_const_avx2(q, x, nullptr, w, out, s);
  }
  const u64 ws = q.shoup(w);
  for (std::size_t j = s; j < n; ++j) out[j] = q.mul_shoup(x[j], w, ws);
}

void sub_mul_const_vec(const Modulus& q, const u64* x, const u64* y, u64 w, u64* out, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    mul_const_avx512(q, x, y, w, out, s);
  } else if (s) {
    mul_const_avx2(q, x, y, w, out, s);
  }
  const u64 ws = q.shoup(w);
  for (std::size_t j = s; j < n; ++j) out[j] = q.mul_shoup(q.sub(x[j], y[j]), w, ws);
}

void tensor_vec(const Modulus& q, const u64* a0, const u64* a1, const u64* b0, const u64* b1, u64* c0,
                u64* c1, u64* c2, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    tensor_avx512(q, a0, a1, b0, b1, c0, c1, c2, s);
  } else if (s) {
    tensor_avx2(q, a0, a1, b0, b1, c0, c1, c2, s);
  }
  if (s < n) tensor_scalar(q, a0 + s, a1 + s, b0 + s, b1 + s, c0 + s, c1 + s, c2 + s, n - s);
}

namespace {

// Key words x0 .. x0 + len - 1 of a limb held narrower than 64 bits, widened.
void widen(const std::uint32_t* k, std::size_t x0, std::size_t len, u64* out) {
  std::copy(k + x0, k + x0 + len, out);
}
void widen(const Words33& k, std::size_t x0, std::size_t len, u64* out) {
  for (std::size_t x = 0; x < len; ++x) out[x] = k[x0 + x];
}

// Coefficients [from, n) of dot2_vec with narrow keys: the keys are widened a tile at a
// time (kept in L1) and the 64-bit kernels run on the tile; the sources stay whole when
// permuted (the permutation indexes them).
template <typename Key>
void dot2_widened(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
                  const Key* k0, const Key* k1, u64* o0, u64* o1, std::size_t from, std::size_t n) {
  constexpr std::size_t kTile = 512;
  std::vector<u64> wide(2 * terms * kTile);
  std::vector<const u64*> pa(terms), pb(terms), pv(terms);
  for (std::size_t x0 = from; x0 < n; x0 += kTile) {
    const std::size_t len = std::min(kTile, n - x0);
    for (std::size_t t = 0; t < terms; ++t) {
      u64* a = wide.data() + 2 * t * kTile;
      u64* b = a + kTile;
      widen(k0[t], x0, len, a);
      widen(k1[t], x0, len, b);
      pa[t] = a;
      pb[t] = b;
      pv[t] = perm ? v[t] : v[t] + x0;
    }
    dot2_vec(q, terms, pv.data(), perm ? perm + x0 : nullptr, pa.data(), pb.data(), o0 + x0, o1 + x0, len);
  }
}

}  // namespace

void dot2_vec(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
              const u64* const* k0, const u64* const* k1, u64* o0, u64* o1, std::size_t n) {
  const SimdLevel level = vecmod_level(q);
  const bool narrow = level == SimdLevel::kAvx2 && q.value() < (u64{1} << 30) && terms <= kNarrowDotTerms;
  const std::size_t s = narrow ? n & ~std::size_t{7} : simd_part(level, n);
  if (s && level == SimdLevel::kAvx512) {
    dot2_avx512(q, terms, v, perm, k0, k1, o0, o1, s);
  } else if (s && narrow) {
    dot2_avx2_narrow(q, terms, v, perm, k0, k1, o0, o1, s);
  } else if (s) {
    dot2_avx2(q, terms, v, perm, k0, k1, o0, o1, s);
  }
  if (s == n) return;
  // The tail: sources stay whole (the permutation indexes them), outputs and keys shift.
  std::vector<const u64*> pa(terms), pb(terms);
  for (std::size_t t = 0; t < terms; ++t) {
    pa[t] = k0[t] + s;
    pb[t] = k1[t] + s;
  }
  if (perm) {
    dot2_scalar(q, terms, v, perm + s, pa.data(), pb.data(), o0 + s, o1 + s, n - s);
    return;
  }
  std::vector<const u64*> pv(terms);
  for (std::size_t t = 0; t < terms; ++t) pv[t] = v[t] + s;
  dot2_scalar(q, terms, pv.data(), nullptr, pa.data(), pb.data(), o0 + s, o1 + s, n - s);
}

void dot2_vec(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
              const std::uint32_t* const* k0, const std::uint32_t* const* k1, u64* o0, u64* o1,
              std::size_t n) {
  VEIL_REQUIRE(q.value() <= UINT32_MAX, "32-bit key words need a prime below 2^32, not " << q.value());
  const SimdLevel level = vecmod_level(q);
  std::size_t s = 0;
  if (level == SimdLevel::kAvx512) {
    // IFMA reads the 32-bit words directly (widening tiles first took 2.2x the time).
    s = n & ~std::size_t{7};
    if (s) dot2_avx512(q, terms, v, perm, k0, k1, o0, o1, s);
  } else if (level == SimdLevel::kAvx2 && q.value() < (u64{1} << 30) && terms <= kNarrowDotTerms) {
    // The hot path reads the 32-bit words directly.
    s = n & ~std::size_t{7};
    if (s) dot2_avx2_narrow(q, terms, v, perm, k0, k1, o0, o1, s);
  }
  if (s == n) return;
  // Elsewhere the keys are widened a tile at a time and the 64-bit kernels run on it.
  dot2_widened(q, terms, v, perm, k0, k1, o0, o1, s, n);
}

void dot2_vec(const Modulus& q, std::size_t terms, const u64* const* v, const std::uint32_t* perm,
              const Words33* k0, const Words33* k1, u64* o0, u64* o1, std::size_t n) {
  VEIL_REQUIRE(q.value() < (u64{1} << 33), "33-bit key words need a prime below 2^33, not " << q.value());
  const SimdLevel level = vecmod_level(q);
  // Whole bytes of 33rd bits: the kernels read them eight words at a time.
  const std::size_t s = level == SimdLevel::kScalar ? 0 : n & ~std::size_t{7};
  if (s && level == SimdLevel::kAvx512) {
    dot2_avx512(q, terms, v, perm, k0, k1, o0, o1, s);
  } else if (s) {
    dot2_avx2(q, terms, v, perm, k0, k1, o0, o1, s);
  }
  if (s < n) dot2_widened(q, terms, v, perm, k0, k1, o0, o1, s, n);
}

namespace {

template <class Word>
void lift_signed40_impl(const Modulus& q, u64 largest, const std::uint32_t* lo, const std::int8_t* hi,
                        Word* out, std::size_t n) {
  VEIL_REQUIRE(largest < (u64{1} << 39),
               "lift_signed40: |coefficients| must stay below 2^39, not " << largest);
  VEIL_REQUIRE(sizeof(Word) == 8 || q.value() < (u64{1} << 32),
               "lift_signed40: 32-bit words need a prime below 2^32, not " << q.value());
  const SimdLevel level = vecmod_level(q);
  const std::size_t s = level == SimdLevel::kAvx512 ? simd_part(level, n) : 0;
  if (s) lift_signed40_avx512(q, lo, hi, out, s);
  const auto at = [&](std::size_t j) {
    return static_cast<std::int64_t>(static_cast<u64>(static_cast<std::int64_t>(hi[j])) << 32) |
           static_cast<std::int64_t>(lo[j]);
  };
  if (largest < q.value()) {
    // |c| < q: one conditional add, which the compiler vectorises.
    const auto qs = static_cast<std::int64_t>(q.value());
    for (std::size_t j = s; j < n; ++j) {
      const std::int64_t c = at(j);
      out[j] = static_cast<Word>(c + (qs & (c >> 63)));
    }
  } else {
    for (std::size_t j = s; j < n; ++j) out[j] = static_cast<Word>(q.from_signed(at(j)));
  }
}

}  // namespace

void lift_signed40(const Modulus& q, u64 largest, const std::uint32_t* lo, const std::int8_t* hi, u64* out,
                   std::size_t n) {
  lift_signed40_impl(q, largest, lo, hi, out, n);
}

void lift_signed40(const Modulus& q, u64 largest, const std::uint32_t* lo, const std::int8_t* hi,
                   std::uint32_t* out, std::size_t n) {
  lift_signed40_impl(q, largest, lo, hi, out, n);
}

}  // namespace veil::math
