#include "veil/mpc/beaver.hpp"

#include <gtest/gtest.h>

#include <random>

#include "mpc_test_util.hpp"

namespace veil::mpc {
namespace {

std::vector<u64> random_values(const Field& f, std::size_t n) {
  MaskSource m;
  return m.uniform(f, n);
}

TEST(MpcBeaver, SquareOfSharedValuesMatchesTheClear) {
  const Field f(test::test_prime(60), 12);
  MaskSource masks;
  const std::size_t n = 1000;
  const auto x = random_values(f, n);
  auto [ss, sc] = deal_squares(f, n, masks);
  const Shared xs = split(f, x, masks);
  const auto es = square_open(f, xs.server, ss), ec = square_open(f, xs.client, sc);
  const auto ys = square_close(f, Role::kServer, es, ec, ss);
  const auto yc = square_close(f, Role::kClient, ec, es, sc);
  const auto y = reconstruct(f, ys, yc);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(y[i], f.mod().mul(x[i], x[i])) << i;
}

TEST(MpcBeaver, ProductOfSharedValuesMatchesTheClear) {
  const Field f(test::test_prime(50), 12);
  MaskSource masks;
  const std::size_t n = 777;
  const auto x = random_values(f, n), y = random_values(f, n);
  auto [ts, tc] = deal_triples(f, n, masks);
  const Shared xs = split(f, x, masks), ys = split(f, y, masks);
  const auto ds = multiply_open(f, xs.server, ys.server, ts);
  const auto dc = multiply_open(f, xs.client, ys.client, tc);
  const auto z = reconstruct(f, multiply_close(f, Role::kServer, ds, dc, ts),
                             multiply_close(f, Role::kClient, dc, ds, tc));
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(z[i], f.mod().mul(x[i], y[i])) << i;
}

TEST(MpcBeaver, DealtMaterialIsConsistent) {
  const Field f(test::test_prime(40), 8);
  MaskSource masks;
  auto [ss, sc] = deal_squares(f, 50, masks);
  const auto a = reconstruct(f, ss.a, sc.a), a2 = reconstruct(f, ss.a2, sc.a2);
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(a2[i], f.mod().mul(a[i], a[i]));
}

TEST(MpcBeaver, PoolsHandOutEachElementOnceAndRefuseWhenEmpty) {
  const Field f(test::test_prime(40), 8);
  MaskSource masks;
  auto dealt = deal_squares(f, 10, masks);
  const Squares all = dealt.first;
  SquarePool pool(std::move(dealt.first));
  const Squares first = pool.take(4), second = pool.take(6);
  EXPECT_EQ(pool.remaining(), 0u);
  EXPECT_EQ(std::vector<u64>(all.a.begin(), all.a.begin() + 4), first.a);
  EXPECT_EQ(std::vector<u64>(all.a.begin() + 4, all.a.end()), second.a);
  try {
    pool.take(1);
    FAIL() << "an empty pool handed out a square";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("preprocessing exhausted"), std::string::npos) << e.what();
  }
  TriplePool tp(deal_triples(f, 3, masks).first);
  EXPECT_THROW(tp.take(4), std::runtime_error);
  EXPECT_EQ(tp.remaining(), 3u);
}

TEST(MpcBeaver, MismatchedSizesAreRefused) {
  const Field f(test::test_prime(40), 8);
  MaskSource masks;
  auto [ss, sc] = deal_squares(f, 5, masks);
  EXPECT_THROW(square_open(f, std::vector<u64>(4), ss), std::invalid_argument);
  EXPECT_THROW(square_close(f, Role::kServer, std::vector<u64>(5), std::vector<u64>(6), ss),
               std::invalid_argument);
}

}  // namespace
}  // namespace veil::mpc
