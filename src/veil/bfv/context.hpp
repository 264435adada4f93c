// BFV context: the RLWE context (NTT tables, modulus-switching constants) plus what the
// exact scheme precomputes per level l: Delta_l = floor(Q_l / t) modulo each prime and
// Q_l mod t (for the exact message scaling round(Q_l m / t)), and the multi-precision Q_l
// and Q_l / q_i used by exact decryption and noise measurement.
#pragma once

#include <memory>
#include <vector>

#include "veil/bfv/params.hpp"
#include "veil/math/ntt.hpp"
#include "veil/rlwe/context.hpp"

namespace veil::bfv {

class BfvContext : public rlwe::Context {
 public:
  explicit BfvContext(BfvParameters params);
  static std::shared_ptr<const BfvContext> create(const BfvParameters& params) {
    return std::make_shared<const BfvContext>(params);
  }

  const BfvParameters& params() const { return bfv_params_; }
  u64 t() const { return bfv_params_.t; }
  const math::Modulus& t_mod() const { return t_mod_; }
  bool batching() const { return t_ntt_ != nullptr; }
  // The negacyclic NTT modulo t (batching only).
  const math::NttTables& t_ntt() const;

  // floor(Q_level / t) mod q_i, i <= level.
  u64 delta_mod(int level, std::size_t i) const { return delta_mod_[level][i]; }
  u64 q_mod_t(int level) const { return q_mod_t_[level]; }
  // round(Q_level m / t) mod q_i for 0 <= m < t, exactly: Delta m + round((Q mod t) m / t)
  // (the scaling SEAL uses). Unlike Delta m it leaves no wrap-around noise in products:
  // (Q m / t) w = Q [m w]_t / t + Q k = Q [m w]_t / t mod Q. The fraction does not depend
  // on the prime, so callers compute it once per coefficient.
  u64 scale_fraction(int level, u64 m) const {
    const math::u128 two_t = static_cast<math::u128>(t()) * 2;
    return static_cast<u64>((2 * static_cast<math::u128>(q_mod_t_[level]) * m + t()) / two_t);
  }
  // Every coefficient of p scaled to each prime of `level`, in coefficient form:
  // delta_mod * m + scale_fraction(m) mod q_i (math::mul_const_add_wide_vec).
  void scale_plaintext(int level, const std::vector<u64>& p, u64* out) const;
  // Words of the multi-precision integers (little-endian), `words()` wide.
  std::size_t words() const { return words_; }
  const std::vector<u64>& q_words(int level) const { return q_words_[level]; }
  const std::vector<u64>& qhat_words(int level, std::size_t i) const { return qhat_words_[level][i]; }
  const std::vector<u64>& delta_words(int level) const { return delta_words_[level]; }

 private:
  BfvParameters bfv_params_;
  math::Modulus t_mod_;
  std::unique_ptr<math::NttTables> t_ntt_;
  std::size_t words_ = 0;
  std::vector<std::vector<u64>> delta_mod_;
  std::vector<u64> q_mod_t_;
  std::vector<std::vector<u64>> q_words_, delta_words_;
  std::vector<std::vector<std::vector<u64>>> qhat_words_;
};

using ContextPtr = std::shared_ptr<const BfvContext>;

}  // namespace veil::bfv
