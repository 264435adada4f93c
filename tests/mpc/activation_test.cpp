// Polynomial activations with both parties on two threads, against the clear polynomial.
#include "veil/mpc/activation.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mpc_test_util.hpp"

namespace veil::mpc {
namespace {

struct PolyRun {
  std::vector<double> y;
  int server_rounds = 0, client_rounds = 0;
};

PolyRun run_poly(const Field& f, const std::vector<double>& x, const std::vector<double>& c, int coef_bits) {
  MaskSource masks;
  const PolyCost cost = poly_cost(c, x.size());
  auto sq = deal_squares(f, cost.squares, masks);
  auto tr = deal_triples(f, cost.triples, masks);
  SquarePool sq_s(std::move(sq.first)), sq_c(std::move(sq.second));
  TriplePool tr_s(std::move(tr.first)), tr_c(std::move(tr.second));
  const Shared xs = split(f, f.encode(x, f.frac_bits()), masks);
  test::MailboxPair pair;
  std::vector<u64> ys, yc;
  test::run_both(
      [&] { ys = poly_activation(f, Role::kServer, xs.server, c, coef_bits, sq_s, tr_s, pair.server()); },
      [&] { yc = poly_activation(f, Role::kClient, xs.client, c, coef_bits, sq_c, tr_c, pair.client()); });
  EXPECT_EQ(sq_s.remaining(), 0u);
  EXPECT_EQ(tr_c.remaining(), 0u);
  return {f.decode(reconstruct(f, ys, yc), f.frac_bits()), pair.server().rounds(), pair.client().rounds()};
}

// Error bound from the construction: each truncation loses < 1 ulp (2^-f); the error of
// x^2 doubles through (x^2)^2 and x * x^2; each coefficient is rounded to 2^-coef_bits.
double error_bound(const std::vector<double>& c, double bound, int f, int coef_bits) {
  const double ulp = std::ldexp(1.0, -f);
  const double err_pow[5] = {0, 0, ulp, ulp * (1 + bound), ulp * (1 + 2 * bound * bound)};
  double e = ulp;  // final truncation
  for (std::size_t k = 1; k < c.size(); ++k) {
    e += std::fabs(c[k]) * err_pow[k] + std::ldexp(0.5, -coef_bits) * std::pow(bound, k) +
         std::ldexp(1.0, -coef_bits) * ulp;
  }
  return e;
}

void check_poly(const std::vector<double>& c, int expect_rounds) {
  const Field f(test::test_prime(60), 12);
  const int coef_bits = 12;
  const double bound = 4.0;
  std::mt19937_64 g(test::test_seed());
  std::uniform_real_distribution<double> d(-bound, bound);
  std::vector<double> x(2000);
  for (auto& v : x) v = d(g);
  const PolyRun r = run_poly(f, x, c, coef_bits);
  EXPECT_EQ(r.server_rounds, expect_rounds);
  EXPECT_EQ(r.client_rounds, expect_rounds);
  const double tol = error_bound(c, bound, f.frac_bits(), coef_bits);
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    double want = 0;
    for (std::size_t k = c.size(); k-- > 0;) want = want * x[i] + c[k];
    worst = std::max(worst, std::fabs(r.y[i] - want));
  }
  EXPECT_LE(worst, tol) << "degree " << c.size() - 1 << ", seed " << test::test_seed();
  EXPECT_GT(tol, 0.0);
}

TEST(MpcActivation, DegreeTwoInOneRound) { check_poly({0.375, 0.5, 0.117}, 1); }

TEST(MpcActivation, PrismDegreeFourInTwoRoundsWithoutTriples) {
  // PRISM's Softplus polynomial has no x^3 term: two squarings, no triple.
  const std::vector<double> c{0.738099333, 0.5, 0.0887234775, 0.0, -0.00068481};
  EXPECT_EQ(poly_cost(c, 10).triples, 0u);
  EXPECT_EQ(poly_cost(c, 10).squares, 20u);
  check_poly(c, 2);
}

TEST(MpcActivation, FullDegreeFourInTwoRounds) { check_poly({0.1, -0.7, 0.3, 0.05, -0.01}, 2); }

TEST(MpcActivation, AffineNeedsNoRound) { check_poly({0.25, -1.5}, 0); }

TEST(MpcActivation, ShortPreprocessingIsRefusedBeforeAnyExchange) {
  const Field f(test::test_prime(60), 12);
  MaskSource masks;
  auto sq = deal_squares(f, 3, masks);  // 4 values need 4 squares
  SquarePool ps(std::move(sq.first)), pc(std::move(sq.second));
  TriplePool ts, tc;
  const Shared xs = split(f, f.encode(std::vector<double>{1, 2, 3, 4}, 12), masks);
  test::MailboxPair pair;
  const std::vector<double> c{0, 0, 1};
  EXPECT_THROW(
      test::run_both([&] { poly_activation(f, Role::kServer, xs.server, c, 12, ps, ts, pair.server()); },
                     [&] { poly_activation(f, Role::kClient, xs.client, c, 12, pc, tc, pair.client()); }),
      std::runtime_error);
  EXPECT_EQ(pair.server().rounds(), 0);
  EXPECT_EQ(ps.remaining(), 3u);  // nothing was consumed
  EXPECT_THROW(poly_cost(std::vector<double>{0, 0, 0, 0, 0, 1}, 1), std::invalid_argument);
}

}  // namespace
}  // namespace veil::mpc
