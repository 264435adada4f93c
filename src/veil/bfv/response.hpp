// What the server returns for one ciphertext: c1 in full (the client needs all of it to
// compute any coefficient of c1 s) and only the coefficients of c0 that carry results, at
// the response level after flooding and modulus switching (Cheetah, Huang et al. 2022,
// section 3: sending only the wanted coefficients). Decrypting coefficient d needs c0[d]
// and (c1 s)[d], so no other byte of c0 is useful to the client.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/rlwe/poly.hpp"

namespace veil::bfv {

struct Response {
  int level = -1;
  // Coefficient indices of c0 that were kept, in the order the values are stored. Both
  // sides know them (from the layout), so they are not serialised.
  std::vector<std::uint32_t> indices;
  // c0 at the indices, coefficient form: (level + 1) limbs of indices.size() residues.
  rlwe::PolyData c0;
  // c1 in coefficient form: (level + 1) limbs of N residues.
  rlwe::PolyData c1;
  std::uint64_t param_id = 0;

  std::size_t num_limbs() const { return static_cast<std::size_t>(level) + 1; }
};

}  // namespace veil::bfv
