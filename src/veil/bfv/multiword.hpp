// Internal: small unsigned multi-precision integers (little-endian 64-bit words) for the
// few places where BFV needs exact arithmetic beyond 128 bits: floor(Q/t) and exact
// decryption rounding over a product of primes, and flooding noise wider than a word.
// Fixed width, no allocation in the loops; widths are a few words (Q < 2^3600).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/math/modarith.hpp"

namespace veil::bfv::detail {

using math::u128;
using math::u64;
using Words = std::vector<u64>;

// acc += a * w (acc wide enough; the carry out of the top word is dropped).
inline void mul_add(std::span<u64> acc, std::span<const u64> a, u64 w) {
  u64 carry = 0;
  std::size_t i = 0;
  for (; i < a.size(); ++i) {
    const u128 p = static_cast<u128>(a[i]) * w + acc[i] + carry;
    acc[i] = static_cast<u64>(p);
    carry = static_cast<u64>(p >> 64);
  }
  for (; carry && i < acc.size(); ++i) {
    const u128 s = static_cast<u128>(acc[i]) + carry;
    acc[i] = static_cast<u64>(s);
    carry = static_cast<u64>(s >> 64);
  }
}

// a >= b, for equal widths (b shorter is zero-extended).
inline bool geq(std::span<const u64> a, std::span<const u64> b) {
  for (std::size_t i = a.size(); i-- > 0;) {
    const u64 bi = i < b.size() ? b[i] : 0;
    if (a[i] != bi) return a[i] > bi;
  }
  return true;
}

// a -= b (requires a >= b).
inline void sub(std::span<u64> a, std::span<const u64> b) {
  u64 borrow = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const u64 bi = i < b.size() ? b[i] : 0;
    const u128 d = static_cast<u128>(a[i]) - bi - borrow;
    a[i] = static_cast<u64>(d);
    borrow = static_cast<u64>(d >> 64) ? 1 : 0;
  }
}

// a += b.
inline void add(std::span<u64> a, std::span<const u64> b) {
  u64 carry = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const u64 bi = i < b.size() ? b[i] : 0;
    const u128 s = static_cast<u128>(a[i]) + bi + carry;
    a[i] = static_cast<u64>(s);
    carry = static_cast<u64>(s >> 64);
  }
}

// a mod q.
inline u64 mod_word(std::span<const u64> a, const math::Modulus& q) {
  u64 r = 0;
  for (std::size_t i = a.size(); i-- > 0;) r = q.reduce128((static_cast<u128>(r) << 64) | a[i]);
  return r;
}

// a / d in place (d a word), returns the remainder.
inline u64 div_word(std::span<u64> a, u64 d) {
  u128 r = 0;
  for (std::size_t i = a.size(); i-- > 0;) {
    const u128 cur = (r << 64) | a[i];
    a[i] = static_cast<u64>(cur / d);
    r = cur % d;
  }
  return static_cast<u64>(r);
}

inline long double to_long_double(std::span<const u64> a) {
  long double v = 0;
  for (std::size_t i = a.size(); i-- > 0;) v = v * 18446744073709551616.0L + static_cast<long double>(a[i]);
  return v;
}

// Product of the words' values (each < 2^64), `width` words wide.
inline Words product(std::span<const u64> factors, std::size_t width) {
  Words r(width, 0);
  r[0] = 1;
  for (u64 f : factors) {
    Words t(width, 0);
    mul_add(t, r, f);
    r.swap(t);
  }
  return r;
}

}  // namespace veil::bfv::detail
