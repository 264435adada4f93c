// RLWE parameters shared by every scheme (ring degree, RNS modulus chain, special
// primes for hybrid key switching) and their validation against the 128-bit bounds of the Homomorphic
// Encryption Security Guidelines (ia.cr/2024/463, uniform ternary secret, classical attacks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace veil::rlwe {

// Largest log2(QP) for 128-bit security with a uniform ternary secret, or nullopt when
// the ring degree is outside the table (2^12 .. 2^17).
std::optional<int> max_log_qp_128(int log_n);

// Data primes per key-switching digit, alpha = ceil(num_q / dnum) (Han-Ki 2020): the one
// definition used by the context, key generation, the planner's cost model and the
// special-prime sizing.
int key_switch_digit_size(std::size_t num_q, int dnum);
// Digits a key switch at `level` decomposes into, ceil((level+1) / alpha).
inline int key_switch_digits(int level, int alpha) { return (level + alpha) / alpha; }

struct Parameters {
  int log_n = 0;
  // Data primes q_0 (base prime, holds the final result) .. q_L (dropped first).
  std::vector<std::uint64_t> q;
  // Special primes P used only during hybrid key switching; empty for schemes that never
  // switch keys (then no relinearisation or Galois keys can be made).
  std::vector<std::uint64_t> p;
  // Number of key-switching digits at the top level (Han-Ki 2020 "dnum"); each digit
  // groups ceil((L+1)/dnum) consecutive data primes.
  int dnum = 1;
  // Parameters outside the 128-bit bounds are refused unless this is set (tests only).
  bool allow_insecure = false;
  // Scheme fields bound into the parameter id besides N, dnum and the primes (BFV: t and the
  // flooding parameters), so objects made under another t are refused. Empty for CKKS,
  // whose ids are unchanged.
  std::vector<std::uint64_t> scheme_id_words;

  // Generates NTT-friendly primes for the given bit sizes. q_bits[0] is the base prime;
  // data primes of equal size are chosen nearest 2^bits.
  static Parameters create(int log_n, const std::vector<int>& q_bits, const std::vector<int>& p_bits,
                           int dnum, bool allow_insecure = false);

  std::size_t n() const { return std::size_t{1} << log_n; }
  int max_level() const { return static_cast<int>(q.size()) - 1; }
  double log_q() const;
  double log_qp() const;
  // Empty when the parameters are valid; otherwise the reason (SEAL's
  // parameter_error_message). Secure-ness is part of validity unless allow_insecure.
  std::string validate() const;
  bool is_128_bit_secure() const;
  // One line for humans; `scheme_fields` (", scale = 2^40") is inserted before the
  // security verdict.
  std::string describe(const std::string& scheme_fields = {}) const;
};

}  // namespace veil::rlwe
