#include "veil/mpc/truncate.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::mpc {

void truncate_inplace(const Field& f, Role role, std::span<u64> share, int bits) {
  VEIL_REQUIRE(bits >= 0 && bits < 60, "truncation by 2^" << bits << " is out of range");
  if (bits == 0) return;
  const u64 p = f.p();
  if (role == Role::kServer) {
    for (auto& v : share) v >>= bits;
  } else {
    for (auto& v : share) {
      // p - floor((p - v) / 2^d), i.e. ceil(x_1' / 2^d) for x_1' = v - p; a zero share
      // stands for x_1' = 0, not -p (the analysis above takes x_1' in (-p, 0]).
      if (v == 0) continue;
      const u64 t = p - ((p - v) >> bits);
      v = t == p ? 0 : t;
    }
  }
}

double truncation_failure_log2(const Field& f, int value_bits) {
  return std::log2(std::ldexp(1.0, value_bits) + 1.0) - std::log2(static_cast<double>(f.p()));
}

int max_truncation_value_bits(const Field& f, int sigma) {
  int bits = 0;
  while (bits < 61 && truncation_failure_log2(f, bits + 1) <= -sigma) ++bits;
  return bits;
}

}  // namespace veil::mpc
