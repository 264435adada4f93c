// The multiply-accumulate template, included by mac.cpp (portable build) and
// mac_avx2.cpp (compiled with -mavx2, chosen at run time): each translation unit gets its
// own copy in an anonymous namespace, compiled for its instruction set.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include "veil/math/modarith.hpp"

namespace veil::he {
namespace {

using math::u128;
using math::u64;

// Terms that fit a 64-bit accumulator before it must be reduced: (q-1)^2 * terms < 2^64.
std::size_t batch_64(const math::Modulus& q) {
  const u128 sq = static_cast<u128>(q.value() - 1) * (q.value() - 1);
  return static_cast<std::size_t>(std::min<u128>((~u128{0} >> 64) / sq, 1u << 20));
}

// Coefficients are processed in tiles small enough that both accumulators stay in L1
// while every term streams through (the inputs are read once either way).
constexpr std::size_t kTile = 512;

// weight(t, j) gives the weight of term t at coefficient j.
template <class Weight>
void mac(const math::Modulus& q, std::size_t n, std::size_t terms, Weight weight, std::span<const u64* const> x,
         std::size_t polys, u64* const* out) {
  for (std::size_t base = 0; base < n; base += kTile) {
    const std::size_t len = std::min(kTile, n - base);
    for (std::size_t c = 0; c < polys; ++c) {
      if (q.value() < (u64{1} << 32)) {
        const std::size_t batch = batch_64(q);
        u64 a[kTile] = {};
        for (std::size_t t = 0; t < terms; ++t) {
          const u64* p = x[t * polys + c] + base;
          for (std::size_t j = 0; j < len; ++j)
            a[j] += static_cast<u64>(static_cast<std::uint32_t>(weight(t, base + j))) * static_cast<std::uint32_t>(p[j]);
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

}  // namespace
}  // namespace veil::he
