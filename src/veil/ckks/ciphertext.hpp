// CKKS plaintexts and ciphertexts: RLWE objects (rlwe/ciphertext.hpp, with their
// parameter id) plus the CKKS metadata that travels with them, the scale and the number
// of slots in use.
#pragma once

#include <cstdint>
#include <utility>

#include "veil/rlwe/ciphertext.hpp"

namespace veil::ckks {

using math::u64;
using rlwe::PolyData;

class Plaintext : public rlwe::Plaintext {
 public:
  Plaintext() = default;
  Plaintext(const rlwe::Context& ctx, int level, double scale, std::size_t slots)
      : rlwe::Plaintext(ctx, level), scale_(scale), slots_(slots) {}
  Plaintext(rlwe::Plaintext base, double scale, std::size_t slots)
      : rlwe::Plaintext(std::move(base)), scale_(scale), slots_(slots) {}

  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  std::size_t slots() const { return slots_; }

 private:
  double scale_ = 1.0;
  std::size_t slots_ = 0;
};

class Ciphertext : public rlwe::Ciphertext {
 public:
  Ciphertext() = default;
  // Contents are uninitialised: the creator must write every coefficient.
  Ciphertext(const rlwe::Context& ctx, std::size_t size, int level, double scale, std::size_t slots)
      : rlwe::Ciphertext(ctx, size, level), scale_(scale), slots_(slots) {}
  Ciphertext(rlwe::Ciphertext base, double scale, std::size_t slots)
      : rlwe::Ciphertext(std::move(base)), scale_(scale), slots_(slots) {}

  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  std::size_t slots() const { return slots_; }

 private:
  double scale_ = 1.0;
  std::size_t slots_ = 0;
};

}  // namespace veil::ckks
