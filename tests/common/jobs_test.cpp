// Coarse jobs on the process's pool (veil::run_job): at most max_jobs() at once, admitted in
// arrival order, with their inner parallel loops still running.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "veil/common/thread_pool.hpp"

namespace veil {
namespace {

// Jobs 0..limit-1 take every slot and hold it; the others queue one after another (each
// known to be waiting before the next arrives), then all are released. Returns the order in
// which jobs started and the most that ran at once.
std::pair<std::vector<int>, int> queue_and_release(int limit, int jobs) {
  const int saved = max_jobs();
  set_max_jobs(limit);
  std::atomic<int> running{0}, peak{0};
  std::atomic<bool> release{false};
  std::mutex m;
  std::vector<int> order;
  auto job = [&](int i) {
    {
      std::lock_guard lk(m);
      order.push_back(i);
    }
    const int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    // Inner loops still run (on the shared pool or inline) inside a job.
    std::atomic<int> sum{0};
    parallel_for(100, [&](std::size_t k) { sum += static_cast<int>(k); });
    EXPECT_EQ(sum.load(), 4950);
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    --running;
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < jobs; ++i) {
    threads.emplace_back([&, i] { run_job([&] { job(i); }); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline &&
           (i < limit ? running.load() < i + 1 : waiting_jobs() < i + 1 - limit))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(waiting_jobs(), jobs - limit);
  release = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(waiting_jobs(), 0);
  set_max_jobs(saved);
  return {order, peak.load()};
}

TEST(Jobs, AtMostMaxJobsAtOnce) {
  const auto [order, peak] = queue_and_release(2, 6);
  EXPECT_EQ(peak, 2);
  EXPECT_EQ(order.size(), 6u);
}

TEST(Jobs, AdmittedInArrivalOrder) {
  // One slot: each job starts only when the previous one has ended, so the recorded start
  // order is the admission order.
  const auto [order, peak] = queue_and_release(1, 6);
  EXPECT_EQ(peak, 1);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(Jobs, WaitIsReportedAndExceptionsPropagate) {
  const int saved = max_jobs();
  set_max_jobs(1);
  std::thread holder([] { run_job([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); }); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const double waited = run_job([] {});
  holder.join();
  EXPECT_GT(waited, 0.05);
  EXPECT_THROW(run_job([] { throw std::runtime_error("job failed"); }), std::runtime_error);
  EXPECT_EQ(run_job([] {}) < 0.05, true);  // the failed job released its slot
  EXPECT_THROW(set_max_jobs(0), std::invalid_argument);
  set_max_jobs(saved);
}

}  // namespace
}  // namespace veil
