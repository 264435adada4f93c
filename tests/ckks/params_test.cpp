#include "veil/ckks/params.hpp"

#include <gtest/gtest.h>

#include "veil/ckks/context.hpp"

namespace veil::ckks {
namespace {

TEST(Params, SecurityTableMatchesGuidelines) {
  EXPECT_EQ(*rlwe::max_log_qp_128(12), 106);
  EXPECT_EQ(*rlwe::max_log_qp_128(13), 214);
  EXPECT_EQ(*rlwe::max_log_qp_128(14), 430);
  EXPECT_EQ(*rlwe::max_log_qp_128(15), 868);
  EXPECT_EQ(*rlwe::max_log_qp_128(16), 1747);
  EXPECT_EQ(*rlwe::max_log_qp_128(17), 3523);
  EXPECT_FALSE(rlwe::max_log_qp_128(11).has_value());
}

TEST(Params, InsecureRefusedWithoutOptInAndTheErrorNamesTheBound) {
  // N = 2^13 with 5 x 50 bits + 50: 300 > 214.
  try {
    CkksParameters::create(13, {50, 50, 50, 50, 50}, {50}, 40, 1);
    FAIL() << "insecure parameters were accepted";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("214"), std::string::npos) << msg;
    EXPECT_NE(msg.find("2^13"), std::string::npos) << msg;
  }
  // Small rings have no bound at all.
  EXPECT_THROW(CkksParameters::create(10, {50, 40}, {50}, 40, 1), std::invalid_argument);
  // With the opt-in both are accepted.
  EXPECT_NO_THROW(CkksParameters::create(13, {50, 50, 50, 50, 50}, {50}, 40, 5, true));
  EXPECT_NO_THROW(CkksParameters::create(10, {50, 40}, {50}, 40, 2, true));
}

TEST(Params, SecureSetsAreAcceptedAtTheBound) {
  // 2^15: 60 + 19*40 = 820 data bits plus one 48-bit special prime = 868.
  std::vector<int> q = {60};
  for (int i = 0; i < 19; ++i) q.push_back(40);
  auto p = CkksParameters::create(15, q, {48}, 40, 20);
  EXPECT_TRUE(p.is_128_bit_secure());
  EXPECT_LE(p.log_qp(), 868);
  EXPECT_NE(p.describe().find("met"), std::string::npos);
}

TEST(Params, SpecialModulusMustCoverTheKeySwitchingDigits) {
  // One digit of 60+3*40 = 180 bits against a 61-bit P would leave ~2^119 noise.
  try {
    CkksParameters::create(10, {60, 40, 40, 40}, {61}, 40, 1, true);
    FAIL() << "accepted a special modulus far below the digit size";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("special primes too small"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(CkksParameters::create(10, {60, 40, 40, 40}, {61}, 40, 4, true));
  EXPECT_NO_THROW(CkksParameters::create(10, {60, 40, 40, 40}, {61, 61, 61}, 40, 1, true));
}

TEST(Params, ContextRejectsTamperedPrimes) {
  auto p = CkksParameters::create(12, {40, 30}, {30}, 30, 2);
  auto bad = p;
  bad.q[1] += 2;  // no longer prime or no longer 1 mod 2N
  EXPECT_FALSE(bad.validate().empty());
  EXPECT_THROW(CkksContext ctx(bad), std::invalid_argument);
  bad = p;
  bad.p[0] = bad.q[0];
  EXPECT_NE(bad.validate().find("twice"), std::string::npos);
  bad = p;
  bad.dnum = 5;  // more digits than primes
  EXPECT_NE(bad.validate().find("dnum"), std::string::npos);
}

}  // namespace
}  // namespace veil::ckks
