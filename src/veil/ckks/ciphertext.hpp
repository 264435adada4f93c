// CKKS plaintexts and ciphertexts: RLWE objects (rlwe/ciphertext.hpp, with their
// parameter id) plus the CKKS metadata that travels with them, the scale and the number
// of slots in use.
#pragma once

#include <cstdint>
#include <utility>

#include "veil/rlwe/ciphertext.hpp"
#include "veil/rlwe/context.hpp"

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

// A size-2 ciphertext over Q_level * P in NTT form, each polynomial's level + 1 data limbs
// followed by its special limbs. Double hoisting (Bossuat, Troncoso-Pastoriza, Hubaux,
// Eurocrypt 2021) keeps baby-step rotations in this basis, as P * sigma(c0) plus the
// unlowered key switch, sums their plaintext products there and lowers the sum once
// (Evaluator::lower): one ModDown per giant step instead of one per baby step. It
// decrypts, after lowering, to the same message at the same scale.
class ExtendedCiphertext {
 public:
  ExtendedCiphertext() = default;
  // Contents are uninitialised: the creator must write every coefficient.
  ExtendedCiphertext(const rlwe::Context& ctx, int level, double scale, std::size_t slots)
      : level_(level),
        scale_(scale),
        slots_(slots),
        n_(ctx.n()),
        limbs_(static_cast<std::size_t>(level) + 1 + ctx.num_p()),
        c0_(limbs_ * n_),
        c1_(limbs_ * n_) {}
  ExtendedCiphertext(int level, double scale, std::size_t slots, std::size_t n, PolyData c0, PolyData c1)
      : level_(level),
        scale_(scale),
        slots_(slots),
        n_(n),
        limbs_(c0.size() / n),
        c0_(std::move(c0)),
        c1_(std::move(c1)) {}

  int level() const { return level_; }
  double scale() const { return scale_; }
  std::size_t slots() const { return slots_; }
  std::size_t n() const { return n_; }
  std::size_t num_limbs() const { return limbs_; }  // level + 1 + special primes
  bool empty() const { return limbs_ == 0; }
  u64* limb(std::size_t c, std::size_t i) { return (c == 0 ? c0_ : c1_).data() + i * n_; }
  const u64* limb(std::size_t c, std::size_t i) const { return (c == 0 ? c0_ : c1_).data() + i * n_; }
  PolyData& poly(std::size_t c) { return c == 0 ? c0_ : c1_; }

 private:
  int level_ = -1;
  double scale_ = 1.0;
  std::size_t slots_ = 0, n_ = 0, limbs_ = 0;
  PolyData c0_, c1_;
};

}  // namespace veil::ckks
