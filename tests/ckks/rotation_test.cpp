#include <tuple>

#include "math/simd_paths.hpp"
#include "test_util.hpp"

namespace veil::ckks {
namespace {

using test::precision_bits;
using test::random_complex;

std::vector<Complex> rotated(const std::vector<Complex>& v, int step) {
  const int n = static_cast<int>(v.size());
  std::vector<Complex> r(n);
  for (int j = 0; j < n; ++j) r[j] = v[((j + step) % n + n) % n];
  return r;
}

TEST(Rotation, EveryStepAndConjugation) {
  // N = 2^7: 64 slots, every rotation step checked.
  test::Fixture f(test::toy_params(7, 2, 3));
  std::vector<int> steps;
  for (int s = 1; s < 64; ++s) steps.push_back(s);
  auto gk = f.keygen->create_galois_keys(steps, true);
  auto v = random_complex(64, 1);
  auto ct = f.encrypt(v);
  for (int s : steps) {
    auto r = f.evaluator->rotate(ct, s, gk);
    ASSERT_GT(precision_bits(f.decrypt(r), rotated(v, s)), 22) << "step " << s;
  }
  // Negative steps use the same keys (-s = 64 - s).
  auto r = f.evaluator->rotate(ct, -3, gk);
  EXPECT_GT(precision_bits(f.decrypt(r), rotated(v, -3)), 22);
  auto c = ct;
  f.evaluator->conjugate_inplace(c, gk);
  std::vector<Complex> conj(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) conj[i] = std::conj(v[i]);
  EXPECT_GT(precision_bits(f.decrypt(c), conj), 22);
}

TEST(Rotation, HoistedEqualsIndividualRotations) {
  test::Fixture f(test::toy_params(11, 4, 2));
  const std::vector<int> steps = {1, 2, 3, 5, 8, -1, 100, 0};
  auto gk = f.keygen->create_galois_keys(steps);
  auto v = random_complex(1024, 2);
  auto ct = f.encrypt(v, 3);
  auto hoisted = f.evaluator->rotate_hoisted(ct, steps, gk);
  ASSERT_EQ(hoisted.size(), steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    auto single = f.evaluator->rotate(ct, steps[i], gk);
    // A single rotation permutes c1 before raising it, hoisting permutes the raised
    // digits: the fast base conversion rounds differently (by multiples of a digit's
    // modulus), so the ciphertexts differ while both decrypt to the rotated vector.
    const auto h = f.decrypt(hoisted[i]);
    EXPECT_GT(precision_bits(h, rotated(v, steps[i])), 22) << "step " << steps[i];
    EXPECT_GT(precision_bits(h, f.decrypt(single)), 22) << "step " << steps[i];
  }
}

// Double hoisting: a rotation left over Q_l * P is P * sigma(c0) + ks0 there, and
// ModDown(P * x + y) = x + ModDown(y) exactly (P * x has no P part and P^-1 * P * x = x),
// so lowering it gives the hoisted rotation bit for bit, at every level and dnum.
TEST(Rotation, ExtendedHoistedRotationsLowerToTheHoistedOnes) {
  for (const auto& [log_n, levels, dnum] :
       {std::tuple{10, 3, 1}, std::tuple{11, 4, 2}, std::tuple{12, 5, 3}}) {
    test::Fixture f(test::toy_params(log_n, levels, dnum));
    const std::vector<int> steps = {0, 1, 2, 7, -1, 100};
    auto gk = f.keygen->create_galois_keys(steps);
    const std::size_t slots = f.ctx->n() / 2;
    auto v = random_complex(slots, 5);
    for (int level : {f.ctx->max_level(), 1}) {
      auto ct = f.encrypt(v, level);
      auto hoisted = f.evaluator->rotate_hoisted(ct, steps, gk);
      auto extended = f.evaluator->rotate_hoisted_extended(ct, steps, gk);
      ASSERT_EQ(extended.size(), steps.size());
      for (std::size_t i = 0; i < steps.size(); ++i) {
        EXPECT_EQ(extended[i].num_limbs(), static_cast<std::size_t>(level) + 1 + f.ctx->num_p());
        const Ciphertext lowered = f.evaluator->lower(std::move(extended[i]));
        ASSERT_EQ(lowered.level(), hoisted[i].level());
        EXPECT_TRUE(lowered.data() == hoisted[i].data())
            << "N = 2^" << log_n << ", level " << level << ", step " << steps[i];
        // Fresh public-key encryption noise grows about as N (u * e has N terms and
        // the canonical embedding sums N more), one bit per doubling: measured over
        // 1800 rotations each, the worst precision is 24.0, 22.7 and 21.6 bits at
        // N = 2^10, 2^11, 2^12, so 30 - log N keeps 3.5 bits of margin.
        EXPECT_GT(precision_bits(f.decrypt(lowered), rotated(v, steps[i])), 30 - log_n) << "N = 2^" << log_n;
        // One rotation left extended (c1 permuted before raising) lowers to rotate().
        const Ciphertext one = f.evaluator->lower(f.evaluator->rotate_extended(ct, steps[i], gk));
        EXPECT_TRUE(one.data() == f.evaluator->rotate(ct, steps[i], gk).data())
            << "N = 2^" << log_n << ", level " << level << ", step " << steps[i];
      }
    }
  }
}

TEST(Rotation, SparseSlotsRotateWithinTheSlotCount) {
  test::Fixture f(test::toy_params(10, 2));
  auto gk = f.keygen->create_galois_keys({1, 5});
  auto v = random_complex(16, 3);
  auto ct = f.encrypt(v, -1, 16);
  for (int s : {1, 5}) {
    EXPECT_GT(precision_bits(f.decrypt(f.evaluator->rotate(ct, s, gk)), rotated(v, s)), 22);
  }
}

TEST(Rotation, KeysAtALowerLevelAreSmallerAndWorkBelowIt) {
  test::Fixture f(test::toy_params(10, 4, 5));
  auto top = f.keygen->create_galois_keys({1});
  auto low = f.keygen->create_galois_keys({1}, false, 1);
  const auto& kt = top.keys.begin()->second;
  const auto& kl = low.keys.begin()->second;
  EXPECT_LT(kl.bytes(), kt.bytes());
  auto v = random_complex(512, 4);
  auto ct = f.encrypt(v, 1);
  EXPECT_GT(precision_bits(f.decrypt(f.evaluator->rotate(ct, 1, low)), rotated(v, 1)), 22);
  auto high = f.encrypt(v);
  EXPECT_THROW(f.evaluator->rotate(high, 1, low), std::invalid_argument);
  EXPECT_THROW(f.evaluator->rotate(high, 2, top), std::invalid_argument);  // no key for step 2
}

// A chain at scale 2^33 (cifar10-resnet20's): the key limbs of its 33-bit primes are held
// in 33 bits (rlwe::KeyPoly), and rotations, hoisted rotations and relinearisation read
// them at every SIMD level the CPU has. (A fresh encryption at these toy sizes keeps about
// 18 bits, a key switch about 16.6; a lost 33rd bit would leave none.)
TEST(Rotation, KeysInThirtyThreeBitWordsWorkAtEverySimdLevel) {
  const auto params =
      ckks::CkksParameters::create(11, {45, 33, 33, 33}, {45, 45}, 33, 2, /*allow_insecure=*/true);
  test::Fixture f(params);
  const std::vector<int> steps = {1, 7, -3};
  auto gk = f.keygen->create_galois_keys(steps);
  const auto& key = gk.keys.begin()->second;
  ASSERT_EQ(key.b[0].words(0), KeyPoly::Words::k64);  // the 45-bit base prime
  for (std::size_t k = 1; k <= 3; ++k) ASSERT_EQ(key.b[0].words(k), KeyPoly::Words::k33) << "limb " << k;
  auto v = random_complex(1024, 5);
  auto ct = f.encrypt(v);
  math::testing_paths::for_each_simd_level([&](math::SimdLevel) {
    const auto hoisted = f.evaluator->rotate_hoisted(ct, steps, gk);
    for (std::size_t i = 0; i < steps.size(); ++i) {
      EXPECT_GT(precision_bits(f.decrypt(f.evaluator->rotate(ct, steps[i], gk)), rotated(v, steps[i])), 14)
          << "step " << steps[i];
      EXPECT_GT(precision_bits(f.decrypt(hoisted[i]), rotated(v, steps[i])), 14) << "step " << steps[i];
    }
    std::vector<Complex> sq(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) sq[i] = v[i] * v[i];
    auto prod = ct;
    f.evaluator->multiply_relin_inplace(prod, ct, f.rk);
    EXPECT_GT(precision_bits(f.decrypt(prod), sq), 14);
  });
}

}  // namespace
}  // namespace veil::ckks
