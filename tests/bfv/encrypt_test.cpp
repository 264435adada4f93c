// Encryption round trips (secret and public key), exact decryption over several primes
// and at every level, and the batching encoder.
#include <gtest/gtest.h>

#include "bfv_test_util.hpp"
#include "error_test_util.hpp"

namespace veil::test {
namespace {

TEST(BfvEncrypt, RoundTripSecretAndPublicKey) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  for (int rep = 0; rep < 3; ++rep) {
    const auto m = random_mod(f.ctx->n(), f.t(), g);
    const bfv::Plaintext p(*f.ctx, m);
    EXPECT_EQ(f.dec->decrypt(f.sk_enc->encrypt(p)).coeffs(), m);
    EXPECT_EQ(f.dec->decrypt(f.pk_enc->encrypt(p)).coeffs(), m);
  }
  // Secret-key ciphertexts keep the seed of c1 (seed-compressed uploads).
  EXPECT_TRUE(f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, {})).seed().has_value());
}

TEST(BfvEncrypt, ExactDecryptionOverManyPrimesAndLevels) {
  // Four primes of 60, 55, 50, 45 bits and a 59-bit t: t x / Q reaches 2^200, far beyond
  // doubles; every level must decrypt exactly after switching.
  const u64 t = bfv::plaintext_prime(59, 10);
  auto prm = bfv::BfvParameters::create(10, {60, 55, 50, 45, 50, 50}, t, 5, 1, 40, true);
  BfvFixture f(prm);
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  const auto m = random_mod(f.ctx->n(), t, g);
  auto ct = f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, m));
  for (int level = f.ctx->max_level(); level >= 0; --level) {
    f.eval->mod_switch_to_inplace(ct, level);
    ASSERT_EQ(ct.level(), level);
    if (level >= 2) {
      EXPECT_EQ(f.dec->decrypt(ct).coeffs(), m) << "level " << level;
    }
  }
  // Extremes of the message range: 0, 1, t-1, (t-1)/2, (t+1)/2.
  std::vector<u64> edge(f.ctx->n(), 0);
  const u64 vals[] = {0, 1, t - 1, (t - 1) / 2, (t + 1) / 2};
  for (std::size_t i = 0; i < edge.size(); ++i) edge[i] = vals[i % 5];
  EXPECT_EQ(f.dec->decrypt(f.pk_enc->encrypt(bfv::Plaintext(*f.ctx, edge))).coeffs(), edge);
}

// Decryption of arbitrary phases, including the hardest ones next to a rounding tie
// (t x / Q within 1/Q of k + 1/2), against 128-bit arithmetic (toy Q < 2^97, t < 2^20).
TEST(BfvEncrypt, DecryptionRoundsExactlyNextToTies) {
  BfvFixture f(toy_params());
  using u128 = unsigned __int128;
  const std::size_t n = f.ctx->n();
  const u128 q0 = f.ctx->modulus(0).value(), q1 = f.ctx->modulus(1).value(), big_q = q0 * q1;
  const u128 t = f.t();
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  std::vector<u128> x(n);
  for (std::size_t j = 0; j < n; ++j) {
    if (j % 2) {
      x[j] = ((static_cast<u128>(g()) << 64) | g()) % big_q;
    } else {
      // floor((2k + 1) Q / 2t) + d, d in {-1, 0, 1}.
      const u128 k = g() % f.t();
      const u128 at = ((2 * k + 1) * big_q) / (2 * t);
      x[j] = (at + (j / 2) % 3 + big_q - 1) % big_q;
    }
  }
  // The ciphertext (x, 0): c0 + c1 s = x.
  bfv::Ciphertext ct(*f.ctx, 2, f.ctx->max_level());
  for (std::size_t i = 0; i < 2; ++i) {
    const u128 qi = i == 0 ? q0 : q1;
    for (std::size_t j = 0; j < n; ++j) {
      ct.limb(0, i)[j] = static_cast<u64>(x[j] % qi);
      ct.limb(1, i)[j] = 0;
    }
    f.ctx->ntt(i).forward(ct.limb(0, i));
  }
  const auto got = f.dec->decrypt(ct).coeffs();
  for (std::size_t j = 0; j < n; ++j) {
    const u64 want = static_cast<u64>(((2 * t * x[j] + big_q) / (2 * big_q)) % t);
    ASSERT_EQ(got[j], want) << "coefficient " << j;
  }
}

TEST(BfvEncrypt, NoiseOfFreshCiphertextsWithinTheDerivedBounds) {
  BfvFixture f(toy_params());
  const auto nb = bfv::noise_bounds(f.ctx->params());
  std::mt19937_64 g(1);
  const bfv::Plaintext p(*f.ctx, random_mod(f.ctx->n(), f.t(), g));
  double worst_sk = 0, worst_pk = 0;
  for (double v : f.dec->noise(f.sk_enc->encrypt(p))) worst_sk = std::max(worst_sk, std::fabs(v));
  for (double v : f.dec->noise(f.pk_enc->encrypt(p))) worst_pk = std::max(worst_pk, std::fabs(v));
  EXPECT_LE(worst_sk, static_cast<double>(nb.fresh_sk));
  EXPECT_LE(worst_pk, static_cast<double>(nb.fresh_pk));
  EXPECT_GT(worst_sk, 0);
}

TEST(BfvEncoder, BatchingRoundTripAndSlotwiseProducts) {
  BfvFixture f(toy_params());
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 g(seed);
  bfv::BatchEncoder enc(f.ctx);
  const auto a = random_mod(enc.slots(), f.t(), g), b = random_mod(enc.slots(), f.t(), g);
  EXPECT_EQ(enc.decode(enc.encode(a)), a);
  auto ct = f.sk_enc->encrypt(enc.encode(a));
  f.eval->multiply_plain_inplace(ct, f.eval->prepare(enc.encode(b)));
  const auto got = enc.decode(f.dec->decrypt(ct));
  const math::Modulus tm(f.t());
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(got[i], tm.mul(a[i], b[i])) << "slot " << i;
}

TEST(BfvEncoder, BatchingNeedsAFriendlyPrime) {
  // t = 2^16 + 1 is prime but only 1 mod 2^17 > 2N for N = 2^10? It is 1 mod 2^16: fine for
  // batching at N = 2^10. t = 65537 * 0 + 257 is 1 mod 2^8 only: coefficient encoding.
  auto prm = bfv::BfvParameters::create(10, {46, 50}, 257, 0, 1, 40, true);
  EXPECT_FALSE(prm.batching());
  auto ctx = bfv::BfvContext::create(prm);
  EXPECT_NE(what_of([&] { bfv::BatchEncoder e(ctx); }).find("SIMD batching needs a prime t = 1 mod 2N"),
            std::string::npos);
  // Coefficient encoding still works with this t.
  BfvFixture f(prm);
  std::mt19937_64 g(5);
  const auto m = random_mod(f.ctx->n(), 257, g);
  EXPECT_EQ(f.dec->decrypt(f.sk_enc->encrypt(bfv::Plaintext(*f.ctx, m))).coeffs(), m);
}

}  // namespace
}  // namespace veil::test
