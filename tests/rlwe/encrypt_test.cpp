// The scheme-free core on its own: integer encryption round trips (the base of BFV),
// encryptors and decryptors that own their keys, and parameter-id checks.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "error_test_util.hpp"
#include "veil/rlwe/encryptor.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::rlwe {
namespace {

// N = 2^10, a 60-bit prime and two 40-bit primes, one 61-bit special prime: insecure toy
// parameters, by explicit opt-in.
ContextPtr toy_context(int first_bits = 60) {
  return std::make_shared<const Context>(Parameters::create(10, {first_bits, 40, 40}, {61, 61}, 1, true));
}

// Small messages times Delta, so the error (a few hundred at most) rounds away and the
// decryption is exact.
constexpr std::int64_t kDelta = std::int64_t{1} << 24;

std::vector<std::int64_t> random_message(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<std::int64_t> d(-1000, 1000);
  std::vector<std::int64_t> m(n);
  for (auto& x : m) x = d(g);
  return m;
}

std::vector<std::int64_t> scaled(std::vector<std::int64_t> m) {
  for (auto& x : m) x *= kDelta;
  return m;
}

std::vector<std::int64_t> unscaled(const std::vector<std::int64_t>& v) {
  std::vector<std::int64_t> m(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) m[i] = std::llround(static_cast<double>(v[i]) / kDelta);
  return m;
}

TEST(IntegerEncryption, SecretKeyRoundTripIsExact) {
  auto ctx = toy_context();
  KeyGenerator kg(ctx);
  Encryptor enc(ctx, kg.secret_key());
  Decryptor dec(ctx, kg.secret_key());
  const auto m = random_message(ctx->n(), 1);
  const Ciphertext ct = enc.encrypt_integer(scaled(m), 0);
  EXPECT_EQ(ct.param_id(), ctx->param_id());
  EXPECT_TRUE(ct.seed().has_value());
  const auto got = dec.decrypt_integer(ct);
  EXPECT_EQ(unscaled(got), m) << "seed 1";
  // The error is small: a few sigma for a symmetric encryption.
  for (std::size_t i = 0; i < m.size(); ++i) EXPECT_LE(std::llabs(got[i] - m[i] * kDelta), 40) << "i = " << i;
}

TEST(IntegerEncryption, PublicKeyRoundTripIsExact) {
  auto ctx = toy_context();
  KeyGenerator kg(ctx);
  Encryptor enc(ctx, kg.create_public_key());
  Decryptor dec(ctx, kg.secret_key());
  const auto m = random_message(ctx->n(), 2);
  EXPECT_EQ(unscaled(dec.decrypt_integer(enc.encrypt_integer(scaled(m), 0))), m) << "seed 2";
  // Zero encrypts to a small polynomial.
  for (auto v : dec.decrypt_integer(enc.encrypt_zero(0))) EXPECT_LT(std::llabs(v), kDelta / 2);
}

TEST(IntegerEncryption, DecryptIntegerNeedsLevelZero) {
  auto ctx = toy_context();
  KeyGenerator kg(ctx);
  Encryptor enc(ctx, kg.secret_key());
  Decryptor dec(ctx, kg.secret_key());
  EXPECT_THROW(dec.decrypt_integer(enc.encrypt_zero(ctx->max_level())), std::invalid_argument);
}

// An encryptor built from a key that is then overwritten and destroyed still encrypts
// under the original key: it owns a copy, it does not refer to the caller's object.
TEST(KeyOwnership, EncryptorOutlivesItsKeyArgument) {
  auto ctx = toy_context();
  KeyGenerator kg(ctx), other(ctx);
  auto pk = std::make_unique<PublicKey>(kg.create_public_key());
  Encryptor enc(ctx, *pk);
  *pk = other.create_public_key();  // a reference would now encrypt under `other`
  pk.reset();
  Encryptor from_temporary(ctx, KeyGenerator(ctx, kg.secret_key()).secret_key());
  Decryptor dec(ctx, kg.secret_key());
  const auto m = random_message(ctx->n(), 3);
  EXPECT_EQ(unscaled(dec.decrypt_integer(enc.encrypt_integer(scaled(m), 0))), m);
  EXPECT_EQ(unscaled(dec.decrypt_integer(from_temporary.encrypt_integer(scaled(m), 0))), m);
}

TEST(KeyOwnership, DecryptorOutlivesItsKeyArgument) {
  auto ctx = toy_context();
  KeyGenerator kg(ctx), other(ctx);
  auto sk = std::make_unique<SecretKey>(kg.secret_key());
  Decryptor dec(ctx, *sk);
  *sk = other.secret_key();
  sk.reset();
  Encryptor enc(ctx, kg.secret_key());
  const auto m = random_message(ctx->n(), 4);
  EXPECT_EQ(unscaled(dec.decrypt_integer(enc.encrypt_integer(scaled(m), 0))), m);
}

using test::what_of;

TEST(ParamIds, ForeignObjectsAreRefusedWithBothIds) {
  auto a = toy_context(60), b = toy_context(59);
  ASSERT_NE(a->param_id(), b->param_id());
  KeyGenerator ka(a), kb(b);
  Encryptor enc_a(a, ka.secret_key());
  Decryptor dec_b(b, kb.secret_key());
  const Ciphertext ct = enc_a.encrypt_zero(0);
  const std::string msg = what_of([&] { dec_b.decrypt(ct); });
  EXPECT_NE(msg.find("ciphertext belongs to other parameters (id " + std::to_string(a->param_id()) +
                     "), expected " + std::to_string(b->param_id())),
            std::string::npos)
      << msg;
  EXPECT_NE(what_of([&] { Encryptor(b, ka.secret_key()); }).find("secret key belongs to other parameters"),
            std::string::npos);
  EXPECT_NE(
      what_of([&] { Encryptor(b, ka.create_public_key()); }).find("public key belongs to other parameters"),
      std::string::npos);
  EXPECT_NE(what_of([&] { Decryptor(b, ka.secret_key()); }).find("belongs to other parameters"),
            std::string::npos);
  Plaintext pt(*a, 0);
  std::fill(pt.data().begin(), pt.data().end(), 0);
  EXPECT_NE(what_of([&] {
              Encryptor(b, kb.secret_key()).encrypt(pt);
            }).find("plaintext belongs to other parameters"),
            std::string::npos);
  // The same objects under their own parameters are accepted.
  EXPECT_NO_THROW(Decryptor(a, ka.secret_key()).decrypt(ct));
}

TEST(Parameters, OneDigitSizeEverywhere) {
  EXPECT_EQ(key_switch_digit_size(5, 1), 5);
  EXPECT_EQ(key_switch_digit_size(5, 2), 3);
  EXPECT_EQ(key_switch_digit_size(5, 5), 1);
  auto ctx =
      std::make_shared<const Context>(Parameters::create(10, {60, 40, 40, 40, 40}, {61, 61, 61}, 2, true));
  EXPECT_EQ(ctx->alpha(), 3);
  EXPECT_EQ(ctx->num_digits(4), 2);
  EXPECT_EQ(ctx->num_digits(2), 1);
}

}  // namespace
}  // namespace veil::rlwe
