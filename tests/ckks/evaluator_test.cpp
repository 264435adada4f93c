#include "test_util.hpp"

namespace veil::ckks {
namespace {

using test::precision_bits;
using test::random_complex;

class EvaluatorTest : public ::testing::TestWithParam<int> {  // parameter: dnum
 protected:
  EvaluatorTest() : f(test::toy_params(11, 6, GetParam())) {}
  test::Fixture f;
};

TEST_P(EvaluatorTest, AddSubNegate) {
  auto a = random_complex(1024, 1), b = random_complex(1024, 2);
  auto ca = f.encrypt(a), cb = f.encrypt(b);
  std::vector<Complex> sum(1024), diff(1024), neg(1024);
  for (int i = 0; i < 1024; ++i) {
    sum[i] = a[i] + b[i];
    diff[i] = a[i] - b[i];
    neg[i] = -a[i];
  }
  EXPECT_GT(precision_bits(f.decrypt(f.evaluator->add(ca, cb)), sum), 22);
  EXPECT_GT(precision_bits(f.decrypt(f.evaluator->sub(ca, cb)), diff), 22);
  auto cn = ca;
  f.evaluator->negate_inplace(cn);
  EXPECT_GT(precision_bits(f.decrypt(cn), neg), 22);
}

TEST_P(EvaluatorTest, PlaintextAndConstantOperations) {
  auto a = random_complex(1024, 3), b = random_complex(1024, 4);
  auto ca = f.encrypt(a);
  auto pb = f.encoder->encode(b, f.scale(), f.ctx->max_level());
  auto c = ca;
  f.evaluator->add_plain_inplace(c, pb);
  std::vector<Complex> want(1024);
  for (int i = 0; i < 1024; ++i) want[i] = a[i] + b[i];
  EXPECT_GT(precision_bits(f.decrypt(c), want), 22);

  c = ca;
  f.evaluator->sub_plain_inplace(c, pb);
  for (int i = 0; i < 1024; ++i) want[i] = a[i] - b[i];
  EXPECT_GT(precision_bits(f.decrypt(c), want), 22);

  c = ca;
  f.evaluator->multiply_plain_inplace(c, pb);
  f.evaluator->rescale_inplace(c);
  for (int i = 0; i < 1024; ++i) want[i] = a[i] * b[i];
  EXPECT_GT(precision_bits(f.decrypt(c), want), 20);

  c = ca;
  f.evaluator->add_const_inplace(c, -2.5);
  for (int i = 0; i < 1024; ++i) want[i] = a[i] - 2.5;
  EXPECT_GT(precision_bits(f.decrypt(c), want), 22);

  c = ca;
  f.evaluator->multiply_const_inplace(c, 0.3);
  const double before = ca.scale();
  f.evaluator->rescale_inplace(c);
  EXPECT_DOUBLE_EQ(c.scale(), before);  // default constant scale = the dropped prime
  for (int i = 0; i < 1024; ++i) want[i] = a[i] * 0.3;
  EXPECT_GT(precision_bits(f.decrypt(c), want), 20);

  c = ca;
  f.evaluator->multiply_int_inplace(c, -7);
  EXPECT_EQ(c.level(), ca.level());
  for (int i = 0; i < 1024; ++i) want[i] = a[i] * -7.0;
  EXPECT_GT(precision_bits(f.decrypt(c), want), 20);
}

TEST_P(EvaluatorTest, MultiplyRelinearizeRescaleKeepsTwentyBits) {
  auto a = random_complex(1024, 5), b = random_complex(1024, 6);
  auto ca = f.encrypt(a), cb = f.encrypt(b);
  auto c = f.evaluator->multiply(ca, cb);
  EXPECT_EQ(c.size(), 3u);
  std::vector<Complex> want(1024);
  for (int i = 0; i < 1024; ++i) want[i] = a[i] * b[i];
  EXPECT_GT(precision_bits(f.decrypt(c), want), 20) << "size-3 decryption";
  f.evaluator->relinearize_inplace(c, f.rk);
  EXPECT_EQ(c.size(), 2u);
  f.evaluator->rescale_inplace(c);
  EXPECT_EQ(c.level(), f.ctx->max_level() - 1);
  EXPECT_GT(precision_bits(f.decrypt(c), want), 20);
  auto sq = ca;
  f.evaluator->square_inplace(sq);
  f.evaluator->relinearize_inplace(sq, f.rk);
  for (int i = 0; i < 1024; ++i) want[i] = a[i] * a[i];
  EXPECT_GT(precision_bits(f.decrypt(sq), want), 20);
}

TEST_P(EvaluatorTest, LevelsAreMatchedAutomatically) {
  auto a = random_complex(1024, 7), b = random_complex(1024, 8);
  auto ca = f.encrypt(a), cb = f.encrypt(b, 2);
  auto c = f.evaluator->add(ca, cb);
  EXPECT_EQ(c.level(), 2);
  std::vector<Complex> want(1024);
  for (int i = 0; i < 1024; ++i) want[i] = a[i] + b[i];
  EXPECT_GT(precision_bits(f.decrypt(c), want), 22);
  auto m = f.evaluator->multiply(cb, ca);
  EXPECT_EQ(m.level(), 2);
}

TEST_P(EvaluatorTest, ScaleMismatchIsAClearError) {
  auto ca = f.encrypt(random_complex(1024, 9));
  auto cb = ca;
  f.evaluator->multiply_const_inplace(cb, 1.0);
  try {
    f.evaluator->add_inplace(ca, cb);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("scale mismatch"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Digits, EvaluatorTest, ::testing::Values(1, 3, 7));

TEST(Evaluator, DepthTenChainKeepsPrecision) {
  test::Fixture f(test::toy_params(12, 10, 3));
  auto a = random_complex(2048, 10);
  // Values on the unit circle keep magnitudes stable through repeated squaring-like steps.
  for (auto& x : a) x /= std::abs(x);
  auto b = a;
  auto ct = f.encrypt(a);
  auto want = a;
  for (int d = 0; d < 10; ++d) {
    auto other = f.encrypt(b, ct.level());
    f.evaluator->multiply_relin_inplace(ct, other, f.rk);
    f.evaluator->rescale_inplace(ct);
    for (std::size_t i = 0; i < want.size(); ++i) want[i] *= b[i];
    ASSERT_GT(precision_bits(f.decrypt(ct), want), 18) << "after depth " << d + 1;
  }
  EXPECT_EQ(ct.level(), 0);
  EXPECT_GT(precision_bits(f.decrypt(ct), want), 18);
  EXPECT_THROW(f.evaluator->rescale_inplace(ct), std::invalid_argument);
}

TEST(Evaluator, RelinearizationNeedsAKeyAtTheLevel) {
  test::Fixture f(test::toy_params(10, 4));
  auto low = f.keygen->create_relin_keys(1);
  auto ct = f.encrypt(random_complex(512, 11));
  auto prod = f.evaluator->multiply(ct, ct);
  EXPECT_THROW(f.evaluator->relinearize_inplace(prod, low), std::invalid_argument);
  prod.drop_to_level(1);
  EXPECT_NO_THROW(f.evaluator->relinearize_inplace(prod, low));
}

}  // namespace
}  // namespace veil::ckks
