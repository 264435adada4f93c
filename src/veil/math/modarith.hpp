// Word-size modular arithmetic for NTT-friendly primes below 2^61.
// - Shoup multiplication by a precomputed constant (Shoup 2001; used by Harvey 2014 for
//   lazy NTT butterflies): w' = floor(w * 2^64 / q), then x*w mod q costs two multiplies.
// - Barrett reduction of 128-bit products for general multiplication.
#pragma once

#include <cstdint>

namespace veil::math {

using u64 = std::uint64_t;
using u128 = unsigned __int128;

inline u64 mulhi(u64 a, u64 b) { return static_cast<u64>((static_cast<u128>(a) * b) >> 64); }

class Modulus {
 public:
  Modulus() = default;
  explicit Modulus(u64 q);

  u64 value() const { return q_; }
  int bits() const { return bits_; }

  // Barrett: x mod q for x < 2^128 (one correction step suffices because q < 2^61).
  u64 reduce128(u128 x) const {
    // ratio_ = floor(2^128 / q), as two words.
    const u64 xl = static_cast<u64>(x), xh = static_cast<u64>(x >> 64);
    // Estimate floor(x * ratio / 2^128).
    const u128 t1 = static_cast<u128>(xl) * ratio_hi_;
    const u128 t2 = static_cast<u128>(xh) * ratio_lo_;
    const u128 t0 = static_cast<u128>(xl) * ratio_lo_;
    u128 mid = (t0 >> 64) + static_cast<u64>(t1) + static_cast<u64>(t2);
    u64 qhat = xh * ratio_hi_ + static_cast<u64>(t1 >> 64) + static_cast<u64>(t2 >> 64) +
               static_cast<u64>(mid >> 64);
    u64 r = xl - qhat * q_;
    return r >= q_ ? r - q_ : r;
  }
  u64 reduce(u64 x) const { return reduce128(x); }
  u64 mul(u64 a, u64 b) const { return reduce128(static_cast<u128>(a) * b); }
  // Branch-free (masks, not conditional jumps): on residues the conditions are coin
  // flips, and mispredicted branches cost more than the arithmetic.
  u64 add(u64 a, u64 b) const {
    const u64 s = a + b;
    return s - (q_ & -static_cast<u64>(s >= q_));
  }
  u64 sub(u64 a, u64 b) const { return a - b + (q_ & -static_cast<u64>(a < b)); }
  u64 neg(u64 a) const { return (q_ - a) & -static_cast<u64>(a != 0); }
  u64 pow(u64 base, u64 e) const;
  u64 inv(u64 a) const;  // throws if not invertible

  // Shoup precomputation for multiplying many values by the same w < q.
  u64 shoup(u64 w) const { return static_cast<u64>((static_cast<u128>(w) << 64) / q_); }
  // x*w mod q in [0, 2q) for any 64-bit x (lazy form).
  static u64 mul_shoup_lazy(u64 x, u64 w, u64 w_shoup, u64 q) { return x * w - mulhi(x, w_shoup) * q; }
  u64 mul_shoup(u64 x, u64 w, u64 w_shoup) const {
    u64 r = mul_shoup_lazy(x, w, w_shoup, q_);
    return r >= q_ ? r - q_ : r;
  }

  // Reduces a signed value into [0, q).
  u64 from_signed(std::int64_t v) const {
    // Barrett, not the hardware divide (tens of cycles): this runs once per coefficient
    // and limb whenever a plaintext is encoded.
    if (v >= 0) return reduce(static_cast<u64>(v));
    const u64 m = reduce(static_cast<u64>(-(v + 1)));  // avoids overflow at INT64_MIN
    return q_ - 1 - m;
  }
  // round(x) mod q for a finite double of any magnitude, exactly: above 2^63 a double is
  // mant * 2^exp with a 53-bit integer mantissa, so x mod q = (mant mod q)(2^exp mod q).
  u64 from_double(double x) const;
  // Centred representative in (-q/2, q/2].
  std::int64_t centered(u64 a) const {
    return a > (q_ >> 1) ? -static_cast<std::int64_t>(q_ - a) : static_cast<std::int64_t>(a);
  }

 private:
  u64 q_ = 0;
  int bits_ = 0;
  u64 ratio_hi_ = 0, ratio_lo_ = 0;
};

}  // namespace veil::math
