#include "veil/math/rns.hpp"

#include <gmp.h>

#include <algorithm>
#include <cmath>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/math/fpmod_avx2.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::math {

// rns_avx512.cpp: targets of 13 to 50 bits (vecmod_level kAvx512), n a multiple of 16.
void convert_target_avx512(const Modulus& target, std::size_t nf, const u64* const* y, const u64* tab,
                           const char* wide, u64* out, std::size_t n);

RnsBase::RnsBase(std::vector<Modulus> moduli) : mods_(std::move(moduli)) {
  VEIL_REQUIRE(!mods_.empty(), "RNS base must not be empty");
  const std::size_t k = mods_.size();
  qhat_inv_.resize(k);
  qhat_inv_shoup_.resize(k);
  for (std::size_t i = 0; i < k; ++i) {
    u64 prod = 1;
    for (std::size_t j = 0; j < k; ++j) {
      if (j == i) continue;
      VEIL_REQUIRE(mods_[j].value() != mods_[i].value(), "RNS base has a repeated modulus");
      prod = mods_[i].mul(prod, mods_[j].value() % mods_[i].value());
    }
    qhat_inv_[i] = mods_[i].inv(prod);
    qhat_inv_shoup_[i] = mods_[i].shoup(qhat_inv_[i]);
  }
}

double RnsBase::log2_product() const {
  double s = 0;
  for (const auto& m : mods_) s += std::log2(static_cast<double>(m.value()));
  return s;
}

BaseConverter::BaseConverter(RnsBase from, RnsBase to) : from_(std::move(from)), to_(std::move(to)) {
  // Accumulating |from| products below 2^122 each in 128 bits needs |from| <= 64.
  VEIL_REQUIRE(from_.size() <= 64, "base conversion source has " << from_.size() << " moduli (max 64)");
  const std::size_t nf = from_.size(), nt = to_.size();
  qhat_mod_.resize(nf * nt);
  for (std::size_t k = 0; k < nt; ++k) {
    const Modulus& c = to_[k];
    for (std::size_t i = 0; i < nf; ++i) {
      u64 prod = 1;
      for (std::size_t j = 0; j < nf; ++j) {
        if (j != i) prod = c.mul(prod, c.reduce(from_[j].value()));
      }
      qhat_mod_[k * nf + i] = prod;
    }
  }
  // Tables of the double-precision path (targets below 2^50): each constant c with
  // c/p, and for sources above 50 bits, whose residues do not fit a double's mantissa,
  // also c*2^kSplit mod p: such a residue enters as hi*2^kSplit + lo.
  split_.resize(nf);
  for (std::size_t i = 0; i < nf; ++i) split_[i] = from_[i].bits() > 50;
  fp_.resize(4 * nf * nt);
  for (std::size_t k = 0; k < nt; ++k) {
    const Modulus& c = to_[k];
    const double pd = static_cast<double>(c.value());
    for (std::size_t i = 0; i < nf; ++i) {
      const u64 w = qhat_mod_[k * nf + i], w2 = c.mul(w, c.reduce(u64{1} << kSplit));
      double* f = &fp_[4 * (k * nf + i)];
      f[0] = static_cast<double>(w);
      f[1] = static_cast<double>(w) / pd;
      f[2] = static_cast<double>(w2);
      f[3] = static_cast<double>(w2) / pd;
    }
  }
  // The integer-lane path: a target below 2^30 whose products with the sources sum below
  // 2^64. A source below 2^32 enters whole; a wider one (the 40-bit base prime in a
  // key switch's first digit, say) as lo + hi * 2^30 with hi below 2^30, i.e. two
  // products: c * lo and (c * 2^30 mod p) * hi.
  narrow_.resize(nt);
  narrow_split_.resize(nf);
  for (std::size_t i = 0; i < nf; ++i) narrow_split_[i] = from_[i].value() > (u64{1} << 32);
  narrow_hi_.resize(nf * nt);
  for (std::size_t k = 0; k < nt; ++k) {
    const Modulus& c = to_[k];
    u128 bound = 0;
    bool fits = c.value() < (u64{1} << 30);
    for (std::size_t i = 0; i < nf && fits; ++i) {
      const u64 v = from_[i].value() - 1;
      fits = v < (u64{1} << 60);
      bound += narrow_split_[i] ? static_cast<u128>((u64{1} << 30) - 1 + (v >> 30)) * (c.value() - 1)
                                : static_cast<u128>(v) * (c.value() - 1);
      narrow_hi_[k * nf + i] = fits ? c.mul(qhat_mod_[k * nf + i], c.reduce(u64{1} << 30)) : 0;
    }
    narrow_[k] = fits && bound < (u128{1} << 64);
  }
  wide_.resize(nf);
  for (std::size_t i = 0; i < nf; ++i) wide_[i] = from_[i].bits() > 52;
  ifma_.resize(2 * nf * nt);
  for (std::size_t k = 0; k < nt; ++k) {
    const Modulus& c = to_[k];
    for (std::size_t i = 0; i < nf; ++i) {
      const u64 w = qhat_mod_[k * nf + i];
      ifma_[2 * (k * nf + i)] = w;
      ifma_[2 * (k * nf + i) + 1] = c.mul(w, c.reduce(u64{1} << 32));
    }
  }
}

