// Homomorphic operations of the exact scheme that the hybrid mode needs: additions,
// ciphertext x plaintext products with plaintexts prepared once in NTT form (and summed
// over many inputs in one pass), modulus switching and extraction of the coefficients that
// carry results. No relinearisation and no rotations, hence no evaluation keys.
//
// Noise: see params.hpp (noise_bounds) for what these operations add.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/bfv/plaintext.hpp"
#include "veil/bfv/response.hpp"

namespace veil::bfv {

class Evaluator {
 public:
  explicit Evaluator(ContextPtr ctx);
  const ContextPtr& context() const { return ctx_; }

  // Levels must match (switch first); the results stay at that level.
  void add_inplace(Ciphertext& a, const Ciphertext& b) const;
  void sub_inplace(Ciphertext& a, const Ciphertext& b) const;
  // a + Delta p (resp. - Delta p), p centred.
  void add_plain_inplace(Ciphertext& a, const Plaintext& p) const;
  void sub_plain_inplace(Ciphertext& a, const Plaintext& p) const;

  // p lifted to the primes of `level` (centred coefficients), NTT form; level < 0: top.
  PreparedPlaintext prepare(const Plaintext& p, int level = -1) const;
  void multiply_plain_inplace(Ciphertext& a, const PreparedPlaintext& p) const;
  Ciphertext multiply_plain(const Ciphertext& a, const PreparedPlaintext& p) const;
  // sum_j cts[j] * pts[j] (all at one level), parallel over limbs, one pass over memory.
  Ciphertext multiply_accumulate(std::span<const Ciphertext* const> cts,
                                 std::span<const PreparedPlaintext* const> pts) const;

  // Divides by the primes above `level` with rounding (modulus switching, Brakerski-Gentry-
  // Vaikuntanathan 2012): Q -> Q' = q_0..q_level, noise scaled by Q'/Q plus at most
  // (N + 1 + t) / 2 per prime dropped.
  void mod_switch_to_inplace(Ciphertext& a, int level) const;
  // Keeps c1 and the c0 coefficients at `indices` (any order, each < N).
  Response extract(const Ciphertext& a, std::span<const std::uint32_t> indices) const;

 private:
  void check(const Ciphertext& a, const char* what) const;
  // a += b or a -= b, limb by limb, after the checks both share.
  void add_or_sub(Ciphertext& a, const Ciphertext& b, bool subtract) const;
  void add_scaled_plain(Ciphertext& a, const Plaintext& p, bool negate) const;

  ContextPtr ctx_;
};

}  // namespace veil::bfv
