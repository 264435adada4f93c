#include "veil/he/mac.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace veil::he {

using math::u128;

namespace {

// Terms that fit a 64-bit accumulator before it must be reduced: (q-1)^2 * terms < 2^64.
std::size_t batch_64(const math::Modulus& q) {
  const u128 sq = static_cast<u128>(q.value() - 1) * (q.value() - 1);
  return static_cast<std::size_t>(std::min<u128>((~u128{0} >> 64) / sq, 1u << 20));
}

// W(t, j) gives the weight of term t at coefficient j.
template <class Weight>
void mac(const math::Modulus& q, std::size_t n, std::size_t terms, Weight weight, std::span<const u64* const> x0,
         std::span<const u64* const> x1, u64* out0, u64* out1) {
  if (q.value() < (u64{1} << 32)) {
    const std::size_t batch = batch_64(q);
    std::vector<u64> a0(n, 0), a1(n, 0);
    for (std::size_t t = 0; t < terms; ++t) {
      const u64* p0 = x0[t];
      const u64* p1 = x1[t];
      for (std::size_t j = 0; j < n; ++j) {
        const u64 w = static_cast<std::uint32_t>(weight(t, j));
        a0[j] += w * static_cast<std::uint32_t>(p0[j]);
        a1[j] += w * static_cast<std::uint32_t>(p1[j]);
      }
      if ((t + 1) % batch == 0)
        for (std::size_t j = 0; j < n; ++j) a0[j] = q.reduce(a0[j]), a1[j] = q.reduce(a1[j]);
    }
    for (std::size_t j = 0; j < n; ++j) out0[j] = q.reduce(a0[j]), out1[j] = q.reduce(a1[j]);
    return;
  }
  std::vector<u128> a0(n, 0), a1(n, 0);
  for (std::size_t t = 0; t < terms; ++t) {
    const u64* p0 = x0[t];
    const u64* p1 = x1[t];
    for (std::size_t j = 0; j < n; ++j) {
      const u64 w = weight(t, j);
      a0[j] += static_cast<u128>(w) * p0[j];
      a1[j] += static_cast<u128>(w) * p1[j];
    }
    if ((t + 1) % 32 == 0)
      for (std::size_t j = 0; j < n; ++j) a0[j] = q.reduce128(a0[j]), a1[j] = q.reduce128(a1[j]);
  }
  for (std::size_t j = 0; j < n; ++j) out0[j] = q.reduce128(a0[j]), out1[j] = q.reduce128(a1[j]);
}

}  // namespace

void mac_pointwise(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                   std::span<const u64* const> x0, std::span<const u64* const> x1, u64* out0, u64* out1) {
  mac(q, n, w.size(), [&](std::size_t t, std::size_t j) { return w[t][j]; }, x0, x1, out0, out1);
}

void mac_scalar(const math::Modulus& q, std::size_t n, std::span<const u64> w, std::span<const u64* const> x0,
                std::span<const u64* const> x1, u64* out0, u64* out1) {
  mac(q, n, w.size(), [&](std::size_t t, std::size_t) { return w[t]; }, x0, x1, out0, out1);
}

}  // namespace veil::he
