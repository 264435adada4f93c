// Homomorphic operations against plain references: ct x pt against schoolbook negacyclic
// products mod t, multiply-accumulate, plaintext and ciphertext additions, modulus
// switching and extraction of chosen coefficients.
#include <gtest/gtest.h>

#include "bfv_test_util.hpp"
#include "error_test_util.hpp"

namespace veil::test {
namespace {

TEST(BfvEvaluator, PlainProductMatchesSchoolbook) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  const auto m = random_mod(n, f.t(), g);
  // Small signed weights within the public L1 bound (4096): 64 nonzero of |w| <= 60.
  std::vector<std::int64_t> w(n, 0);
  for (int k = 0; k < 64; ++k) w[g() % n] = static_cast<std::int64_t>(g() % 121) - 60;
  const auto wp = bfv::Plaintext::from_signed(*f.ctx, w);
  auto ct = f.pk_enc->encrypt(bfv::Plaintext(*f.ctx, m));
  const auto prepared = f.eval->prepare(wp);
  const auto prod = f.eval->multiply_plain(ct, prepared);
  EXPECT_EQ(f.dec->decrypt(prod).coeffs(), negacyclic_mod(m, wp.coeffs(), f.t()));
  // The derived evaluation bound holds for the measured noise.
  double worst = 0;
  for (double v : f.dec->noise(prod)) worst = std::max(worst, std::fabs(v));
  EXPECT_LE(worst, static_cast<double>(bfv::noise_bounds(f.ctx->params()).evaluation));
}

TEST(BfvEvaluator, MultiplyAccumulateAndPlainAdditions) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  const math::Modulus tm(f.t());
  std::vector<bfv::Ciphertext> cts;
  std::vector<bfv::PreparedPlaintext> pts;
  std::vector<u64> want(n, 0);
  for (int k = 0; k < 4; ++k) {
    const auto m = random_mod(n, f.t(), g);
    std::vector<std::int64_t> w(n, 0);
    for (int j = 0; j < 16; ++j) w[g() % n] = static_cast<std::int64_t>(g() % 41) - 20;
    const auto wp = bfv::Plaintext::from_signed(*f.ctx, w);
    cts.push_back(f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, m)));
    pts.push_back(f.eval->prepare(wp));
    const auto prod = negacyclic_mod(m, wp.coeffs(), f.t());
    for (std::size_t j = 0; j < n; ++j) want[j] = tm.add(want[j], prod[j]);
  }
  std::vector<const bfv::Ciphertext*> cp;
  std::vector<const bfv::PreparedPlaintext*> pp;
  for (std::size_t k = 0; k < cts.size(); ++k) {
    cp.push_back(&cts[k]);
    pp.push_back(&pts[k]);
  }
  auto acc = f.eval->multiply_accumulate(cp, pp);
  EXPECT_EQ(f.dec->decrypt(acc).coeffs(), want);
  // Minus a random mask s: W r - s, as in the hybrid preprocessing.
  const auto s = random_mod(n, f.t(), g);
  f.eval->sub_plain_inplace(acc, bfv::Plaintext(*f.ctx, s));
  for (std::size_t j = 0; j < n; ++j) want[j] = tm.sub(want[j], s[j]);
  EXPECT_EQ(f.dec->decrypt(acc).coeffs(), want);
  f.eval->add_plain_inplace(acc, bfv::Plaintext(*f.ctx, s));
  f.eval->add_inplace(acc, cts[0]);
  f.eval->sub_inplace(acc, cts[0]);
  for (std::size_t j = 0; j < n; ++j) want[j] = tm.add(want[j], s[j]);
  EXPECT_EQ(f.dec->decrypt(acc).coeffs(), want);
}

TEST(BfvEvaluator, ModulusSwitchingKeepsTheMessageAndShrinksTheCiphertext) {
  auto prm = bfv::BfvParameters::create(10, {50, 50, 50}, bfv::plaintext_prime(30, 10), 1, 4096, 40, true);
  BfvFixture f(prm);
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const auto m = random_mod(f.ctx->n(), f.t(), g);
  auto ct = f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, m));
  const std::size_t before = ct.data().size();
  f.eval->mod_switch_to_inplace(ct, 1);
  EXPECT_EQ(ct.level(), 1);
  EXPECT_EQ(ct.data().size() * 3, before * 2);
  EXPECT_EQ(f.dec->decrypt(ct).coeffs(), m);
  f.eval->mod_switch_to_inplace(ct, 0);
  EXPECT_EQ(f.dec->decrypt(ct).coeffs(), m);
  EXPECT_NE(what_of([&] { f.eval->mod_switch_to_inplace(ct, 1); }).find("cannot switch"), std::string::npos);
}

