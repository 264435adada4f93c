// The arithmetic of the hybrid mode's online phase: additive shares of fixed-point values
// in the prime field Z_p, where p is the exact scheme's plaintext modulus t, so that the
// results of homomorphic preprocessing (Enc(W r - s) mod t) are already shares of the
// online values (Delphi, Mishra et al., USENIX Security 2020, section 4; Chen et al. 2025).
//
// A real value x is represented by round(x * 2^s) mod p for a scale exponent s (the
// field's `frac_bits` f for values between layers, 2f right after a product); the
// centred representative in (-p/2, p/2) is the signed integer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/math/modarith.hpp"

namespace veil::mpc {

using math::u64;

// The two parties. The server adds public constants (biases, the constant term of an
// activation) to its share; the client never does.
enum class Role : int { kServer = 0, kClient = 1 };

class Field {
 public:
  // p: a prime below 2^61; frac_bits: f, the fixed-point scale exponent between layers.
  Field(u64 p, int frac_bits);

  const math::Modulus& mod() const { return mod_; }
  u64 p() const { return mod_.value(); }
  int frac_bits() const { return frac_bits_; }

  // round(x * 2^scale_bits) mod p. Throws std::invalid_argument naming the value when
  // |x| * 2^scale_bits is not below p / 2 (it would wrap and decode as another number),
  // or x is not finite.
  u64 encode(double x, int scale_bits) const;
  std::vector<u64> encode(std::span<const double> x, int scale_bits) const;
  // The centred representative divided by 2^scale_bits.
  double decode(u64 v, int scale_bits) const;
  std::vector<double> decode(std::span<const u64> v, int scale_bits) const;
  std::int64_t centered(u64 v) const { return mod_.centered(v); }
  u64 from_signed(std::int64_t v) const { return mod_.from_signed(v); }

 private:
  math::Modulus mod_;
  int frac_bits_;
};

// Element-wise share arithmetic (all operands reduced mod p). Adding or subtracting shares
// needs no interaction; multiplying by a public integer neither.
void add_inplace(const Field& f, std::span<u64> a, std::span<const u64> b);
void sub_inplace(const Field& f, std::span<u64> a, std::span<const u64> b);
// a += c (a public value) on the server's share only, so the sum of shares gains c once.
void add_public_inplace(const Field& f, Role role, std::span<u64> a, std::span<const u64> c);
// a *= k for a public signed integer k.
void mul_public_inplace(const Field& f, std::span<u64> a, std::int64_t k);

}  // namespace veil::mpc