void BaseConverter::convert(const u64* in, u64* out, std::size_t n, u64* scratch) const {
  std::vector<const u64*> ip(from_.size());
  std::vector<u64*> op(to_.size());
  for (std::size_t i = 0; i < ip.size(); ++i) ip[i] = in + i * n;
  for (std::size_t k = 0; k < op.size(); ++k) op[k] = out + k * n;
  convert(ip.data(), op.data(), n, scratch);
}

void BaseConverter::convert(const u64* const* in, u64* const* out, std::size_t n, u64* scratch) const {
  const std::size_t nf = from_.size();
  std::vector<const u64*> y(nf);
  for (std::size_t i = 0; i < nf; ++i) y[i] = scratch + i * n;
  parallel_for(nf, [&](std::size_t i) { scale_input(i, in[i], scratch + i * n, n); });
  convert_targets(y.data(), out, n);
}

void BaseConverter::convert_targets(const u64* const* y, u64* const* out, std::size_t n) const {
  const std::size_t nf = from_.size(), nt = to_.size();
  // About 256 KiB of sources per tile (half of a typical L2), a multiple of 16 coefficients
  // (the AVX-512 kernel's step).
  const std::size_t tile = std::clamp<std::size_t>((std::size_t{32768} / nf) & ~std::size_t{15}, 256, 4096);
  const std::size_t tiles = (n + tile - 1) / tile;
  parallel_for(tiles, [&](std::size_t b) {
    const std::size_t x0 = b * tile, len = std::min(tile, n - x0);
    std::vector<const u64*> yt(nf);
    for (std::size_t i = 0; i < nf; ++i) yt[i] = y[i] + x0;
    for (std::size_t k = 0; k < nt; ++k) {
      if (out[k]) convert_target(k, yt.data(), out[k] + x0, len);
    }
  });
}

void BaseConverter::scale_input(std::size_t i, const u64* x, u64* y, std::size_t n) const {
  mul_const_vec(from_[i], x, from_.punctured_inv(i), y, n);
}

namespace {

// Sum_i y_i * w_i mod p for eight coefficients at a time, in doubles (fpmod_avx2.hpp).
// Each product is exact in [-p, 2p); three of them on top of [0, p) stay inside
// (-2^53, 2^53), so the running sums are reduced after every third product.
VEIL_AVX2 void convert_target_avx2(const Modulus& target, std::size_t nf, const u64* const* y,
                                   const double* tab, const std::vector<char>& split, int split_bits,
                                   u64* out, std::size_t n) {
  const double pd = static_cast<double>(target.value());
  const __m256d p = _mm256_set1_pd(pd), pinv = _mm256_set1_pd(1.0 / pd);
  const __m256i lo_mask = _mm256_set1_epi64x((std::int64_t{1} << split_bits) - 1);
  for (std::size_t j = 0; j < n; j += 8) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int pending = 0;
    for (std::size_t i = 0; i < nf; ++i) {
      const double* f = tab + 4 * i;
      const int cost = split[i] ? 2 : 1;
      if (pending + cost > 3) {
        a0 = fp::reduce(a0, p, pinv);
        a1 = fp::reduce(a1, p, pinv);
        pending = 0;
      }
      pending += cost;
      const __m256d w = _mm256_set1_pd(f[0]), wq = _mm256_set1_pd(f[1]);
      if (!split[i]) {
        a0 = _mm256_add_pd(a0, fp::mul_const(fp::load(y[i] + j), w, wq, p));
        a1 = _mm256_add_pd(a1, fp::mul_const(fp::load(y[i] + j + 4), w, wq, p));
        continue;
      }
      const __m256d w2 = _mm256_set1_pd(f[2]), w2q = _mm256_set1_pd(f[3]);
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i] + j));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i] + j + 4));
      a0 = _mm256_add_pd(a0, fp::mul_const(fp::to_double(_mm256_and_si256(v0, lo_mask)), w, wq, p));
      a1 = _mm256_add_pd(a1, fp::mul_const(fp::to_double(_mm256_and_si256(v1, lo_mask)), w, wq, p));
      a0 = _mm256_add_pd(a0, fp::mul_const(fp::to_double(_mm256_srli_epi64(v0, split_bits)), w2, w2q, p));
      a1 = _mm256_add_pd(a1, fp::mul_const(fp::to_double(_mm256_srli_epi64(v1, split_bits)), w2, w2q, p));
    }
    fp::store(out + j, fp::reduce(a0, p, pinv));
    fp::store(out + j + 4, fp::reduce(a1, p, pinv));
  }
}

