// The multiply-accumulate template, included by mac.cpp (portable build) and
// mac_avx2.cpp (compiled with -mavx2, chosen at run time): each translation unit gets its
// own copy in an anonymous namespace, compiled for its instruction set.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>

#include "veil/math/modarith.hpp"

namespace veil::he {
namespace {

using math::u128;
using math::u64;

// Terms that fit a 64-bit accumulator before it must be reduced, counting the reduced
// remainder (< q) it may already hold: q + (q-1)^2 * terms < 2^64.
std::size_t batch_64(const math::Modulus& q) {
  const u128 sq = static_cast<u128>(q.value() - 1) * (q.value() - 1);
  return static_cast<std::size_t>(std::min<u128>(((~u128{0} >> 64) - q.value()) / sq, 1u << 20));
}

// Coefficients are processed in tiles small enough that both accumulators stay in L1
// while every term streams through (the inputs are read once either way).
constexpr std::size_t kTile = 512;

// weight(t, j) gives the weight of term t at coefficient j.
template <class Weight>
void mac(const math::Modulus& q, std::size_t n, std::size_t terms, Weight weight,
         std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  for (std::size_t base = 0; base < n; base += kTile) {
    const std::size_t len = std::min(kTile, n - base);
    for (std::size_t c = 0; c < polys; ++c) {
      if (q.value() < (u64{1} << 32)) {
        const std::size_t batch = batch_64(q);
        u64 a[kTile] = {};
        for (std::size_t t = 0; t < terms; ++t) {
          const u64* p = x[t * polys + c] + base;
          for (std::size_t j = 0; j < len; ++j)
            a[j] += static_cast<u64>(static_cast<std::uint32_t>(weight(t, base + j))) *
                    static_cast<std::uint32_t>(p[j]);
          if ((t + 1) % batch == 0)
            for (std::size_t j = 0; j < len; ++j) a[j] = q.reduce(a[j]);
        }
        for (std::size_t j = 0; j < len; ++j) out[c][base + j] = q.reduce(a[j]);
      } else {
        u128 a[kTile] = {};
        for (std::size_t t = 0; t < terms; ++t) {
          const u64* p = x[t * polys + c] + base;
          for (std::size_t j = 0; j < len; ++j) a[j] += static_cast<u128>(weight(t, base + j)) * p[j];
          if ((t + 1) % 32 == 0)
            for (std::size_t j = 0; j < len; ++j) a[j] = q.reduce128(a[j]);
        }
        for (std::size_t j = 0; j < len; ++j) out[c][base + j] = q.reduce128(a[j]);
      }
    }
  }
}

// Scalar weights for a block of up to kMaxRows outputs that read the same inputs
// (a dense layer's rows, a convolution's channels at one position): each loaded input
// coefficient is used by every row of the block, so the layer reads its input tensor
// once per block instead of once per output, the difference between streaming from L3
// and computing from L1. w[r] points at row r's `terms` weights; out[r * polys + c]
// receives polynomial c of row r.
constexpr std::size_t kMaxRows = 8;

template <std::size_t R>
void mac_rows_fixed(const math::Modulus& q, std::size_t n, std::size_t terms, const u64* const* w,
                    std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  constexpr std::size_t kRowTile = 128;  // R x 128 accumulators: at most 8 KiB, in L1
  const std::size_t batch = batch_64(q);
  for (std::size_t base = 0; base < n; base += kRowTile) {
    const std::size_t len = std::min(kRowTile, n - base);
    for (std::size_t c = 0; c < polys; ++c) {
      u64 a[R][kRowTile] = {};
      for (std::size_t t = 0; t < terms; ++t) {
        const u64* p = x[t * polys + c] + base;
        u64 wr[R];
        for (std::size_t r = 0; r < R; ++r) wr[r] = static_cast<std::uint32_t>(w[r][t]);
        for (std::size_t j = 0; j < len; ++j) {
          const u64 v = static_cast<std::uint32_t>(p[j]);
          for (std::size_t r = 0; r < R; ++r) a[r][j] += wr[r] * v;
        }
        if ((t + 1) % batch == 0)
          for (std::size_t r = 0; r < R; ++r)
            for (std::size_t j = 0; j < len; ++j) a[r][j] = q.reduce(a[r][j]);
      }
      for (std::size_t r = 0; r < R; ++r)
        for (std::size_t j = 0; j < len; ++j) out[r * polys + c][base + j] = q.reduce(a[r][j]);
    }
  }
}

template <std::size_t... Rs>
void mac_rows_dispatch(std::size_t rows, const math::Modulus& q, std::size_t n, std::size_t terms,
                       const u64* const* w, std::span<const u64* const> x, std::size_t polys, u64* const* out,
                       std::index_sequence<Rs...>) {
  (void)((rows == Rs + 1 ? (mac_rows_fixed<Rs + 1>(q, n, terms, w, x, polys, out), true) : false) || ...);
}

void mac_rows(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms, const u64* const* w,
              std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (q.value() < (u64{1} << 32)) {
    for (std::size_t r0 = 0; r0 < rows; r0 += kMaxRows) {
      const std::size_t k = std::min(kMaxRows, rows - r0);
      mac_rows_dispatch(k, q, n, terms, w + r0, x, polys, out + r0 * polys,
                        std::make_index_sequence<kMaxRows>{});
    }
    return;
  }
  // Wide primes: 128-bit accumulators leave no room for a block in registers.
  for (std::size_t r = 0; r < rows; ++r)
    mac(
        q, n, terms, [&](std::size_t t, std::size_t) { return w[r][t]; }, x, polys, out + r * polys);
}

// Signed weights below 2^31 in magnitude (a weight w * q_l with q_l a prime below 2^31,
// as in throughput mode), any prime: the portable form accumulates exact 128-bit sums.
// out[r * polys + c][j] = sum_t w[r][t] * x_c[t][j] mod q.
void mac_rows_signed_portable(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                              const std::int32_t* const* w, std::span<const u64* const> x, std::size_t polys,
                              u64* const* out) {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < polys; ++c)
      for (std::size_t j = 0; j < n; ++j) {
        __int128 a = 0;  // |w x| < 2^92: 2^35 terms before overflow
        for (std::size_t t = 0; t < terms; ++t) a += static_cast<__int128>(w[r][t]) * x[t * polys + c][j];
        const u64 m = q.reduce128(static_cast<u128>(a < 0 ? -a : a));
        out[r * polys + c][j] = a < 0 ? q.neg(m) : m;
      }
}

}  // namespace
}  // namespace veil::he
