// he::WeightedSum against the plain sparse mat-vec: every row of apply() and apply_row(),
// on a matrix with shared column lists (blocked rows) and rows of their own, with
// positive and negative weights. Precision in bits.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ckks/test_util.hpp"
#include "veil/he/weighted_sum.hpp"

namespace veil {
namespace {

TEST(WeightedSum, MatchesThePlainMatVec) {
  std::mt19937_64 rng(41);
  test::Fixture f(test::toy_params(12, 3, 2));
  const std::size_t slots = 8, inputs = 12;
  std::uniform_real_distribution<double> d(-1, 1);
  // Rows 0-9 share columns {0, 2, 4, 6, 8, 10} (one block of 8, one of 2); rows 10-12 each
  // read their own columns.
  std::vector<std::int64_t> row_ptr{0};
  std::vector<int> col;
  std::vector<double> val;
  for (int r = 0; r < 13; ++r) {
    if (r < 10)
      for (int c = 0; c < 12; c += 2) col.push_back(c);
    else
      for (int c = r - 10; c < 12; c += 3) col.push_back(c);
    while (val.size() < col.size()) val.push_back(d(rng));
    row_ptr.push_back(static_cast<std::int64_t>(col.size()));
  }
  std::vector<std::vector<double>> x(inputs, std::vector<double>(slots));
  std::vector<ckks::Ciphertext> in;
  for (auto& v : x) {
    for (auto& e : v) e = d(rng);
    std::vector<ckks::Complex> z(v.begin(), v.end());
    in.push_back(f.encrypt(z, -1, slots));
  }
  const int level = in[0].level();
  const he::WeightedSum sum(f.ctx, {13, row_ptr, col, val}, level);
  std::vector<ckks::Ciphertext> out = sum.apply(in);
  ASSERT_EQ(out.size(), 13u);
  for (int r = 0; r < 13; ++r) {
    SCOPED_TRACE(r);
    ckks::Ciphertext one = sum.apply_row(r, in);
    for (ckks::Ciphertext* c : {&out[static_cast<std::size_t>(r)], &one}) {
      f.evaluator->rescale_inplace(*c);
      const auto got = f.decrypt(*c);
      double err = 0;
      for (std::size_t s = 0; s < slots; ++s) {
        double want = 0;
        for (auto e = row_ptr[r]; e < row_ptr[r + 1]; ++e)
          want += val[e] * x[static_cast<std::size_t>(col[e])][s];
        err = std::max(err, std::abs(got[s].real() - want));
      }
      EXPECT_GT(-std::log2(err), 15) << "error " << err;
    }
  }
  std::vector<ckks::Ciphertext> lower{in[0]};
  f.evaluator->rescale_inplace(lower[0]);
  EXPECT_THROW(sum.apply(lower), std::invalid_argument);  // weights were built for `level`
}

}  // namespace
}  // namespace veil
