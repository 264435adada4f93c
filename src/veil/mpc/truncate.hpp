// Local truncation of fixed-point shares after a product (SecureML, Mohassel and Zhang,
// IEEE S&P 2017, Theorem 1, carried over from Z_{2^k} to Z_p): each party divides its own
// share by 2^d without talking to the other.
//
// The server keeps floor(x_0 / 2^d); the client keeps p - floor((p - x_1) / 2^d). Write
// x_1' = x_1 - p, in (-p, 0] (0 for a zero share). Whenever x_0 + x_1' = x over the integers, the two results
// add up to x / 2^d with an error below one unit of the last place:
//     x/2^d - 1 < floor(x_0/2^d) + ceil(x_1'/2^d) < x/2^d + 1.
// That fails only when the shares did not wrap around p the usual way, which for a
// uniform client share happens with probability at most (|x| + 1) / p (x >= 0: x_0 <= x;
// x < 0: x_0 > p + x). Over two primes (mpc/field.hpp) the same holds with P = p_0 p_1
// for p: each party recombines its share's residues into [0, P), shifts, and splits again.
// The planner keeps every truncated value below 2^l with
// 2^l / p <= 2^-40 (truncation_failure_log2 says how far below).
#pragma once

#include <span>

#include "veil/mpc/field.hpp"

namespace veil::mpc {

// Divides the shared value by 2^bits, in place, on one party's share.
void truncate_inplace(const Field& f, Role role, std::span<u64> share, int bits);

// log2 of the failure probability bound (|x| + 1) / p for values with |x| < 2^value_bits
// (x as the integer in the field, i.e. already scaled).
double truncation_failure_log2(const Field& f, int value_bits);

// The largest value_bits whose truncation fails with probability at most 2^-sigma.
int max_truncation_value_bits(const Field& f, int sigma);

}  // namespace veil::mpc
