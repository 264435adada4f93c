// The online phase's linear layers: y = W m (+ b) over Z_p for the integer weights of a
// quantised stage, where m is the server's masked input x - r (uniform in Z_p) or any
// share. This is the server's whole per-layer work in the online phase (Delphi,
// section 4.2: the client's part, W r - s, was computed under encryption in
// preprocessing), so it must run near the speed of a plaintext layer.
//
// Fast path: each residue (< 2^61) is split into 31-bit halves and each half is
// multiplied by the weights with plain 64-bit integer multiply-adds; the accumulators
// cannot overflow while sum_j |w_rj| < 2^32 (QuantLinear::max_row_l1), and each row is
// reduced mod p once. Over a two-prime ring (mpc/field.hpp) x and y hold two words per
// element; the residues mod p_1 < 2^31 need one multiply-add per weight (no split), in the
// same pass over the weights. Rows are spread over both cores. `apply_reference` computes the
// same with one 128-bit accumulator per row, for the tests.
#pragma once

#include <span>
#include <vector>

#include "veil/hybrid/program.hpp"
#include "veil/mpc/field.hpp"

namespace veil::hybrid {

// y = W x mod P (Field::words() words per element), plus the bias (at scale 2^(f+fw)) when add_bias.
std::vector<u64> apply(const mpc::Field& field, const QuantLinear& q, std::span<const u64> x, bool add_bias);
std::vector<u64> apply_reference(const mpc::Field& field, const QuantLinear& q, std::span<const u64> x,
                                 bool add_bias);

}  // namespace veil::hybrid
