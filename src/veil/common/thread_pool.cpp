#include "veil/common/thread_pool.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "veil/common/error.hpp"

namespace veil {

namespace {

thread_local bool in_parallel_region = false;

class Pool {
 public:
  explicit Pool(int threads) { resize(threads); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int threads) {
    stop();
    shutdown_ = false;
    for (int t = 1; t < threads; ++t) workers_.emplace_back([this] { work(); });
  }

  void run(std::size_t n, const std::function<void(std::size_t)>& fn) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);  // one loop at a time
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      active_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    drain();
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return active_ == 0; });
    fn_ = nullptr;
    if (error_) {
      auto e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

 private:
  void drain() {
    in_parallel_region = true;
    for (;;) {
      std::size_t i = next_.fetch_add(1);
      if (i >= n_) break;
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
    }
    in_parallel_region = false;
  }

  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return shutdown_ || generation_ != seen; });
        if (shutdown_) return;
        seen = generation_;
      }
      drain();
      std::lock_guard<std::mutex> lk(m_);
      if (--active_ == 0) done_cv_.notify_one();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::mutex run_mutex_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(std::size_t)>* fn_ = nullptr;
  std::size_t n_ = 0;
  std::atomic<std::size_t> next_{0};
  int active_ = 0;
  std::uint64_t generation_ = 0;
  bool shutdown_ = false;
  std::exception_ptr error_;
};

int default_threads() {
  if (const char* env = std::getenv("VEIL_THREADS")) {
    int n = std::atoi(env);
    if (n >= 1) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::mutex pool_mutex;
Pool& pool() {
  static Pool p(default_threads());
  return p;
}

// FIFO admission of coarse jobs: tickets handed out in arrival order, served in that order
// (a bare semaphore would let late arrivals overtake waiting ones).
class JobGate {
 public:
  void set_limit(int n) {
    {
      std::lock_guard<std::mutex> lk(m_);
      limit_ = n;
    }
    cv_.notify_all();
  }
  int limit() {
    std::lock_guard<std::mutex> lk(m_);
    return limit_;
  }
  int waiting() {
    std::lock_guard<std::mutex> lk(m_);
    return static_cast<int>(next_ticket_ - serving_);
  }
  double run(const std::function<void()>& fn) {
    const auto start = std::chrono::steady_clock::now();
    {
      std::unique_lock<std::mutex> lk(m_);
      const std::uint64_t ticket = next_ticket_++;
      cv_.wait(lk, [&] { return ticket == serving_ && running_ < limit_; });
      ++serving_;
      ++running_;
    }
    cv_.notify_all();  // the next ticket may start too, if a slot is left
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    struct Release {
      JobGate& g;
      ~Release() {
        {
          std::lock_guard<std::mutex> lk(g.m_);
          --g.running_;
        }
        g.cv_.notify_all();
      }
    } release{*this};
    fn();
    return waited;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int limit_ = 2, running_ = 0;
  std::uint64_t next_ticket_ = 0, serving_ = 0;
};

JobGate& job_gate() {
  static JobGate g;
  return g;
}

}  // namespace

void set_max_jobs(int n) {
  VEIL_REQUIRE(n >= 1 && n <= 1024, "job count must be in 1..1024, got " << n);
  job_gate().set_limit(n);
}

int max_jobs() { return job_gate().limit(); }

double run_job(const std::function<void()>& fn) { return job_gate().run(fn); }

int waiting_jobs() { return job_gate().waiting(); }

void set_num_threads(int n) {
  VEIL_REQUIRE(n >= 1 && n <= 256, "thread count must be in 1..256, got " << n);
  std::lock_guard<std::mutex> lk(pool_mutex);
  if (pool().size() != n) pool().resize(n);
}

int num_threads() { return pool().size(); }

void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
  if (n == 0) return;
  if (n == 1 || in_parallel_region || pool().size() == 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  pool().run(n, fn);
}

}  // namespace veil
