// BFV plaintexts and ciphertexts.
//   Plaintext:          N coefficients mod t (coefficient form), what encoders produce.
//   PreparedPlaintext:  a plaintext lifted to the data primes (centred coefficients) in NTT
//                       form, ready for ct x pt; a server prepares each weight once and
//                       reuses it for every input (the cache of the hybrid mode).
//   Ciphertext:         rlwe::Ciphertext, size 2, NTT form: c0 + c1 s = Delta m + v mod Q_l.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/bfv/context.hpp"
#include "veil/rlwe/ciphertext.hpp"

namespace veil::bfv {

using Ciphertext = rlwe::Ciphertext;

class Plaintext {
 public:
  Plaintext() = default;
  // Coefficients mod t; fewer than N are zero-padded. Throws if one is >= t.
  Plaintext(const BfvContext& ctx, std::vector<u64> coeffs);
  // Signed coefficients, reduced mod t.
  static Plaintext from_signed(const BfvContext& ctx, std::span<const std::int64_t> coeffs);

  std::size_t n() const { return coeffs_.size(); }
  std::uint64_t param_id() const { return param_id_; }
  const std::vector<u64>& coeffs() const { return coeffs_; }
  u64 operator[](std::size_t i) const { return coeffs_[i]; }

 private:
  std::vector<u64> coeffs_;
  std::uint64_t param_id_ = 0;
};

class PreparedPlaintext : public rlwe::Plaintext {
 public:
  PreparedPlaintext() = default;
  explicit PreparedPlaintext(rlwe::Plaintext base) : rlwe::Plaintext(std::move(base)) {}
};

// Throws unless the plaintext was made under ctx.
void check_plaintext(const BfvContext& ctx, const Plaintext& p, const char* what);

}  // namespace veil::bfv
