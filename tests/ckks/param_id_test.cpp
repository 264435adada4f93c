// Every CKKS object carries the id of its parameters; the evaluator, encryptor and
// decryptor refuse objects made under other parameters, naming both ids. CKKS encryptors
// and decryptors own their keys.
#include <functional>
#include <string>

#include "ckks/test_util.hpp"
#include "error_test_util.hpp"

namespace veil::ckks {
namespace {

using test::what_of;

bool mentions(const std::string& msg, const std::string& what) { return msg.find(what) != std::string::npos; }

TEST(ParamIds, EvaluatorRefusesForeignOperands) {
  test::Fixture a(test::toy_params(10, 2)), b(test::toy_params(11, 2));
  ASSERT_NE(a.ctx->param_id(), b.ctx->param_id());
  const auto v = test::random_complex(8, 5);
  const Ciphertext ca = a.encrypt(v), cb = b.encrypt(v);
  Ciphertext x = cb;
  const std::string msg = what_of([&] { b.evaluator->add_inplace(x, ca); });
  EXPECT_TRUE(mentions(msg, "second operand belongs to other parameters (id " +
                                std::to_string(a.ctx->param_id()) + "), expected " +
                                std::to_string(b.ctx->param_id())))
      << msg;
  Ciphertext y = ca;
  EXPECT_TRUE(
      mentions(what_of([&] { b.evaluator->rescale_inplace(y); }), "ciphertext belongs to other parameters"));
  const Plaintext pa = a.encoder->encode(v, a.scale(), a.ctx->max_level());
  EXPECT_TRUE(mentions(what_of([&] { b.evaluator->multiply_plain_inplace(x, pa); }),
                       "plaintext belongs to other parameters"));
  Ciphertext x3 = b.evaluator->multiply(cb, cb);  // size 3: relinearisation has work to do
  EXPECT_TRUE(mentions(what_of([&] { b.evaluator->relinearize_inplace(x3, a.rk); }),
                       "key-switching key belongs to other parameters"));
  EXPECT_TRUE(mentions(what_of([&] { b.decryptor->decrypt(ca); }), "ciphertext belongs to other parameters"));
  EXPECT_TRUE(mentions(what_of([&] { b.encryptor->encrypt(pa); }), "plaintext belongs to other parameters"));
  EXPECT_TRUE(
      mentions(what_of([&] { b.encryptor->encrypt(*a.encoder, std::vector<double>{1.0}, a.scale(), 0); }),
               "encoder belongs to other parameters"));
  // Their own parameters are fine.
  EXPECT_NO_THROW(b.evaluator->add_inplace(x, cb));
}

TEST(ParamIds, SameParametersGiveTheSameId) {
  // The id is a digest of the parameters, not of the context object: two contexts made
  // from one parameter set accept each other's objects.
  const auto p = test::toy_params(10, 2);
  test::Fixture a(p);
  auto ctx2 = CkksContext::create(p);
  EXPECT_EQ(a.ctx->param_id(), ctx2->param_id());
  Evaluator eval2(ctx2);
  Ciphertext c = a.encrypt(test::random_complex(8, 6));
  EXPECT_NO_THROW(eval2.add_inplace(c, c));
}

TEST(KeyOwnership, CkksEncryptorFromTemporaryKeys) {
  test::Fixture f(test::toy_params(10, 2));
  auto pk = std::make_unique<rlwe::PublicKey>(f.keygen->create_public_key());
  Encryptor enc(f.ctx, *pk);
  *pk = rlwe::KeyGenerator(f.ctx).create_public_key();  // a reference would follow this
  pk.reset();
  auto sk = std::make_unique<rlwe::SecretKey>(f.keygen->secret_key());
  Decryptor dec(f.ctx, *sk);
  *sk = rlwe::KeyGenerator(f.ctx).secret_key();
  sk.reset();
  const auto v = test::random_complex(f.ctx->max_slots(), 7);
  const auto got = f.encoder->decode(dec.decrypt(enc.encrypt(f.encoder->encode(v, f.scale(), 1))));
  EXPECT_GT(test::precision_bits(got, v), 15) << "seed 7";
}

}  // namespace
}  // namespace veil::ckks
