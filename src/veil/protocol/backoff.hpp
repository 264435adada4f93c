// What a client does after a failed attempt, the same for every protocol: wait longer each
// time (exponential, capped, jittered so that many clients refused together do not return
// together: "equal jitter", Brooker, "Exponential Backoff And Jitter", AWS Architecture
// Blog 2015), and give up at once on errors that another attempt cannot fix.
#pragma once

#include <cstdint>
#include <exception>
#include <random>

namespace veil::protocol {

class Backoff {
 public:
  explicit Backoff(double first_s = 0.05, double cap_s = 2.0, std::uint64_t seed = std::random_device{}());
  // Seconds to wait before the next attempt: half the current window plus a random part
  // of the other half; the window doubles up to the cap.
  double next();
  void reset();  // after a success
  int failures() const { return failures_; }

 private:
  double first_, cap_, window_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

// Whether trying again may succeed: the server is busy, shutting down, unreachable or
// timed out. A refusal of what was sent (version, mode, keys, ciphertexts, a malformed or
// oversized message) or a local error is fatal: every retry would be refused the same way.
bool retryable(const std::exception& e);

}  // namespace veil::protocol
