#include "veil/nn/linear.hpp"

#include <gtest/gtest.h>

#include <random>

#include "veil/common/thread_pool.hpp"

namespace veil::nn {
namespace {

// A random rows x cols stage with about `density` of its entries set, rows sorted.
LinearStage random_stage(int rows, int cols, double density, std::mt19937& rng, const std::string& name) {
  LinearStage s;
  s.name = name;
  s.in = Shape{cols, 1, 1};
  s.out = Shape{rows, 1, 1};
  s.weights.rows = rows;
  s.weights.cols = cols;
  s.weights.row_ptr.push_back(0);
  std::uniform_real_distribution<double> u(-1, 1), coin(0, 1);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c)
      if (coin(rng) < density) {
        s.weights.col.push_back(c);
        s.weights.val.push_back(u(rng));
      }
    s.weights.row_ptr.push_back(s.weights.nnz());
  }
  for (int r = 0; r < rows; ++r) s.bias.push_back(u(rng));
  return s;
}

std::vector<double> dense(const SparseMatrix& m) {
  std::vector<double> d(static_cast<std::size_t>(m.rows) * m.cols, 0.0);
  for (int r = 0; r < m.rows; ++r)
    for (std::int64_t e = m.row_ptr[r]; e < m.row_ptr[r + 1]; ++e)
      d[static_cast<std::size_t>(r) * m.cols + m.col[e]] = m.val[e];
  return d;
}

// compose (the two-pass product, its rows split over the thread pool) against the plain
// dense product B * A and bias B * a + b, in one thread and in several: the same CSR
// arrays, rows sorted and free of duplicates, values equal up to rounding.
TEST(Linear, ComposeMatchesTheDenseProductInAnyNumberOfThreads) {
  std::mt19937 rng(7);
  const LinearStage a = random_stage(90, 70, 0.08, rng, "a");
  const LinearStage b = random_stage(130, 90, 0.05, rng, "b");
  const std::vector<double> da = dense(a.weights), db = dense(b.weights);
  std::vector<double> want(130 * 70, 0.0), want_bias(b.bias);
  for (int r = 0; r < 130; ++r)
    for (int k = 0; k < 90; ++k) {
      const double bv = db[static_cast<std::size_t>(r) * 90 + k];
      want_bias[r] += bv * a.bias[k];
      for (int c = 0; c < 70; ++c)
        want[static_cast<std::size_t>(r) * 70 + c] += bv * da[static_cast<std::size_t>(k) * 70 + c];
    }
  const int saved = num_threads();
  std::vector<LinearStage> results;
  for (int threads : {1, 2, 5}) {
    set_num_threads(threads);
    results.push_back(compose(a, b));
  }
  set_num_threads(saved);
  for (const LinearStage& s : results) {
    validate(s);
    EXPECT_EQ(s.name, "a+b");
    const SparseMatrix& m = s.weights;
    for (int r = 0; r < m.rows; ++r)
      for (std::int64_t e = m.row_ptr[r] + 1; e < m.row_ptr[r + 1]; ++e) ASSERT_LT(m.col[e - 1], m.col[e]);
    const std::vector<double> got = dense(m);
    for (std::size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-12) << i;
    for (int r = 0; r < 130; ++r) ASSERT_NEAR(s.bias[r], want_bias[r], 1e-12);
    EXPECT_GT(m.nnz(), 0);
    EXPECT_EQ(m.row_ptr, results[0].weights.row_ptr);
    EXPECT_EQ(m.col, results[0].weights.col);
    EXPECT_EQ(m.val, results[0].weights.val);
    EXPECT_EQ(s.bias, results[0].bias);
  }
  // Shapes that do not chain are refused by name.
  const LinearStage c = random_stage(5, 7, 0.5, rng, "c");
  try {
    compose(a, c);
    FAIL() << "composed mismatched stages";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'a' (90 outputs) with 'c' (7 inputs)"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace veil::nn
