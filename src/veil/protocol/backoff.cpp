#include "veil/protocol/backoff.hpp"

#include <algorithm>

#include "veil/protocol/error.hpp"

namespace veil::protocol {

Backoff::Backoff(double first_s, double cap_s, std::uint64_t seed)
    : first_(first_s), cap_(cap_s), window_(first_s), rng_(seed) {}

double Backoff::next() {
  const double w = window_;
  window_ = std::min(cap_, window_ * 2);
  ++failures_;
  return w / 2 + std::uniform_real_distribution<double>(0, w / 2)(rng_);
}

void Backoff::reset() {
  window_ = first_;
  failures_ = 0;
}

bool retryable(const std::exception& e) {
  const auto* n = dynamic_cast<const net::Error*>(&e);
  if (!n) return false;
  return n->is(net::ErrorCode::kTimeout) || n->is(net::ErrorCode::kClosed) || n->is(net::ErrorCode::kIo) ||
         n->is(net::ErrorCode::kShuttingDown) || n->is(ErrorCode::kBusy) || n->is(ErrorCode::kInternal);
}

}  // namespace veil::protocol
