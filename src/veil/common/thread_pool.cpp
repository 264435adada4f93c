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

// How long a worker waiting for the next loop, and a caller waiting for the workers to
// finish one, spin before they sleep on a condition variable. The encrypted pipelines run
// thousands of short loops a second (an NTT's limbs, a ciphertext's products); sleeping
// and waking for each cost a futex call on both sides, a tenth of a PreAct-ResNet-18's
// hybrid preprocessing on a virtual machine (perf: pvm_irq_enable under futex_wait and
// futex_wake).
constexpr auto kSpin = std::chrono::microseconds(50);

// Spins until done() or kSpin has passed; true if done().
template <typename Done>
bool spin_until(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= until) return done();
  }
}

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
      active_.store(static_cast<int>(workers_.size()));
      generation_.fetch_add(1);
    }
    cv_.notify_all();  // no system call when every worker is still spinning
    drain();
    const auto finished = [this] { return active_.load() == 0; };
    if (!spin_until(finished)) {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, finished);
    }
    std::lock_guard<std::mutex> lk(m_);
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
      const auto ready = [&] { return shutdown_.load() || generation_.load() != seen; };
      spin_until(ready);
      {
        // Taken even after a successful spin: the lock orders this worker after run()'s
        // writes of fn_ and n_.
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, ready);
        if (shutdown_) return;
        seen = generation_.load();
      }
      drain();
      if (active_.fetch_sub(1) == 1) {
        // Under the lock: run() either sees active_ == 0 before it waits, or is waiting.
        std::lock_guard<std::mutex> lk(m_);
        done_cv_.notify_one();
      }
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
  std::atomic<int> active_{0};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> shutdown_{false};
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
