// CKKS parameters (full-RNS CKKS, Cheon-Han-Kim-Kim-Song, SAC 2018) and their
// scale; the RLWE part and its security check live in rlwe/params.hpp.
#pragma once

#include <string>
#include <vector>

#include "veil/rlwe/params.hpp"

namespace veil::ckks {

// The RLWE parameters plus the default encoding scale; everything scheme-free (validity,
// security, digits) is rlwe::Parameters'.
struct CkksParameters : rlwe::Parameters {
  // Default encoding scale (usually close to the middle data primes).
  double scale = 0;

  // Generates NTT-friendly primes for the given bit sizes. q_bits[0] is the base prime;
  // data primes of equal size are chosen nearest 2^bits so scales stay stable.
  static CkksParameters create(int log_n, const std::vector<int>& q_bits, const std::vector<int>& p_bits,
                               int scale_bits, int dnum, bool allow_insecure = false);

  // rlwe::Parameters::validate() plus the scale.
  std::string validate() const;
  std::string describe() const;
};

}  // namespace veil::ckks
