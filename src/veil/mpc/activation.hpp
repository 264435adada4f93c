// Polynomial activations on shares: y = sum_k c_k x^k, degree at most 4, with one round
// per multiplicative depth (Chen et al. 2025 evaluate the merged network's activations
// this way; the powers come from Beaver squares and triples):
//   round 1: x^2 from a square;
//   round 2 (degree 3 or 4): x^4 = (x^2)^2 from a second square and x^3 = x * x^2 from a
//            triple, both in the same message.
// Each power is truncated back to its scale locally; the coefficients, at scale
// 2^coef_bits, combine the powers locally, and one last truncation returns to scale f.
// The coefficients are public to both parties: the architecture's activation is part of
// what the client learns (docs/protocols.md).
#pragma once

#include <span>
#include <vector>

#include "veil/mpc/beaver.hpp"
#include "veil/mpc/exchange.hpp"

namespace veil::mpc {

struct PolyCost {
  std::size_t squares = 0, triples = 0;
  int rounds = 0;
};
// What evaluating the polynomial on n values consumes.
PolyCost poly_cost(std::span<const double> coeffs, std::size_t n);

// Fixed-point scales (exponents of 2) of one evaluation: x arrives at in_bits; the powers
// x^2..x^4 are formed from x truncated to power_bits and kept there, so that the products
// (|x|^k 2^(2 power_bits)) stay below the truncation bound when the input range is wide;
// the terms are summed at sum_bits (coefficient c_k at 2^(sum - power), c_1 at
// 2^(sum - in)), and the sum is truncated to out_bits.
struct PolyScales {
  int in_bits = 0, power_bits = 0, sum_bits = 0, out_bits = 0;
};
std::vector<u64> poly_activation(const Field& f, Role role, std::span<const u64> x,
                                 std::span<const double> coeffs, const PolyScales& scales,
                                 SquarePool& squares, TriplePool& triples, Exchange& ex);

// x: this party's shares at scale f (f = the field's frac_bits); returns shares of y at
// scale f. Takes squares and triples from the pools (each used once).
// power_bits s (<= f; -1: f): the powers x^2..x^4 are formed from x truncated to scale s
// and kept at scale s, so that |x|^k 2^(2s) stays below the truncation bound when the
// input range is wide (a 61-bit field leaves about 20 bits for every truncated value).
// The linear term keeps x at full scale. Needs coef_bits + s >= f.
std::vector<u64> poly_activation(const Field& f, Role role, std::span<const u64> x,
                                 std::span<const double> coeffs, int coef_bits, SquarePool& squares,
                                 TriplePool& triples, Exchange& ex, int power_bits = -1);

}  // namespace veil::mpc
