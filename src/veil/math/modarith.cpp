#include "veil/math/modarith.hpp"

#include <bit>
#include <cmath>

#include "veil/common/error.hpp"

namespace veil::math {

Modulus::Modulus(u64 q) : q_(q) {
  VEIL_REQUIRE(q >= 2 && q < (u64{1} << 62), "modulus must be in [2, 2^62), got " << q);
  bits_ = 64 - std::countl_zero(q);
  // floor(2^128 / q) = floor((2^128 - 1) / q) since q is not a power of two > 1, or exact
  // otherwise; both give a valid Barrett constant for a single correction.
  const u128 all = ~static_cast<u128>(0);
  const u128 ratio = all / q;
  ratio_hi_ = static_cast<u64>(ratio >> 64);
  ratio_lo_ = static_cast<u64>(ratio);
}

u64 Modulus::pow(u64 base, u64 e) const {
  u64 r = 1 % q_, b = base % q_;
  while (e) {
    if (e & 1) r = mul(r, b);
    b = mul(b, b);
    e >>= 1;
  }
  return r;
}

u64 Modulus::from_double(double x) const {
  const double r = std::nearbyint(x);
  VEIL_REQUIRE(std::isfinite(r), "value is not finite (NaN or overflow at this scale)");
  if (std::fabs(r) < 9.2e18) return from_signed(static_cast<std::int64_t>(r));
  int exp = 0;
  const double frac = std::frexp(r, &exp);  // r = frac * 2^exp, 0.5 <= |frac| < 1
  const auto mant = static_cast<std::int64_t>(std::ldexp(frac, 53));
  return mul(from_signed(mant), pow(2, static_cast<u64>(exp - 53)));
}

u64 Modulus::inv(u64 a) const {
  // Extended Euclid on signed 128-bit to stay exact for 61-bit moduli.
  __int128 t = 0, newt = 1, r = q_, newr = a % q_;
  while (newr != 0) {
    __int128 quot = r / newr;
    __int128 tmp = t - quot * newt;
    t = newt;
    newt = tmp;
    tmp = r - quot * newr;
    r = newr;
    newr = tmp;
  }
  VEIL_REQUIRE(r == 1, a << " is not invertible modulo " << q_);
  if (t < 0) t += q_;
  return static_cast<u64>(t);
}

}  // namespace veil::math
