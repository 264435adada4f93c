#include <cmath>

#include "test_util.hpp"

namespace veil::ckks {
namespace {

using test::precision_bits;
using test::random_complex;

TEST(Encrypt, PublicAndSecretKeyEncryptionDecrypt) {
  test::Fixture f(test::toy_params(11, 3));
  auto v = random_complex(1024, 1);
  for (int level : {0, 1, 3}) {
    auto ct = f.encrypt(v, level);
    EXPECT_EQ(ct.level(), level);
    EXPECT_FALSE(ct.seed().has_value());
    EXPECT_GT(precision_bits(f.decrypt(ct), v), 22) << "public key, level " << level;
  }
  Encryptor sym(f.ctx, f.keygen->secret_key());
  auto ct = sym.encrypt(f.encoder->encode(v, f.scale(), 2));
  EXPECT_TRUE(ct.seed().has_value());
  EXPECT_GT(precision_bits(f.decrypt(ct), v), 22) << "secret key";
}

TEST(Encrypt, FusedEncodeAndEncryptDecrypts) {
  test::Fixture f(test::toy_params(11, 3));
  std::vector<double> v(1024);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * static_cast<double>(i)) * 3.0;
  std::vector<Complex> vc(v.begin(), v.end());
  Encryptor sym(f.ctx, f.keygen->secret_key());
  for (const Encryptor* e : {f.encryptor.get(), &sym}) {
    for (int level : {0, 3}) {
      auto ct = e->encrypt(*f.encoder, v, f.scale(), level);
      EXPECT_EQ(ct.level(), level);
      EXPECT_EQ(ct.slots(), 1024u);
      EXPECT_EQ(ct.seed().has_value(), e == &sym);
      EXPECT_GT(precision_bits(f.decrypt(ct), vc), 22)
          << "level " << level << (e == &sym ? ", secret key" : "");
    }
  }
  // Coefficients beyond 2^62 (scale 2^70 at the top level) take the per-limb path.
  auto big = sym.encrypt(*f.encoder, v, std::ldexp(1.0, 70), 3);
  EXPECT_GT(precision_bits(f.decrypt(big), vc), 22);
  // Sparse slots: 16 values in 16 slots.
  std::vector<double> few(v.begin(), v.begin() + 16);
  auto sparse = sym.encrypt(*f.encoder, few, f.scale(), 2, 16);
  EXPECT_EQ(sparse.slots(), 16u);
  EXPECT_GT(precision_bits(f.decrypt(sparse), std::vector<Complex>(few.begin(), few.end())), 22);
}

TEST(Encrypt, CiphertextsAreFreshAndHideTheMessage) {
  test::Fixture f(test::toy_params(10, 1));
  std::vector<Complex> zero(512, 0);
  auto a = f.encrypt(zero), b = f.encrypt(zero);
  EXPECT_NE(a.data(), b.data());
}

TEST(Encrypt, WrongKeyDoesNotDecrypt) {
  test::Fixture f(test::toy_params(10, 1));
  KeyGenerator other(f.ctx);
  Decryptor wrong(f.ctx, other.secret_key());
  auto v = random_complex(512, 2);
  auto got = f.encoder->decode(wrong.decrypt(f.encrypt(v)));
  EXPECT_LT(precision_bits(got, v), 0);  // errors far above 1
}

TEST(Encrypt, KeysFromOtherParametersAreRefused) {
  test::Fixture f(test::toy_params(10, 1));
  auto other = CkksContext::create(test::toy_params(10, 2));
  EXPECT_THROW(Encryptor(other, f.pk), std::invalid_argument);
  EXPECT_THROW(Decryptor(other, f.keygen->secret_key()), std::invalid_argument);
}

}  // namespace
}  // namespace veil::ckks
