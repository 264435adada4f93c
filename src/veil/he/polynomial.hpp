// Polynomial evaluation on CKKS ciphertexts in the power basis with minimal depth.
//
// p(x) = q(x) * x^m + r(x), m the largest power of two <= deg p (the power-of-two
// splitting behind Paterson-Stockmeyer / baby-step giant-step evaluation, Lee et al.
// 2020), recursively. Powers x^(2^k) come from repeated squaring. A monic polynomial of
// degree d costs ceil(log2 d) levels: the leading coefficient is not multiplied in
// (the merging pass folds it into the next linear layer), and the lower-degree parts are
// evaluated directly at the level and scale of the product they are added to, by
// encoding their coefficients at a matching constant scale. Nothing is ever rescaled
// just to align scales.
#pragma once

#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::he {

// Levels evaluate_polynomial consumes for these coefficients (ascending, trailing zeros
// trimmed): ceil(log2 d) if monic, else ceil(log2(d + 1)); 0 for constants and for x + c.
int polynomial_depth(const std::vector<double>& coefficients);

// Returns p(x) slot-wise. The input must have at least polynomial_depth levels left.
// With `relinearize_result` false a monic quadratic returns x^2 + c1 x + c0 neither
// relinearised (3 polynomials) nor rescaled (scale s^2, level unchanged): a following
// weighted sum then works on the larger ciphertexts, relinearises only its outputs and
// rescales them twice (lazy relinearisation; fewer key switches whenever the layer has
// fewer outputs than inputs).
ckks::Ciphertext evaluate_polynomial(const ckks::Evaluator& eval, const ckks::Ciphertext& x,
                                     const std::vector<double>& coefficients, const rlwe::RelinKeys& rk,
                                     bool relinearize_result = true);

// The scale evaluate_polynomial's relinearised result has for an input at (level, scale):
// the input's own when the polynomial is not monic (or is x + c), else the scale its
// powers and products naturally land on. The same double arithmetic as the evaluation, so
// the two agree to the last bit or so (callers plan scale corrections with it).
double polynomial_scale(const ckks::CkksContext& ctx, const std::vector<double>& coefficients, int level,
                        double scale);

}  // namespace veil::he