// The same sum for a target below 2^30 whose products all fit one 64-bit sum (narrow_
// says which targets; sources above 2^32 split in two at bit 30, narrow_split_): one
// vpmuludq per product, exact sums, one reduction per output, where the double-precision
// path spends a two-product and a correction on each product and a reduction every third.
VEIL_AVX2 void convert_target_avx2_narrow(const Modulus& target, std::size_t nf, const u64* const* y,
                                          const u64* coef, const u64* coef_hi, const std::vector<char>& split,
                                          u64* out, std::size_t n) {
  const __m256i pv = _mm256_set1_epi64x(static_cast<long long>(target.value()));
  const __m256i fold_by = _mm256_set1_epi64x(static_cast<long long>((u64{1} << 32) % target.value()));
  const __m256d pinv = _mm256_set1_pd(1.0 / static_cast<double>(target.value()));
  const __m256i lo30 = _mm256_set1_epi64x((1LL << 30) - 1);
  for (std::size_t j = 0; j < n; j += 8) {
    __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
    for (std::size_t i = 0; i < nf; ++i) {
      const __m256i w = _mm256_set1_epi64x(static_cast<long long>(coef[i]));
      __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i] + j));
      __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[i] + j + 4));
      if (split[i]) {
        const __m256i wh = _mm256_set1_epi64x(static_cast<long long>(coef_hi[i]));
        a0 = _mm256_add_epi64(a0, _mm256_mul_epu32(_mm256_srli_epi64(v0, 30), wh));
        a1 = _mm256_add_epi64(a1, _mm256_mul_epu32(_mm256_srli_epi64(v1, 30), wh));
        v0 = _mm256_and_si256(v0, lo30);
        v1 = _mm256_and_si256(v1, lo30);
      }
      a0 = _mm256_add_epi64(a0, _mm256_mul_epu32(v0, w));
      a1 = _mm256_add_epi64(a1, _mm256_mul_epu32(v1, w));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j), fp::reduce_narrow(a0, fold_by, pv, pinv));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j + 4), fp::reduce_narrow(a1, fold_by, pv, pinv));
  }
}

}  // namespace

void BaseConverter::convert_target(std::size_t k, const u64* const* y, u64* out, std::size_t n) const {
  const std::size_t nf = from_.size();
  const Modulus& c = to_[k];
  std::size_t j = 0;
  const SimdLevel level = vecmod_level(c);
  if (level == SimdLevel::kAvx512) {
    j = n & ~std::size_t{15};
    if (j) convert_target_avx512(c, nf, y, &ifma_[2 * k * nf], wide_.data(), out, j);
  } else if (level == SimdLevel::kAvx2) {
    j = n & ~std::size_t{7};
    if (j && narrow_[k]) {
      convert_target_avx2_narrow(c, nf, y, &qhat_mod_[k * nf], &narrow_hi_[k * nf], narrow_split_, out, j);
    } else if (j) {
      convert_target_avx2(c, nf, y, &fp_[4 * k * nf], split_, kSplit, out, j);
    }
  }
  const u64* coef = &qhat_mod_[k * nf];
  // Four coefficients at a time keep their 128-bit running sums in eight registers
  // while streaming the source limbs; one Barrett reduction per output (lazy
  // accumulation). Wider blocks spill on x86-64's 16 general registers.
  constexpr std::size_t kBlock = 4;
  for (; j + kBlock <= n; j += kBlock) {
    u128 a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (std::size_t i = 0; i < nf; ++i) {
      const u64* yi = y[i] + j;
      const u64 ci = coef[i];
      a0 += static_cast<u128>(yi[0]) * ci;
      a1 += static_cast<u128>(yi[1]) * ci;
      a2 += static_cast<u128>(yi[2]) * ci;
      a3 += static_cast<u128>(yi[3]) * ci;
    }
    out[j] = c.reduce128(a0);
    out[j + 1] = c.reduce128(a1);
    out[j + 2] = c.reduce128(a2);
    out[j + 3] = c.reduce128(a3);
  }
  for (; j < n; ++j) {
    u128 acc = 0;
    for (std::size_t i = 0; i < nf; ++i) acc += static_cast<u128>(y[i][j]) * coef[i];
    out[j] = c.reduce128(acc);
  }
}

