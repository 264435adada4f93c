// The process-wide pool behind parallel_for: every index runs exactly once, nesting runs
// inline, exceptions reach the caller, and loops from several threads are serialised
// rather than interleaved. Also run under ThreadSanitizer by scripts/sanitize.sh.
#include "veil/common/thread_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

namespace veil {
namespace {

class ThreadPoolTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    saved_ = num_threads();
    set_num_threads(GetParam());
  }
  void TearDown() override { set_num_threads(saved_); }
  int saved_ = 1;
};

TEST_P(ThreadPoolTest, EveryIndexRunsExactlyOnce) {
  EXPECT_EQ(num_threads(), GetParam());
  for (std::size_t n : {0u, 1u, 2u, 7u, 1000u}) {
    std::vector<std::atomic<int>> hits(n);
    parallel_for(n, [&](std::size_t i) { hits[i].fetch_add(1); });
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST_P(ThreadPoolTest, NestedLoopsRunInlineAndComplete) {
  std::vector<std::atomic<int>> hits(16 * 16);
  parallel_for(
      16, [&](std::size_t i) { parallel_for(16, [&](std::size_t j) { hits[i * 16 + j].fetch_add(1); }); });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST_P(ThreadPoolTest, ExceptionReachesTheCallerAndThePoolStaysUsable) {
  EXPECT_THROW(parallel_for(100,
                            [](std::size_t i) {
                              if (i == 37) throw std::runtime_error("index 37");
                            }),
               std::runtime_error);
  std::atomic<std::size_t> sum{0};
  parallel_for(100, [&](std::size_t i) { sum.fetch_add(i); });
  EXPECT_EQ(sum.load(), 4950u);
}

TEST_P(ThreadPoolTest, LoopsFromSeveralThreadsAreSerialisedCorrectly) {
  // Server sessions call parallel_for from their own threads; each loop must see only its
  // own indices and finish with its own result.
  constexpr int kCallers = 4;
  std::vector<std::uint64_t> sums(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<std::uint64_t> out(257, 0);
        parallel_for(out.size(), [&](std::size_t i) { out[i] = (c + 1) * i; });
        sums[c] += std::accumulate(out.begin(), out.end(), std::uint64_t{0});
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) EXPECT_EQ(sums[c], 20u * (c + 1) * (256u * 257u / 2)) << c;
}

INSTANTIATE_TEST_SUITE_P(Threads, ThreadPoolTest, ::testing::Values(1, 2, 4));

TEST(ThreadPool, RejectsAbsurdThreadCounts) {
  EXPECT_THROW(set_num_threads(0), std::invalid_argument);
  EXPECT_THROW(set_num_threads(100000), std::invalid_argument);
}

}  // namespace
}  // namespace veil
