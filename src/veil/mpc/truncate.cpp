#include "veil/mpc/truncate.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::mpc {

namespace {

using u128 = unsigned __int128;

// Two primes: the same on the share's representative in [0, P), recombined from its
// residues and split again (the analysis is the same with P for p).
void truncate_crt(const Field& f, Role role, std::span<u64> share, int bits) {
  const u128 P = static_cast<u128>(f.p(0)) * f.p(1);
  for (std::size_t i = 0; i < share.size(); i += 2) {
    const u128 v = f.combine(&share[i]);
    u128 t;
    if (role == Role::kServer)
      t = v >> bits;
    else
      t = v == 0 ? 0 : P - ((P - v) >> bits);
    if (t == P) t = 0;
    share[i] = f.mod(0).reduce128(t);
    share[i + 1] = f.mod(1).reduce128(t);
  }
}

}  // namespace

void truncate_inplace(const Field& f, Role role, std::span<u64> share, int bits) {
  VEIL_REQUIRE(bits >= 0 && bits < 60, "truncation by 2^" << bits << " is out of range");
  check_words(f, share.size(), "truncation");
  if (bits == 0) return;
  if (f.words() == 2) return truncate_crt(f, role, share, bits);
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
  return std::log2(std::ldexp(1.0, value_bits) + 1.0) - f.log2_modulus();
}

int max_truncation_value_bits(const Field& f, int sigma) {
  int bits = 0;
  while (bits < 120 && truncation_failure_log2(f, bits + 1) <= -sigma) ++bits;
  return bits;
}

}  // namespace veil::mpc
