// Encrypted building blocks against their plaintext definitions, precision in bits.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ckks/test_util.hpp"
#include "he/he_test_util.hpp"
#include "veil/he/linear_transform.hpp"
#include "veil/he/polynomial.hpp"

namespace veil {
namespace {

using ckks::Ciphertext;
using test::apply_plain;
using test::max_error;
using test::random_vector;

struct HeFixture {
  test::Fixture f;
  explicit HeFixture(int levels) : f(test::toy_params(12, levels, 2)) {}
  explicit HeFixture(const ckks::CkksParameters& p) : f(p) {}
  Ciphertext encrypt(const std::vector<double>& v, std::size_t slots) const {
    auto pt = f.encoder->encode(std::span<const double>(v), f.scale(), f.ctx->max_level(), slots);
    return f.encryptor->encrypt(pt);
  }
  std::vector<double> decrypt(const Ciphertext& c) const {
    return f.encoder->decode_real(f.decryptor->decrypt(c));
  }
};

class LinearTransformTest : public ::testing::TestWithParam<int> {};

TEST_P(LinearTransformTest, MatchesPlainOnRandomSparseMaps) {
  const int giant = GetParam();  // 0: automatic
  HeFixture h(3);
  const std::size_t n = 256;
  std::mt19937_64 g(1234 + giant);
  he::LinearTransformSpec spec;
  spec.slots = n;
  spec.in_blocks = 2;
  spec.out_blocks = 2;
  std::uniform_int_distribution<int> step(0, n - 1);
  for (int bo = 0; bo < 2; ++bo)
    for (int bi = 0; bi < 2; ++bi)
      for (int k = 0; k < 12; ++k) spec.diagonals.push_back({bo, bi, step(g), random_vector(n, g)});
  spec.bias = {random_vector(n, g), random_vector(n, g)};
  spec.fold_steps = {64, 128};

  std::vector<std::vector<double>> in = {random_vector(n, g), random_vector(n, g)};
  std::vector<int> steps = he::rotation_steps(spec, giant > 0 ? giant : he::choose_giant_step(spec));
  auto gk = h.f.keygen->create_galois_keys(steps);
  he::LinearTransform lt(*h.f.encoder, spec, h.f.ctx->max_level(), giant);
  auto out = lt.apply(*h.f.evaluator, {h.encrypt(in[0], n), h.encrypt(in[1], n)}, gk);
  auto want = apply_plain(spec, in);
  ASSERT_EQ(out.size(), 2u);
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(out[b].level(), h.f.ctx->max_level() - 1);
    const double err = max_error(h.decrypt(out[b]), want[b]);
    EXPECT_GT(-std::log2(err), 18) << "block " << b << " giant " << lt.giant_step();
  }
}

// 24 and 100 do not divide the slot count: offsets past the wrap then take whichever of
// d and d - slots shares a baby step.
INSTANTIATE_TEST_SUITE_P(GiantSteps, LinearTransformTest, ::testing::Values(0, 1, 16, 256, 24, 100));

TEST(LinearTransform, UnitMapUsesNoLevelAndOnTheFlyEncodingMatchesCache) {
  HeFixture h(2);
  const std::size_t n = 128;
  std::mt19937_64 g(99);
  he::LinearTransformSpec unit;
  unit.slots = n;
  unit.unit = true;
  for (int d : {0, 1, 16, 17}) unit.diagonals.push_back({0, 0, d, {}});
  auto x = random_vector(n, g);
  auto gk = h.f.keygen->create_galois_keys({1, 16, 17, 3, 5, 9});
  he::LinearTransform lt(*h.f.encoder, unit, h.f.ctx->max_level());
  auto out = lt.apply(*h.f.evaluator, {h.encrypt(x, n)}, gk);
  EXPECT_EQ(out[0].level(), h.f.ctx->max_level());
  EXPECT_GT(-std::log2(max_error(h.decrypt(out[0]), apply_plain(unit, {x})[0])), 20);

  he::LinearTransformSpec w;
  w.slots = n;
  for (int d : {0, 3, 5, 9}) w.diagonals.push_back({0, 0, d, random_vector(n, g)});
  he::LinearTransform cached(*h.f.encoder, w, h.f.ctx->max_level(), 4, true);
  he::LinearTransform lazy(*h.f.encoder, w, h.f.ctx->max_level(), 4, false);
  EXPECT_GT(cached.plaintext_bytes(), 0u);
  EXPECT_EQ(lazy.plaintext_bytes(), 0u);
  auto gk2 = h.f.keygen->create_galois_keys(cached.rotation_steps());
  auto a = h.decrypt(cached.apply(*h.f.evaluator, {h.encrypt(x, n)}, gk2)[0]);
  auto b = h.decrypt(lazy.apply(*h.f.evaluator, {h.encrypt(x, n)}, gk2)[0]);
  auto want = apply_plain(w, {x})[0];
  EXPECT_GT(-std::log2(max_error(a, want)), 20);
  EXPECT_GT(-std::log2(max_error(b, want)), 20);
}

// The cache stores each limb of a diagonal packed by its prime's width (he/mac.hpp) and
// must match encoding on the fly and the plain map; `residue_bytes` is what one
// coefficient of a diagonal takes over all its limbs.
void check_packed_cache(const ckks::CkksParameters& params, double residue_bytes) {
  HeFixture h(params);
  const std::size_t n = 256;
  std::mt19937_64 g(7);
  he::LinearTransformSpec w;
  w.slots = n;
  for (int d : {0, 1, 2, 5, 17, 40}) w.diagonals.push_back({0, 0, d, random_vector(n, g)});
  const int level = h.f.ctx->max_level();
  // Single hoisting: diagonals over Q_level only (double hoisting adds the special limbs,
  // tests/he/double_hoisting_test.cpp).
  he::LinearTransform cached(*h.f.encoder, w, level, 4, true, 0, he::Hoisting::kSingle);
  he::LinearTransform lazy(*h.f.encoder, w, level, 4, false);
  EXPECT_EQ(he::PackedPlaintext::bytes_at(*h.f.ctx, level), h.f.ctx->n() * residue_bytes);
  EXPECT_EQ(cached.plaintext_bytes(), w.diagonals.size() * he::PackedPlaintext::bytes_at(*h.f.ctx, level));
  const auto x = random_vector(n, g);
  auto gk = h.f.keygen->create_galois_keys(cached.rotation_steps());
  const auto a = h.decrypt(cached.apply(*h.f.evaluator, {h.encrypt(x, n)}, gk)[0]);
  const auto b = h.decrypt(lazy.apply(*h.f.evaluator, {h.encrypt(x, n)}, gk)[0]);
  const auto want = apply_plain(w, {x})[0];
  EXPECT_GT(-std::log2(max_error(a, want)), 15);
  EXPECT_GT(-std::log2(max_error(b, want)), 15);
}

// 33-bit primes (the planner's 33-bit scales) take 4.25 bytes a residue; a 50-bit base
// prime stays whole (8).
TEST(LinearTransform, PackedCacheMatchesOnTheFlyEncoding) {
  const auto params = ckks::CkksParameters::create(12, {50, 33, 33}, {60}, 33, 3, /*allow_insecure=*/true);
  ASSERT_NO_FATAL_FAILURE(check_packed_cache(params, 2 * 4.25 + 8));
}

// The latency mode's chains: 30-bit primes take 4 bytes, a 42-bit base prime 6.
TEST(LinearTransform, PackedCacheStoresEachLimbByItsWidth) {
  const auto params =
      ckks::CkksParameters::create(12, {42, 30, 30, 30}, {60}, 30, 4, /*allow_insecure=*/true);
  ASSERT_NO_FATAL_FAILURE(check_packed_cache(params, 3 * 4 + 6));
}

TEST(LinearTransform, RejectsBadInputs) {
  HeFixture h(2);
  he::LinearTransformSpec s;
  s.slots = 64;
  s.diagonals.push_back({0, 1, 0, std::vector<double>(64, 1.0)});
  EXPECT_THROW(he::LinearTransform(*h.f.encoder, s, 1), std::invalid_argument);
  s.diagonals = {{0, 0, 70, std::vector<double>(64, 1.0)}};
  EXPECT_THROW(he::LinearTransform(*h.f.encoder, s, 1), std::invalid_argument);
  s.diagonals = {{0, 0, 1, std::vector<double>(64, 1.0)}};
  he::LinearTransform lt(*h.f.encoder, s, 1);
  auto gk = h.f.keygen->create_galois_keys({1});
  EXPECT_THROW(lt.apply(*h.f.evaluator, {}, gk), std::invalid_argument);
  // Wrong slot count.
  std::vector<double> v(32, 0.5);
  EXPECT_THROW(lt.apply(*h.f.evaluator, {h.encrypt(v, 32)}, gk), std::invalid_argument);
}

struct PolyCase {
  std::vector<double> coeffs;
  int depth;
};

class PolynomialTest : public ::testing::TestWithParam<PolyCase> {};

TEST_P(PolynomialTest, MatchesHornerWithStatedDepth) {
  const PolyCase& pc = GetParam();
  EXPECT_EQ(he::polynomial_depth(pc.coeffs), pc.depth);
  HeFixture h(4);
  std::mt19937_64 g(7);
  const std::size_t n = 512;
  auto x = random_vector(n, g, 4.0);
  auto out = he::evaluate_polynomial(*h.f.evaluator, h.encrypt(x, n), pc.coeffs, h.f.rk);
  EXPECT_EQ(out.level(), h.f.ctx->max_level() - pc.depth);
  std::vector<double> want(n);
  for (std::size_t i = 0; i < n; ++i) {
    double acc = 0;
    for (auto it = pc.coeffs.rbegin(); it != pc.coeffs.rend(); ++it) acc = acc * x[i] + *it;
    want[i] = acc;
  }
  EXPECT_GT(-std::log2(max_error(h.decrypt(out), want)), 14);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PolynomialTest,
    ::testing::Values(PolyCase{{0.5, 1.0}, 0}, PolyCase{{0.5, -2.0}, 1}, PolyCase{{0.3, 0.7, 1.0}, 1},
                      PolyCase{{0.3, 0.7, 0.25}, 2}, PolyCase{{0.1, -0.2, 0.3, 1.0}, 2},
                      PolyCase{{0.1, 0.5, 0.2, 0.0, 1.0}, 2}, PolyCase{{-0.3, 0.5, 0.2, 0.1, 1.0}, 2},
                      PolyCase{{0.1, 0.5, 0.125, 0.0, 0.01}, 3}, PolyCase{{0.2, 0.0, 1.0, 0.0, 0.0}, 1}));

}  // namespace
}  // namespace veil

namespace veil {
namespace {

TEST(Polynomial, LazyQuadraticKeepsLevelAndThreePolynomials) {
  HeFixture h(3);
  std::mt19937_64 g(21);
  const std::size_t n = 256;
  auto x = random_vector(n, g, 4.0);
  const std::vector<double> c = {0.3, -0.7, 1.0};
  auto ct = h.encrypt(x, n);
  auto out = he::evaluate_polynomial(*h.f.evaluator, ct, c, h.f.rk, /*relinearize_result=*/false);
  EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(out.level(), ct.level());
  std::vector<double> want(n);
  for (std::size_t i = 0; i < n; ++i) want[i] = x[i] * x[i] - 0.7 * x[i] + 0.3;
  EXPECT_GT(-std::log2(max_error(h.decrypt(out), want)), 20);
}

}  // namespace
}  // namespace veil
