#include "veil/mpc/truncate.hpp"

#include <cmath>

#include "veil/common/error.hpp"

namespace veil::mpc {

namespace {

using u128 = unsigned __int128;

// Two primes: the same on the share's representative in [0, P), recombined from its
// residues and split again (the analysis is the same with P for p). Every reduction is a
// Shoup multiplication by a precomputed constant (valid for any 64-bit operand), as this
// runs on every element after every product.
struct Crt {
  const math::Modulus &m0, &m1;
  u64 inv, inv_s;        // p_0^-1 mod p_1
  u64 one0, one1;        // shoup(1): x mod p_r for any 64-bit x
  u64 w0, w0s, w1, w1s;  // 2^64 mod p_r
  explicit Crt(const Field& f)
      : m0(f.mod(0)),
        m1(f.mod(1)),
        inv(m1.inv(m1.reduce(m0.value()))),
        inv_s(m1.shoup(inv)),
        one0(m0.shoup(1)),
        one1(m1.shoup(1)),
        w0(m0.reduce128(static_cast<u128>(1) << 64)),
        w0s(m0.shoup(w0)),
        w1(m1.reduce128(static_cast<u128>(1) << 64)),
        w1s(m1.shoup(w1)) {}
  u128 combine(u64 v0, u64 v1) const {
    const u64 d = m1.mul_shoup(m1.sub(v1, m1.mul_shoup(v0, 1, one1)), inv, inv_s);
    return static_cast<u128>(v0) + static_cast<u128>(m0.value()) * d;
  }
  // t mod m for t = hi 2^64 + lo.
  static u64 reduce(const math::Modulus& m, u128 t, u64 one_s, u64 w, u64 ws) {
    return m.add(m.mul_shoup(static_cast<u64>(t), 1, one_s), m.mul_shoup(static_cast<u64>(t >> 64), w, ws));
  }
};

void truncate_crt(const Field& f, Role role, std::span<u64> share, int bits) {
  const Crt c(f);
  const u128 P = static_cast<u128>(f.p(0)) * f.p(1);
  for (std::size_t i = 0; i < share.size(); i += 2) {
    const u128 v = c.combine(share[i], share[i + 1]);
    u128 t;
    if (role == Role::kServer)
      t = v >> bits;
    else
      t = v == 0 ? 0 : P - ((P - v) >> bits);
    if (t == P) t = 0;
    share[i] = Crt::reduce(c.m0, t, c.one0, c.w0, c.w0s);
    share[i + 1] = Crt::reduce(c.m1, t, c.one1, c.w1, c.w1s);
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
