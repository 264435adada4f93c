// Homomorphic operations on CKKS ciphertexts. Split by concern (Lattigo style):
//   evaluator.cpp            add/sub/negate, plaintext and constant operations, multiply,
//                            rescale, level dropping
//   evaluator_keyswitch.cpp  hybrid key switching (Han-Ki 2020): relinearise, rotate,
//                            conjugate, hoisted rotations (Halevi-Shoup 2018)
//
// Levels are matched automatically by dropping the operand at the higher level (always
// correct). Scales must agree to within 1e-9 relative; otherwise the operation throws
// "scale mismatch" with both scales, since picking one silently would change the result.
#pragma once

#include <complex>
#include <cstdint>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/context.hpp"
#include "veil/rlwe/key_switch.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::ckks {

using rlwe::GaloisKeys;
using rlwe::KeySwitchKey;
using rlwe::RelinKeys;

class Evaluator {
 public:
  explicit Evaluator(ContextPtr ctx);
  const ContextPtr& context() const { return ctx_; }

  // --- addition family ---
  void add_inplace(Ciphertext& a, const Ciphertext& b) const;
  Ciphertext add(const Ciphertext& a, const Ciphertext& b) const;
  void sub_inplace(Ciphertext& a, const Ciphertext& b) const;
  Ciphertext sub(const Ciphertext& a, const Ciphertext& b) const;
  void negate_inplace(Ciphertext& a) const;
  void add_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  void sub_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  // Adds c in every slot, encoded at the ciphertext's own scale (no level is used).
  void add_const_inplace(Ciphertext& a, double c) const;

  // --- multiplication family ---
  // Ciphertext product without relinearisation (size 2+2 -> 3).
  void multiply_inplace(Ciphertext& a, const Ciphertext& b) const;
  Ciphertext multiply(const Ciphertext& a, const Ciphertext& b) const;
  void square_inplace(Ciphertext& a) const;
  void multiply_relin_inplace(Ciphertext& a, const Ciphertext& b, const RelinKeys& rk) const;
  void multiply_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  // Multiplies by a real constant encoded at `const_scale`; 0 picks the ciphertext's top
  // prime q_level, so the scale returns to its value after the next rescale.
  void multiply_const_inplace(Ciphertext& a, double c, double const_scale = 0) const;
  // Multiplies by an integer; no scale change, no level consumed.
  void multiply_int_inplace(Ciphertext& a, std::int64_t k) const;

  // --- levels and scales ---
  // Divides by the top prime q_level (with rounding): level - 1, scale / q_level.
  void rescale_inplace(Ciphertext& a) const;
  void drop_to_level_inplace(Ciphertext& a, int level) const;

  // --- key switching ---
  void relinearize_inplace(Ciphertext& a, const RelinKeys& rk) const;
  // Rotation by `step` slots: slot j+step moves to slot j (negative steps rotate right).
  void rotate_inplace(Ciphertext& a, int step, const GaloisKeys& gk) const;
  Ciphertext rotate(const Ciphertext& a, int step, const GaloisKeys& gk) const;
  void conjugate_inplace(Ciphertext& a, const GaloisKeys& gk) const;
  // Many rotations of one ciphertext sharing one decomposition of c1 (hoisting): the
  // inverse NTT and the base conversions are done once instead of once per step.
  std::vector<Ciphertext> rotate_hoisted(const Ciphertext& a, const std::vector<int>& steps,
                                         const GaloisKeys& gk) const;
  // Double hoisting (Bossuat et al., Eurocrypt 2021): the same rotations left over
  // Q_level * P (ckks/ciphertext.hpp), step 0 giving P * a. Sums of their products with
  // plaintexts encoded over Q_level * P lower, once, to what the rotations would give.
  std::vector<ExtendedCiphertext> rotate_hoisted_extended(const Ciphertext& a, const std::vector<int>& steps,
                                                          const GaloisKeys& gk) const;
  // One rotation left over Q_level * P (P * sigma(c0) + ks0, ks1): c1 is permuted before
  // raising, as in rotate(). Lowering it gives rotate(a, step) bit for bit; sums of such
  // rotations lower once (lazy giant steps of a linear transform).
  ExtendedCiphertext rotate_extended(const Ciphertext& a, int step, const GaloisKeys& gk) const;
  // Rotation of an extended ciphertext that stays extended (the giant steps of double
  // hoisting): c1 is lowered for its decomposition, c0 is permuted over Q_level * P and the
  // key switch is not lowered. Lowering the result adds about a rescale's rounding error.
  void rotate_extended_inplace(ExtendedCiphertext& x, int step, const GaloisKeys& gk) const;
  // Divides by P with rounding (ModDown of both polynomials): back to a ciphertext over Q_level.
  Ciphertext lower(ExtendedCiphertext x) const;
  // The modulus of limb i of an ExtendedCiphertext at `level`.
  const math::Modulus& extended_modulus(int level, std::size_t i) const;
  // Applies X -> X^g with the matching key.
  void apply_galois_inplace(Ciphertext& a, std::uint32_t galois_elt, const GaloisKeys& gk) const;

 private:
  using SwitchJob = rlwe::SwitchJob;
  void check(const Ciphertext& a, const char* what) const;
  void check(const Plaintext& p, const char* what) const;
  void match_levels(Ciphertext& a, Ciphertext& tmp, const Ciphertext*& b) const;
  void check_scales(double a, double b) const;
  const KeySwitchKey& galois_key(std::uint32_t g, const GaloisKeys& gk) const;
  // The rotated ciphertext from one finished Galois job.
  // (perm(c0) + acc0, acc1): the rotated ciphertext from a finished job.
  Ciphertext galois_result(const Ciphertext& a, const std::vector<std::uint32_t>& perm,
                           const SwitchJob& job) const;
  // a += b or a -= b (level matching, size growth), the one mechanism behind add/sub.
  void add_or_sub(Ciphertext& a, const Ciphertext& b, bool subtract) const;
  void add_or_sub_plain(Ciphertext& a, const Plaintext& p, bool subtract) const;

  ContextPtr ctx_;
  rlwe::KeySwitcher ks_;
};

}  // namespace veil::ckks
