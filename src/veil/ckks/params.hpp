// CKKS parameters (full-RNS CKKS, Cheon-Han-Kim-Kim-Song, SAC 2018) and their
// validation against the 128-bit bounds of the Homomorphic Encryption Security
// Guidelines (ia.cr/2024/463, uniform ternary secret, classical attacks).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace veil::ckks {

// Largest log2(QP) for 128-bit security with a uniform ternary secret, or nullopt when
// the ring degree is outside the table (2^12 .. 2^17).
std::optional<int> max_log_qp_128(int log_n);

struct CkksParameters {
  int log_n = 0;
  // Data primes q_0 (base prime, holds the final result) .. q_L (dropped first).
  std::vector<std::uint64_t> q;
  // Special primes P used only during hybrid key switching.
  std::vector<std::uint64_t> p;
  // Number of key-switching digits at the top level (Han-Ki 2020 "dnum"); each digit
  // groups ceil((L+1)/dnum) consecutive data primes.
  int dnum = 1;
  // Default encoding scale (usually close to the middle data primes).
  double scale = 0;
  // Parameters outside the 128-bit bounds are refused unless this is set (tests only).
  bool allow_insecure = false;

  // Generates NTT-friendly primes for the given bit sizes. q_bits[0] is the base prime;
  // data primes of equal size are chosen nearest 2^bits so scales stay stable.
  static CkksParameters create(int log_n, const std::vector<int>& q_bits, const std::vector<int>& p_bits,
                               int scale_bits, int dnum, bool allow_insecure = false);

  std::size_t n() const { return std::size_t{1} << log_n; }
  int max_level() const { return static_cast<int>(q.size()) - 1; }
  double log_q() const;
  double log_qp() const;
  // Empty when the parameters are valid; otherwise the reason (SEAL's
  // parameter_error_message). Secure-ness is part of validity unless allow_insecure.
  std::string validate() const;
  bool is_128_bit_secure() const;
  std::string describe() const;
};

}  // namespace veil::ckks
