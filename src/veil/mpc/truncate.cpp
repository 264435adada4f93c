#include "veil/mpc/truncate.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::mpc {

namespace {

using u128 = unsigned __int128;

// Two primes: the same on the share's representative v in [0, P) (the analysis holds with
// P for p), without recombining v in full. floor(v / 2^d) = (v - (v mod 2^d)) / 2^d, so
// its residues are (v_r - (v mod 2^d)) 2^-d mod p_r, and v mod 2^d needs only the low
// word of v = v_0 + p_0 ((v_1 - v_0) p_0^-1 mod p_1) (Garner). The client's
// P - floor((P - v) / 2^d) is the same on P - v, whose residues are -v_r. Every reduction
// is a Shoup multiplication by a precomputed constant (valid for any 64-bit operand): this
// runs on every element after every product.
void truncate_crt(const Field& f, Role role, std::span<u64> share, int bits) {
  const math::Modulus &m0 = f.mod(0), &m1 = f.mod(1);
  const u64 p0 = m0.value();
  const u64 inv = m1.inv(m1.reduce(p0)), inv_s = m1.shoup(inv);
  const u64 one1 = m1.shoup(1);
  const u64 i0 = m0.inv(m0.reduce(u64{1} << bits)), i0s = m0.shoup(i0);
  const u64 i1 = m1.inv(m1.reduce(u64{1} << bits)), i1s = m1.shoup(i1);
  const u64 low_mask = (u64{1} << bits) - 1;
  const bool server = role == Role::kServer;
  for (std::size_t i = 0; i < share.size(); i += 2) {
    u64 v0 = share[i], v1 = share[i + 1];
    if (!server) {
      if ((v0 | v1) == 0) continue;      // x_1' = 0, as in the one-prime case
      v0 = m0.neg(v0), v1 = m1.neg(v1);  // residues of P - v
    }
    // The low word of the representative in [0, P) of (v0, v1).
    const u64 d = m1.mul_shoup(m1.sub(v1, m1.mul_shoup(v0, 1, one1)), inv, inv_s);
    const u64 lo = (v0 + p0 * d) & low_mask;         // wraps mod 2^64: only the low bits matter
    u64 t0 = m0.mul_shoup(m0.sub(v0, lo), i0, i0s);  // lo < 2^59 < p_0
    u64 t1 = m1.mul_shoup(m1.sub(v1, m1.mul_shoup(lo, 1, one1)), i1, i1s);
    if (!server) t0 = m0.neg(t0), t1 = m1.neg(t1);
    share[i] = t0;
    share[i + 1] = t1;
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
