// Validated RLWE context: parameters plus every scheme-free precomputation (NTT tables,
// base converters for key switching and modulus switching, automorphism tables) shared
// by the key generator, encryptor, decryptor and the schemes' evaluators (SEAL's
// SEALContext). Schemes derive their own context from it (ckks::CkksContext).
//
// Prime indexing: 0..L are the data primes q_i, L+1..L+K the special primes p_k.
// Hybrid key switching (Han-Ki, CT-RSA 2020): the data primes of a level are split into
// digits of `alpha` consecutive primes; a digit is raised to Q_l*P by fast base
// conversion, multiplied by the key, and the sum is divided by P (modulus lowering).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "veil/math/modarith.hpp"
#include "veil/math/ntt.hpp"
#include "veil/math/rns.hpp"
#include "veil/rlwe/params.hpp"

namespace veil::rlwe {

using math::u64;

class Context {
 public:
  explicit Context(Parameters params);
  virtual ~Context() = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  static std::shared_ptr<const Context> create(const Parameters& params) {
    return std::make_shared<const Context>(params);
  }

  const Parameters& params() const { return params_; }
  std::size_t n() const { return n_; }
  int log_n() const { return params_.log_n; }
  int max_level() const { return params_.max_level(); }
  std::size_t num_q() const { return params_.q.size(); }
  std::size_t num_p() const { return params_.p.size(); }
  // Index of the first special prime.
  std::size_t p_index() const { return num_q(); }
  // A 64-bit digest of the primes, N, dnum and the scheme's id words: every serialised object
  // carries it, so an object made under other parameters is refused.
  std::uint64_t param_id() const { return param_id_; }

  const math::Modulus& modulus(std::size_t i) const { return moduli_[i]; }
  const math::NttTables& ntt(std::size_t i) const { return *ntt_[i]; }
  const math::RnsBase& q_base(int level) const { return q_bases_[level]; }

  // --- hybrid key switching ---
  int alpha() const { return alpha_; }
  int num_digits(int level) const { return key_switch_digits(level, alpha_); }
  std::size_t digit_begin(int digit) const { return static_cast<std::size_t>(digit) * alpha_; }
  std::size_t digit_end(int digit, int level) const {
    return std::min<std::size_t>(digit_begin(digit) + alpha_, level + 1);
  }
  // Digit primes (at this level) -> all other primes of Q_level and P, in index order.
  const math::BaseConverter& modup_converter(int level, int digit) const { return *modup_[level][digit]; }
  // P -> Q_level.
  const math::BaseConverter& moddown_converter(int level) const { return *moddown_[level]; }
  u64 p_inv_mod_q(std::size_t i) const { return p_inv_mod_q_[i]; }
  u64 p_mod_q(std::size_t i) const { return p_mod_q_[i]; }

  // --- modulus switching (CKKS rescaling, BFV modulus reduction): q_level^-1 mod q_i, i < level ---
  u64 q_last_inv(int level, std::size_t i) const { return q_last_inv_[level][i]; }

  // --- automorphisms X -> X^g ---
  // Galois element of a rotation by `step` slots (positive: slot j+step moves to slot j).
  std::uint32_t galois_element(int step) const;
  std::uint32_t conjugation_element() const { return static_cast<std::uint32_t>(2 * n_ - 1); }
  // Permutation of NTT-domain indices implementing X -> X^g: out[i] = in[perm[i]].
  const std::vector<std::uint32_t>& ntt_permutation(std::uint32_t galois_elt) const;

 private:
  Parameters params_;
  std::size_t n_;
  std::uint64_t param_id_;
  std::vector<math::Modulus> moduli_;
  std::vector<std::shared_ptr<const math::NttTables>> ntt_;  // shared with other contexts
  std::vector<math::RnsBase> q_bases_;
  int alpha_;
  std::vector<std::vector<std::unique_ptr<math::BaseConverter>>> modup_;
  std::vector<std::unique_ptr<math::BaseConverter>> moddown_;
  std::vector<u64> p_inv_mod_q_, p_mod_q_;
  std::vector<std::vector<u64>> q_last_inv_;
  mutable std::mutex perm_mutex_;
  mutable std::map<std::uint32_t, std::vector<std::uint32_t>> perms_;
};

using ContextPtr = std::shared_ptr<const Context>;

}  // namespace veil::rlwe