namespace {

// Exact centred reconstruction with GMP, for coefficients too large for the fast path.
double crt_exact(const RnsBase& base, const u64* const* limbs, std::size_t idx, double scale_inv) {
  mpz_t q, acc, term, half;
  mpz_inits(q, acc, term, half, nullptr);
  mpz_set_ui(q, 1);
  for (std::size_t i = 0; i < base.size(); ++i) mpz_mul_ui(q, q, base[i].value());
  for (std::size_t i = 0; i < base.size(); ++i) {
    const u64 y = base[i].mul(limbs[i][idx], base.punctured_inv(i));
    mpz_divexact_ui(term, q, base[i].value());
    mpz_mul_ui(term, term, y);
    mpz_add(acc, acc, term);
  }
  mpz_mod(acc, acc, q);
  mpz_fdiv_q_2exp(half, q, 1);
  if (mpz_cmp(acc, half) > 0) mpz_sub(acc, acc, q);
  long exp = 0;
  double mant = mpz_get_d_2exp(&exp, acc);
  mpz_clears(q, acc, term, half, nullptr);
  return std::ldexp(mant, static_cast<int>(exp)) * scale_inv;
}

}  // namespace

void crt_to_double(const RnsBase& base, const u64* const* limbs, std::size_t n, std::size_t stride,
                   double scale_inv, double* out) {
  const std::size_t k = base.size();
  if (k == 1) {
    const Modulus& m = base[0];
    for (std::size_t j = 0; j < n; ++j) {
      out[j] = static_cast<double>(m.centered(limbs[0][j * stride])) * scale_inv;
    }
    return;
  }
  // (B / b_i) mod 2^128 and B mod 2^128: the wrap-around arithmetic below recovers x mod
  // 2^128, which is x itself when |x| < 2^127.
  std::vector<u128> qhat(k, 1);
  u128 qmod = 1;
  for (std::size_t i = 0; i < k; ++i) {
    qmod *= base[i].value();
    for (std::size_t j = 0; j < k; ++j) {
      if (j != i) qhat[i] *= base[j].value();
    }
  }
  const bool small_q = base.log2_product() < 126;
  std::vector<u64> y(k);
  for (std::size_t j = 0; j < n; ++j) {
    const std::size_t idx = j * stride;
    long double frac = 0;
    u128 sum = 0;
    for (std::size_t i = 0; i < k; ++i) {
      y[i] = base[i].mul_shoup(limbs[i][idx], base.punctured_inv(i), base.punctured_inv_shoup(i));
      frac += static_cast<long double>(y[i]) / static_cast<long double>(base[i].value());
      sum += static_cast<u128>(y[i]) * qhat[i];
    }
    const u128 v = static_cast<u128>(std::llround(frac));
    __int128 c = static_cast<__int128>(sum - v * qmod);
    if (small_q) {
      // B < 2^126: reduce c into the centred range of B directly.
      const __int128 qb = static_cast<__int128>(qmod);
      c %= qb;
      if (c < 0) c += qb;
      if (c > qb / 2) c -= qb;
      out[j] = static_cast<double>(c) * scale_inv;
      continue;
    }
    bool ok = true;
    for (std::size_t i = 0; i < k && ok; ++i) {
      const u64 qi = base[i].value();
      const __int128 r = c % static_cast<__int128>(qi);
      const u64 rr = static_cast<u64>(r < 0 ? r + qi : r);
      ok = rr == limbs[i][idx];
    }
    out[j] = ok ? static_cast<double>(c) * scale_inv : crt_exact(base, limbs, idx, scale_inv);
  }
}

}  // namespace veil::math
