// Ring switching R_N -> R_{N/2} (ckks/ring_switch.hpp): the slot map (mean of slots k and
// k + N/4, read at half the scale: their sum), sparse ciphertexts, evaluation continuing in
// the small ring with its own keys, and the parameter checks.
#include "veil/ckks/ring_switch.hpp"

#include <gtest/gtest.h>

#include "ckks/test_util.hpp"

namespace veil::test {
namespace {

// A large toy ring and its half-size ring for the lowest `level` + 1 primes.
struct Rings {
  Fixture big, small;
  ckks::RingSwitcher switcher;
  rlwe::KeySwitchKey key;
  explicit Rings(int level, int log_n = 10)
      : big(toy_params(log_n, 4)),
        small(ckks::ring_switch_target(big.ctx->params(), level)),
        switcher(big.ctx, small.ctx),
        key(switcher.create_key(big.keygen->secret_key(), small.keygen->secret_key())) {}
};

TEST(RingSwitch, LowerQuarterOfTheSlotsComesThroughUnchanged) {
  Rings r(2);
  const std::size_t half = r.big.ctx->max_slots(), quarter = half / 2;
  auto v = random_complex(half, 1);
  for (std::size_t k = quarter; k < half; ++k) v[k] = 0;
  const auto ct = r.big.encrypt(v, 2);
  const auto out = r.switcher.apply(ct, r.key);
  EXPECT_EQ(out.level(), 2);
  EXPECT_EQ(out.slots(), quarter);
  EXPECT_EQ(out.n(), r.big.ctx->n() / 2);
  EXPECT_DOUBLE_EQ(out.scale(), ct.scale() / 2);
  const auto got = r.small.decrypt(out);
  ASSERT_EQ(got.size(), quarter);
  EXPECT_GT(precision_bits(got, std::vector<Complex>(v.begin(), v.begin() + quarter)), 20);
}

TEST(RingSwitch, TheTwoHalvesOfTheSlotsAreAdded) {
  Rings r(3);
  const std::size_t half = r.big.ctx->max_slots(), quarter = half / 2;
  const auto v = random_complex(half, 2);
  const auto got = r.small.decrypt(r.switcher.apply(r.big.encrypt(v, 1), r.key));
  std::vector<Complex> want(quarter);
  for (std::size_t k = 0; k < quarter; ++k) want[k] = v[k] + v[k + quarter];
  EXPECT_GT(precision_bits(got, want), 20);
  // Not the slots themselves: the fold is real.
  EXPECT_LT(precision_bits(got, std::vector<Complex>(v.begin(), v.begin() + quarter)), 2);
}

TEST(RingSwitch, SparseCiphertextKeepsItsSlotsAndScale) {
  Rings r(2);
  const std::size_t slots = r.big.ctx->max_slots() / 4;
  const auto v = random_complex(slots, 3);
  const auto ct = r.big.encrypt(v, 2, slots);
  const auto out = r.switcher.apply(ct, r.key);
  EXPECT_EQ(out.slots(), slots);
  EXPECT_DOUBLE_EQ(out.scale(), ct.scale());
  EXPECT_GT(precision_bits(r.small.decrypt(out), v), 20);
}

TEST(RingSwitch, EvaluationContinuesInTheSmallRing) {
  Rings r(3);
  const std::size_t quarter = r.big.ctx->max_slots() / 2;
  auto v = random_complex(2 * quarter, 4);
  for (std::size_t k = quarter; k < v.size(); ++k) v[k] = 0;
  auto ct = r.switcher.apply(r.big.encrypt(v, 3), r.key);
  r.small.evaluator->multiply_relin_inplace(ct, r.small.encrypt(random_complex(quarter, 5), 3), r.small.rk);
  r.small.evaluator->rescale_inplace(ct);
  const auto gk = r.small.keygen->create_galois_keys({1});
  r.small.evaluator->rotate_inplace(ct, 1, gk);
  const auto w = random_complex(quarter, 5);
  std::vector<Complex> want(quarter);
  for (std::size_t k = 0; k < quarter; ++k) want[k] = v[(k + 1) % quarter] * w[(k + 1) % quarter];
  EXPECT_EQ(ct.level(), 2);
  EXPECT_GT(precision_bits(r.small.decrypt(ct), want), 15);
}

TEST(RingSwitch, KeyForAnotherSecretGivesNoise) {
  Rings r(2), other(2);
  const std::size_t quarter = r.big.ctx->max_slots() / 2;
  auto v = random_complex(2 * quarter, 6);
  for (std::size_t k = quarter; k < v.size(); ++k) v[k] = 0;
  // `other`'s key switches other.big's secret: applied to r.big's ciphertext (same
  // primes, so accepted) it must not decrypt.
  const auto wrong = r.switcher.create_key(other.big.keygen->secret_key(), r.small.keygen->secret_key());
  const auto got = r.small.decrypt(r.switcher.apply(r.big.encrypt(v, 2), wrong));
  EXPECT_LT(precision_bits(got, std::vector<Complex>(v.begin(), v.begin() + quarter)), 0);
}

TEST(RingSwitch, RefusesWhatItCannotSwitch) {
  Rings r(2);
  const auto top = r.big.encrypt(random_complex(4, 7), r.big.ctx->max_level());
  EXPECT_THROW(r.switcher.apply(top, r.key), std::invalid_argument);  // above the small ring's top
  EXPECT_THROW(r.switcher.apply(r.small.encrypt(random_complex(4, 7), 1), r.key), std::invalid_argument);
  // Not half the degree, or not the same chain.
  EXPECT_THROW(ckks::RingSwitcher(r.big.ctx, r.big.ctx), std::invalid_argument);
  Fixture stranger(toy_params(9, 2));
  EXPECT_THROW(ckks::RingSwitcher(r.big.ctx, stranger.ctx), std::invalid_argument);
}

TEST(RingSwitch, TargetIsSecureAtLowLevelsOfASecureChain) {
  // A chain of the planner's shape at N = 2^15 (40-bit base, 33-bit primes, 13 levels).
  std::vector<int> q = {45};
  for (int i = 0; i < 13; ++i) q.push_back(33);
  const auto big = ckks::CkksParameters::create(15, q, {60, 60, 60, 60}, 33, 2);
  ASSERT_TRUE(big.is_128_bit_secure());
  const auto small = ckks::ring_switch_target(big, 5);
  EXPECT_EQ(small.log_n, 14);
  EXPECT_EQ(small.q.size(), 6u);
  EXPECT_TRUE(small.is_128_bit_secure());
  EXPECT_TRUE(small.validate().empty());
  // The switching parameters (degree 2^15 over the small ring's primes) are valid too.
  EXPECT_NO_THROW(rlwe::ring_switch_parameters(big, small));
  // The whole chain does not fit 2^14.
  EXPECT_THROW(ckks::ring_switch_target(big, 13), std::invalid_argument);
}

}  // namespace
}  // namespace veil::test