TEST(BfvEvaluator, ExtractionKeepsOnlyTheChosenCoefficients) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  const auto m = random_mod(n, f.t(), g);
  auto ct = f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, m));
  f.eval->mod_switch_to_inplace(ct, 0);
  std::vector<std::uint32_t> idx = {0, 7, static_cast<std::uint32_t>(n - 1), 3, 3, 500};
  const auto r = f.eval->extract(ct, idx);
  EXPECT_EQ(r.c0.size(), idx.size());  // one limb, only the chosen coefficients of c0
  EXPECT_EQ(r.c1.size(), n);
  const auto got = f.dec->decrypt(r);
  for (std::size_t k = 0; k < idx.size(); ++k) EXPECT_EQ(got[k], m[idx[k]]) << "index " << idx[k];
  EXPECT_NE(what_of([&] {
              f.eval->extract(ct, std::vector<std::uint32_t>{static_cast<std::uint32_t>(n)});
            }).find("outside the ring"),
            std::string::npos);
}

TEST(BfvEvaluator, RefusesForeignAndMismatchedOperands) {
  BfvFixture f(toy_params()), other(toy_params(4096, 11));
  auto a = f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, {}));
  auto b = other.sk_enc->encrypt(bfv::Plaintext(*other.ctx, {}));
  EXPECT_NE(what_of([&] { f.eval->add_inplace(a, b); }).find("other parameters"), std::string::npos);
  auto c = a;
  f.eval->mod_switch_to_inplace(c, 0);
  EXPECT_NE(what_of([&] { f.eval->add_inplace(a, c); }).find("levels differ"), std::string::npos);
  EXPECT_NE(what_of([&] { bfv::Plaintext(*f.ctx, {f.t()}); }).find("not reduced mod t"), std::string::npos);
}

// 61-bit primes: 128-bit lazy sums must be folded before they overflow (products below
// 2^122, so every 63 terms; 600 terms overflow without folding).
TEST(BfvEvaluator, MultiplyAccumulateOfManyTermsWithWidePrimes) {
  auto prm = bfv::BfvParameters::create(10, {61, 61, 61}, bfv::plaintext_prime(20, 10), 1, 1200, 40, true);
  BfvFixture f(prm);
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const std::size_t n = f.ctx->n();
  const math::Modulus tm(f.t());
  const int terms = 600;
  std::vector<bfv::Ciphertext> cts;
  std::vector<bfv::PreparedPlaintext> pts;
  std::vector<u64> want(n, 0);
  for (int k = 0; k < terms; ++k) {
    const auto m = random_mod(n, f.t(), g);
    std::vector<std::int64_t> w(n, 0);
    w[g() % n] = (k % 2) ? 1 : -1;
    w[g() % n] = 1;
    const auto wp = bfv::Plaintext::from_signed(*f.ctx, w);
    cts.push_back(f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, m)));
    pts.push_back(f.eval->prepare(wp));
    const auto prod = negacyclic_mod(wp.coeffs(), m, f.t());  // sparse first: O(N) per term
    for (std::size_t j = 0; j < n; ++j) want[j] = tm.add(want[j], prod[j]);
  }
  std::vector<const bfv::Ciphertext*> cp;
  std::vector<const bfv::PreparedPlaintext*> pp;
  for (int k = 0; k < terms; ++k) {
    cp.push_back(&cts[k]);
    pp.push_back(&pts[k]);
  }
  const auto acc = f.eval->multiply_accumulate(cp, pp);
  EXPECT_EQ(f.dec->decrypt(acc).coeffs(), want);
  // The lazy sum equals the plain one residue for residue (an overflow of the 128-bit sums
  // would add -k 2^128 consistently to every limb: a wrong ciphertext that may still decrypt).
  auto plain = f.eval->multiply_plain(cts[0], pts[0]);
  for (int k = 1; k < terms; ++k) f.eval->add_inplace(plain, f.eval->multiply_plain(cts[k], pts[k]));
  EXPECT_TRUE(plain.data() == acc.data());
}

}  // namespace
}  // namespace veil::test
