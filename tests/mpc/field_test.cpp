#include "veil/mpc/field.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "mpc_test_util.hpp"

namespace veil::mpc {
namespace {

TEST(MpcField, FixedPointRoundTripWithinHalfAnUlp) {
  const Field f(test::test_prime(60), 12);
  std::mt19937_64 g(test::test_seed());
  std::uniform_real_distribution<double> d(-1000.0, 1000.0);
  for (int s : {0, 12, 24}) {
    for (int i = 0; i < 2000; ++i) {
      const double x = d(g);
      EXPECT_LE(std::fabs(f.decode(f.encode(x, s), s) - x), std::ldexp(0.5, -s) * (1 + 1e-9))
          << "x=" << x << " s=" << s << " seed " << test::test_seed();
    }
  }
  EXPECT_EQ(f.decode(f.encode(-1.5, 12), 12), -1.5);
}

TEST(MpcField, OutOfRangeAndNonFiniteValuesAreRefusedByName) {
  const Field f(test::test_prime(30), 12);  // |x| * 2^12 must stay below p/2 ~ 2^29
  EXPECT_THROW(f.encode(1e6, 12), std::invalid_argument);
  EXPECT_THROW(f.encode(std::numeric_limits<double>::quiet_NaN(), 12), std::invalid_argument);
  EXPECT_THROW(f.encode(std::numeric_limits<double>::infinity(), 0), std::invalid_argument);
  try {
    f.encode(-1e6, 12);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit the share field"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Field(1ull << 62, 12), std::invalid_argument);
  EXPECT_THROW(Field(test::test_prime(40), 31), std::invalid_argument);
}

TEST(MpcField, ShareArithmeticMatchesTheClear) {
  const Field f(test::test_prime(50), 10);
  const auto& m = f.mod();
  std::vector<u64> a{1, 2, m.value() - 1}, b{5, m.value() - 3, 7};
  auto s = a;
  add_inplace(f, s, b);
  EXPECT_EQ(s, (std::vector<u64>{6, m.value() - 1, 6}));
  sub_inplace(f, s, b);
  EXPECT_EQ(s, a);
  mul_public_inplace(f, s, -2);
  EXPECT_EQ(f.centered(s[0]), -2);
  EXPECT_EQ(f.centered(s[2]), 2);
  auto srv = a, cli = a;
  add_public_inplace(f, Role::kServer, srv, b);
  add_public_inplace(f, Role::kClient, cli, b);
  EXPECT_EQ(cli, a);  // the client never adds public constants
  EXPECT_EQ(srv[0], 6u);
  EXPECT_THROW(add_inplace(f, s, std::vector<u64>{1}), std::invalid_argument);
}

}  // namespace
}  // namespace veil::mpc
