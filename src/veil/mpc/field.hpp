// The arithmetic of the hybrid mode's online phase: additive shares of fixed-point values
// in Z_P, where P is the exact scheme's plaintext modulus t, so that the results of
// homomorphic preprocessing (Enc(W r - s) mod t) are already shares of the online values
// (Delphi, Mishra et al., USENIX Security 2020, section 4; Chen et al. 2025).
//
// P is one prime p (below 2^61) or the product p_0 p_1 of two distinct primes (below 2^122)
// held in residue form (Chinese remainder theorem): a wider ring leaves more bits below
// the truncation bound (mpc/truncate.hpp), i.e. more precision, while every operation but
// truncation, encoding and decoding stays one 64-bit modular operation per residue, and
// the preprocessing runs once per prime under a plaintext modulus t = p_r. A share vector
// of n elements holds words() * n words, interleaved: element i is words i*k .. i*k+k-1,
// word i*k + r its residue mod p_r. Uniform residues mod each p_r are uniform mod P (CRT
// is a ring isomorphism), so masks stay perfectly hiding over the whole ring.
//
// A real value x is represented by round(x * 2^s) mod P for a scale exponent s (the
// field's `frac_bits` f for values between layers, 2f right after a product); the
// centred representative in (-P/2, P/2) is the signed integer.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/math/modarith.hpp"

namespace veil::mpc {

using math::u64;
using i128 = __int128;

// The two parties. The server adds public constants (biases, the constant term of an
// activation) to its share; the client never does.
enum class Role : int { kServer = 0, kClient = 1 };

class Field {
 public:
  // p: a prime below 2^61; frac_bits: f, the fixed-point scale exponent between layers.
  Field(u64 p, int frac_bits);
  // The ring Z_{p_0 p_1} for two distinct primes below 2^61 (one prime: as above).
  Field(const std::vector<u64>& primes, int frac_bits);

  // Words per element: the number of primes.
  int words() const { return static_cast<int>(mods_.size()); }
  const math::Modulus& mod(int residue = 0) const { return mods_[static_cast<std::size_t>(residue)]; }
  // The prime of a residue (the first by default: the whole modulus of a one-prime field).
  u64 p(int residue = 0) const { return mod(residue).value(); }
  std::vector<u64> primes() const;
  // log2 P.
  double log2_modulus() const;
  int frac_bits() const { return frac_bits_; }

  // round(x * 2^scale_bits) mod P. Throws std::invalid_argument naming the value when
  // |x| * 2^scale_bits is not below min(P / 2, 2^62) (it would wrap and decode as another
  // number), or x is not finite. The vector forms return words() words per value.
  std::vector<u64> encode(std::span<const double> x, int scale_bits) const;
  // The centred representative divided by 2^scale_bits; v holds words() words per value.
  std::vector<double> decode(std::span<const u64> v, int scale_bits) const;
  // The element v (words() words) as the integer in (-P/2, P/2], and back.
  i128 centered(const u64* v) const;
  void from_signed(i128 x, u64* out) const;
  // The element as its representative in [0, P) (CRT recombination).
  unsigned __int128 combine(const u64* v) const;

  // One-prime fields only (words() == 1): the scalar forms.
  u64 encode(double x, int scale_bits) const;
  double decode(u64 v, int scale_bits) const;
  std::int64_t centered(u64 v) const { return mods_[0].centered(v); }
  u64 from_signed(std::int64_t v) const { return mods_[0].from_signed(v); }

 private:
  std::vector<math::Modulus> mods_;
  u64 inv_p0_mod_p1_ = 0;  // p_0^-1 mod p_1 (two primes)
  int frac_bits_;
};

// Calls fn(word index, modulus of that word) for each of the `size` words of a share
// vector (size a multiple of words()). Word i is residue i & (words() - 1) (words() is 1
// or 2), which callers use to pick per-residue constants without a division.
template <class Fn>
void for_each_word(const Field& f, std::size_t size, Fn&& fn) {
  if (f.words() == 1) {
    const math::Modulus& m = f.mod(0);
    for (std::size_t i = 0; i < size; ++i) fn(i, m);
    return;
  }
  const math::Modulus &m0 = f.mod(0), &m1 = f.mod(1);
  for (std::size_t i = 0; i + 1 < size; i += 2) {
    fn(i, m0);
    fn(i + 1, m1);
  }
}

// Throws std::invalid_argument when size is not a whole number of elements.
void check_words(const Field& f, std::size_t size, const char* what);

// Element-wise share arithmetic (all operands reduced). Adding or subtracting shares
// needs no interaction; multiplying by a public integer neither.
void add_inplace(const Field& f, std::span<u64> a, std::span<const u64> b);
void sub_inplace(const Field& f, std::span<u64> a, std::span<const u64> b);
// a += c (a public value) on the server's share only, so the sum of shares gains c once.
void add_public_inplace(const Field& f, Role role, std::span<u64> a, std::span<const u64> c);
// a *= k for a public signed integer k.
void mul_public_inplace(const Field& f, std::span<u64> a, std::int64_t k);
// True when every word is reduced modulo its prime.
bool in_field(const Field& f, std::span<const u64> a);

}  // namespace veil::mpc
