// Double hoisting (Bossuat et al., Eurocrypt 2021) and lazy giant steps in the BSGS linear
// transform against the single-hoisted reference path, on toy rings N = 2^10..2^12 (insecure parameters,
// opted into explicitly by test::toy_params): both decrypt to the plain map, and to each other within the
// key-switching noise.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>

#include "ckks/test_util.hpp"
#include "he/he_test_util.hpp"
#include "veil/he/linear_transform.hpp"

namespace veil {
namespace {

using ckks::Ciphertext;
using test::apply_plain;
using test::max_error;
using test::random_vector;

struct Case {
  int log_n, levels, dnum, giant;
  bool cache;
};

class DoubleHoistingTest : public ::testing::TestWithParam<Case> {};

TEST_P(DoubleHoistingTest, MatchesSingleHoistingAndThePlainMap) {
  const Case c = GetParam();
  test::Fixture f(test::toy_params(c.log_n, c.levels, c.dnum));
  const std::size_t n = f.ctx->n() / 2;
  std::mt19937_64 g(77 + c.log_n + c.giant);
  he::LinearTransformSpec spec;
  spec.slots = n;
  spec.in_blocks = 2;
  spec.out_blocks = 2;
  std::uniform_int_distribution<int> step(0, static_cast<int>(n) - 1);
  for (int bo = 0; bo < 2; ++bo)
    for (int bi = 0; bi < 2; ++bi) {
      spec.diagonals.push_back({bo, bi, 0, random_vector(n, g)});
      for (int k = 0; k < 10; ++k) spec.diagonals.push_back({bo, bi, step(g), random_vector(n, g)});
    }
  spec.bias = {random_vector(n, g), random_vector(n, g)};
  const std::vector<std::vector<double>> in = {random_vector(n, g), random_vector(n, g)};
  const auto want = apply_plain(spec, in);

  for (int level : {f.ctx->max_level(), 1}) {
    he::LinearTransform single(*f.encoder, spec, level, c.giant, c.cache, 0, he::Hoisting::kSingle);
    auto gk = f.keygen->create_galois_keys(single.rotation_steps());
    const std::vector<Ciphertext> x = {
        f.encryptor->encrypt(f.encoder->encode(std::span<const double>(in[0]), f.scale(), level, n)),
        f.encryptor->encrypt(f.encoder->encode(std::span<const double>(in[1]), f.scale(), level, n))};
    const auto a = single.apply(*f.evaluator, x, gk);
    ASSERT_EQ(a.size(), 2u);
    for (auto hoisting : {he::Hoisting::kLazyGiant, he::Hoisting::kDouble}) {
      he::LinearTransform other(*f.encoder, spec, level, c.giant, c.cache, 0, hoisting);
      ASSERT_EQ(other.hoisting(), hoisting);
      ASSERT_EQ(single.rotation_steps(), other.rotation_steps());
      if (c.cache) {
        EXPECT_EQ(other.plaintext_bytes(),
                  spec.diagonals.size() *
                      he::PackedPlaintext::bytes_at(*f.ctx, level, hoisting == he::Hoisting::kDouble));
      }
      const auto b = other.apply(*f.evaluator, x, gk);
      ASSERT_EQ(b.size(), 2u);
      for (int k = 0; k < 2; ++k) {
        EXPECT_EQ(b[k].level(), level - 1);
        EXPECT_NEAR(b[k].scale() / a[k].scale(), 1.0, 1e-12);
        const auto da = f.encoder->decode_real(f.decryptor->decrypt(a[k]));
        const auto db = f.encoder->decode_real(f.decryptor->decrypt(b[k]));
        const double bits_single = -std::log2(max_error(da, want[k]));
        const double bits_other = -std::log2(max_error(db, want[k]));
        const std::string where = "N = 2^" + std::to_string(c.log_n) + ", level " + std::to_string(level) +
                                  ", block " + std::to_string(k) + ", giant " +
                                  std::to_string(single.giant_step()) +
                                  (hoisting == he::Hoisting::kDouble ? ", double" : ", lazy giant steps");
        EXPECT_GT(bits_single, 17) << where;
        EXPECT_GT(bits_other, 17) << where;
        // Fewer ModDowns: no more noise than the reference (a bit of slack for the
        // rounding of either run).
        EXPECT_GT(bits_other, bits_single - 1.5) << where;
        EXPECT_GT(-std::log2(max_error(da, db)), 17) << where;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Rings, DoubleHoistingTest,
                         ::testing::Values(Case{10, 3, 1, 0, true}, Case{11, 3, 2, 8, true},
                                           Case{11, 4, 2, 0, false}, Case{12, 4, 3, 16, true},
                                           Case{12, 3, 1, 37, false}));

// Sum pooling (unit maps): the rotations are summed over Q_level * P and lowered once.
TEST(DoubleHoisting, UnitMapMatchesSingleHoisting) {
  test::Fixture f(test::toy_params(11, 2, 2));
  const std::size_t n = f.ctx->n() / 2;
  std::mt19937_64 g(5);
  he::LinearTransformSpec unit;
  unit.slots = n;
  unit.unit = true;
  for (int d : {0, 1, 2, 3, 32, 33, 34, 35}) unit.diagonals.push_back({0, 0, d, {}});
  const auto x = random_vector(n, g);
  he::LinearTransform single(*f.encoder, unit, f.ctx->max_level(), 32, true, 0, he::Hoisting::kSingle);
  he::LinearTransform dbl(*f.encoder, unit, f.ctx->max_level(), 32, true, 0, he::Hoisting::kDouble);
  auto gk = f.keygen->create_galois_keys(single.rotation_steps());
  const auto ct =
      f.encryptor->encrypt(f.encoder->encode(std::span<const double>(x), f.scale(), f.ctx->max_level(), n));
  const auto a = f.encoder->decode_real(f.decryptor->decrypt(single.apply(*f.evaluator, {ct}, gk)[0]));
  const auto b = f.encoder->decode_real(f.decryptor->decrypt(dbl.apply(*f.evaluator, {ct}, gk)[0]));
  const auto want = apply_plain(unit, {x})[0];
  EXPECT_GT(-std::log2(max_error(a, want)), 20);
  EXPECT_GT(-std::log2(max_error(b, want)), 20);
}

// The cost model picks double hoisting when ModDowns dominate (many rotations for the
// products) and keeps the reference path when the products over k more limbs would cost
// more than the ModDowns saved.
TEST(DoubleHoisting, CostModelWeighsModDownsAgainstProducts) {
  he::TransformCounts rotations;
  rotations.baby_rotations = 31;
  rotations.giant_rotations = 3;
  rotations.plaintext_mults = 128;
  EXPECT_TRUE(he::double_hoisting_pays(rotations, 1, 5, 2));
  he::TransformCounts products;
  products.baby_rotations = 8;
  products.giant_rotations = 8;
  products.plaintext_mults = 4096;
  EXPECT_FALSE(he::double_hoisting_pays(products, 1, 3, 5));
  EXPECT_EQ(he::choose_hoisting(products, 1, 3, 5), he::Hoisting::kLazyGiant);
  he::TransformCounts babies_only;
  babies_only.baby_rotations = 8;
  babies_only.plaintext_mults = 512;
  EXPECT_EQ(he::choose_hoisting(babies_only, 1, 3, 5), he::Hoisting::kSingle);
}

}  // namespace
}  // namespace veil
