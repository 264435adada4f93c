// Polynomial replacements for standard activations, fitted when the user asks for them.
//
// A model trained with ReLU (or Softplus, SiLU, ...) can only run under CKKS after the
// activation is replaced by a polynomial; accuracy then depends on how well the
// polynomial tracks the activation over the range the pre-activations actually take
// (Gilad-Bachrach et al., CryptoNets, ICML 2016; Garimella et al., "Sisyphus", 2021).
// So the replacement is never silent: the importer refuses such models unless a spec
// like "relu:deg4:range8" names the activation, the degree and the range.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace veil::nn {

struct ApproxSpec {
  std::string function;  // relu, softplus, sigmoid, tanh, silu, gelu, or poly (see below)
  int degree = 0;        // 1 .. kMaxApproxDegree
  double range = 0;      // B: fit on [-B, B]
};

inline constexpr int kMaxApproxDegree = 32;

// Parses "FUNCTION:degD:rangeB" (e.g. "relu:deg4:range8", "silu:deg6:range5.5"). The
// special form "poly:rangeB" gives no fit; it sets the input_range and fit_range of
// polynomials recognised from elementwise Mul/Add nodes, whose range is otherwise
// unknown. Throws std::invalid_argument saying what is wrong.
ApproxSpec parse_approx_spec(const std::string& text);

// Names accepted by parse_approx_spec other than "poly", comma-separated.
std::string approximable_functions();

// The activation with that name; throws std::invalid_argument for unknown names.
std::function<double(double)> activation_function(const std::string& name);

// Least-squares fit of f on [-range, range] at Chebyshev nodes, computed in the
// Chebyshev basis of x / range (discrete orthogonality makes the fit a projection, no
// ill-conditioned Vandermonde solve) and returned as ascending coefficients of x.
std::vector<double> fit_polynomial(const std::function<double(double)>& f, int degree, double range);

// max |f(x) - p(x)| over a fine uniform grid of [-range, range] plus its end points.
double max_fit_error(const std::function<double(double)>& f, const std::vector<double>& coefficients,
                     double range);

// Horner evaluation of ascending coefficients.
double eval_polynomial(const std::vector<double>& coefficients, double x);

}  // namespace veil::nn
