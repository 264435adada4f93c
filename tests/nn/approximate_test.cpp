// Approximation specs and the least-squares polynomial fits behind --approximate.
#include "veil/nn/approximate.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace veil::nn {
namespace {

TEST(ApproxSpec, ParsesFunctionDegreeAndRange) {
  const ApproxSpec a = parse_approx_spec("relu:deg4:range8");
  EXPECT_EQ(a.function, "relu");
  EXPECT_EQ(a.degree, 4);
  EXPECT_EQ(a.range, 8.0);
  const ApproxSpec b = parse_approx_spec("SiLU:deg6:range5.5");
  EXPECT_EQ(b.function, "silu");
  EXPECT_EQ(b.degree, 6);
  EXPECT_EQ(b.range, 5.5);
  EXPECT_EQ(parse_approx_spec("swish:deg2:range1").function, "silu");
  const ApproxSpec p = parse_approx_spec("poly:range4");
  EXPECT_EQ(p.function, "poly");
  EXPECT_EQ(p.range, 4.0);
}

TEST(ApproxSpec, RejectsMalformedSpecs) {
  for (const char* bad : {"",
                          "relu",
                          "relu:deg4",
                          "relu:range8",
                          "relu:deg0:range8",
                          "relu:deg33:range8",
                          "relu:deg4:range0",
                          "relu:deg4:range-1",
                          "relu:deg4:rangeinf",
                          "relu:deg4:rangenan",
                          "relu:four:range8",
                          "relu:deg4.5:range8",
                          "relu:deg4:range8:extra",
                          "relu:deg4:deg4",
                          "relu:range8:range8",
                          "maxpool:deg4:range8",
                          "poly:deg2:range4",
                          "poly",
                          ":deg4:range8",
                          "relu:deg4:range8x"}) {
    try {
      parse_approx_spec(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(ApproxSpec, FieldsInEitherOrder) {
  const ApproxSpec a = parse_approx_spec("tanh:range3:deg5");
  EXPECT_EQ(a.degree, 5);
  EXPECT_EQ(a.range, 3.0);
}

TEST(Fit, ReproducesPolynomialsExactly) {
  const auto cubic = [](double x) { return 0.5 - 2 * x + 0.25 * x * x * x; };
  const auto c = fit_polynomial(cubic, 3, 6.0);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_NEAR(c[0], 0.5, 1e-12);
  EXPECT_NEAR(c[1], -2.0, 1e-12);
  EXPECT_NEAR(c[2], 0.0, 1e-12);
  EXPECT_NEAR(c[3], 0.25, 1e-12);
  // A higher degree than needed gives zero extra coefficients.
  const auto c5 = fit_polynomial(cubic, 5, 6.0);
  EXPECT_NEAR(c5[4], 0.0, 1e-12);
  EXPECT_NEAR(c5[5], 0.0, 1e-12);
  EXPECT_LT(max_fit_error(cubic, c5, 6.0), 1e-11);
}

TEST(Fit, ReluDegreeTwoIsTheChebyshevProjection) {
  // With Chebyshev weight, relu(x) = x/2 + |x|/2 and |x| = 2/pi + 4/(3 pi) T2(x) - ...,
  // so the degree-2 fit on [-1, 1] is 1/(3 pi) + x/2 + 4/(3 pi) x^2.
  const auto c = fit_polynomial(activation_function("relu"), 2, 1.0);
  EXPECT_NEAR(c[0], 1 / (3 * std::numbers::pi), 1e-5);
  EXPECT_NEAR(c[1], 0.5, 1e-12);
  EXPECT_NEAR(c[2], 4 / (3 * std::numbers::pi), 1e-5);
  // Scaling the range scales the fit: relu(B t) = B relu(t).
  const auto c8 = fit_polynomial(activation_function("relu"), 2, 8.0);
  EXPECT_NEAR(c8[0], 8 * c[0], 1e-9);
  EXPECT_NEAR(c8[1], c[1], 1e-9);
  EXPECT_NEAR(c8[2], c[2] / 8, 1e-9);
}

TEST(Fit, ErrorShrinksWithDegreeAndIsBounded) {
  const auto relu = activation_function("relu");
  double prev = 1e9;
  for (int d : {2, 4, 8, 16}) {
    const double err = max_fit_error(relu, fit_polynomial(relu, d, 8.0), 8.0);
    EXPECT_LT(err, prev) << "degree " << d;
    prev = err;
  }
  // Reference values from numpy's chebfit on the same Chebyshev nodes (independent code).
  EXPECT_NEAR(max_fit_error(relu, fit_polynomial(relu, 4, 8.0), 8.0), 0.50930, 1e-4);
  EXPECT_NEAR(max_fit_error(relu, fit_polynomial(relu, 16, 8.0), 8.0), 0.14981, 1e-4);
  const auto sigmoid = activation_function("sigmoid");
  EXPECT_NEAR(max_fit_error(sigmoid, fit_polynomial(sigmoid, 9, 4.0), 4.0), 3.6397e-4, 1e-7);
  const auto gelu = activation_function("gelu");
  EXPECT_NEAR(max_fit_error(gelu, fit_polynomial(gelu, 8, 4.0), 4.0), 0.012477, 1e-5);
}

TEST(Fit, LeastSquaresOptimalAtTheNodes) {
  // Any perturbation of a coefficient increases the Chebyshev-weighted squared error.
  const auto f = activation_function("softplus");
  const auto c = fit_polynomial(f, 4, 6.0);
  auto sq_err = [&](const std::vector<double>& p) {
    double s = 0;
    for (int k = 0; k < 2000; ++k) {
      const double x = 6.0 * std::cos(std::numbers::pi * (k + 0.5) / 2000);
      const double e = f(x) - eval_polynomial(p, x);
      s += e * e;
    }
    return s;
  };
  const double best = sq_err(c);
  for (std::size_t i = 0; i < c.size(); ++i)
    for (double delta : {-1e-3, 1e-3}) {
      auto p = c;
      p[i] += delta / std::pow(6.0, static_cast<double>(i));
      EXPECT_GT(sq_err(p), best) << "coefficient " << i;
    }
}

TEST(Fit, KnownActivations) {
  EXPECT_NEAR(activation_function("softplus")(0.0), std::log(2.0), 1e-15);
  EXPECT_NEAR(activation_function("softplus")(800.0), 800.0, 1e-12);  // no overflow
  EXPECT_NEAR(activation_function("silu")(1.0), 1 / (1 + std::exp(-1.0)), 1e-15);
  EXPECT_NEAR(activation_function("gelu")(1.0), 0.8413447460685429, 1e-12);
  EXPECT_THROW(activation_function("maxpool"), std::invalid_argument);
  EXPECT_THROW(fit_polynomial(activation_function("relu"), 4, 0.0), std::invalid_argument);
  EXPECT_THROW(fit_polynomial(activation_function("relu"), 40, 1.0), std::invalid_argument);
}

}  // namespace
}  // namespace veil::nn
