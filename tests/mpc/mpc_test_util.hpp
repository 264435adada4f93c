// Helpers for the two-party tests: both roles on two threads of one process, joined by a
// mailbox exchange, and fields over test primes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "veil/common/error.hpp"
#include "veil/math/primes.hpp"
#include "veil/mpc/exchange.hpp"

namespace veil::mpc::test {

// A prime of `bits` bits (NTT-friendly for N = 2^12, as the exact scheme's t would be).
inline u64 test_prime(int bits) { return math::generate_ntt_primes(bits, 1, 8192)[0]; }

// Two endpoints sharing a queue per direction. swap() posts, then waits for the peer's
// post: one round, counted.
class MailboxPair {
 public:
  class End : public Exchange {
   public:
    End(MailboxPair& pair, int side) : pair_(pair), side_(side) {}
    std::vector<u64> swap(std::span<const u64> mine, std::size_t expect) override {
      std::unique_lock<std::mutex> lk(pair_.m_);
      pair_.box_[side_].emplace_back(mine.begin(), mine.end());
      pair_.cv_.notify_all();
      pair_.cv_.wait(lk, [&] { return !pair_.box_[1 - side_].empty(); });
      std::vector<u64> got = std::move(pair_.box_[1 - side_].front());
      pair_.box_[1 - side_].pop_front();
      ++rounds_;
      VEIL_CHECK_IO(got.size() == expect, "peer sent " << got.size() << " elements, expected " << expect);
      return got;
    }
    void send(std::span<const u64> mine) override {
      std::lock_guard<std::mutex> lk(pair_.m_);
      pair_.box_[side_].emplace_back(mine.begin(), mine.end());
      pair_.cv_.notify_all();
    }
    std::vector<u64> receive(std::size_t expect) override {
      std::unique_lock<std::mutex> lk(pair_.m_);
      pair_.cv_.wait(lk, [&] { return !pair_.box_[1 - side_].empty(); });
      std::vector<u64> got = std::move(pair_.box_[1 - side_].front());
      pair_.box_[1 - side_].pop_front();
      ++one_way_;
      VEIL_CHECK_IO(got.size() == expect, "peer sent " << got.size() << " elements, expected " << expect);
      return got;
    }
    int rounds() const { return rounds_; }
    // One-way messages this end received.
    int one_way() const { return one_way_; }

   private:
    MailboxPair& pair_;
    int side_;
    int rounds_ = 0;
    int one_way_ = 0;
  };

  End& server() { return server_; }
  End& client() { return client_; }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::vector<u64>> box_[2];  // messages in flight, per sender
  End server_{*this, 0}, client_{*this, 1};
};

// Runs fs (server role) and fc (client role) on two threads; rethrows the first error.
inline void run_both(const std::function<void()>& fs, const std::function<void()>& fc) {
  std::exception_ptr es, ec;
  std::thread ts([&] {
    try {
      fs();
    } catch (...) {
      es = std::current_exception();
    }
  });
  std::thread tc([&] {
    try {
      fc();
    } catch (...) {
      ec = std::current_exception();
    }
  });
  ts.join();
  tc.join();
  if (es) std::rethrow_exception(es);
  if (ec) std::rethrow_exception(ec);
}

// A seed printed by each randomised test, so a failure can be replayed.
inline std::uint64_t test_seed() {
  static const std::uint64_t s = std::random_device{}();
  return s;
}

}  // namespace veil::mpc::test
