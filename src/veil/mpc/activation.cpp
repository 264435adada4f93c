#include "veil/mpc/activation.hpp"

#include <cmath>

#include "veil/common/error.hpp"
#include "veil/mpc/truncate.hpp"

namespace veil::mpc {

namespace {

int degree_of(std::span<const double> c) {
  int d = static_cast<int>(c.size()) - 1;
  while (d > 0 && c[static_cast<std::size_t>(d)] == 0.0) --d;
  return d;
}

}  // namespace

PolyCost poly_cost(std::span<const double> coeffs, std::size_t n) {
  const int d = degree_of(coeffs);
  VEIL_REQUIRE(d <= 4, "activation polynomial of degree " << d << ": the hybrid mode evaluates degree <= 4");
  PolyCost c;
  if (d >= 2) c.squares += n, c.rounds = 1;
  if (d >= 3) {
    c.rounds = 2;
    if (d == 4) c.squares += n;
    if (coeffs[3] != 0.0) c.triples += n;
  }
  return c;
}

std::vector<u64> poly_activation(const Field& f, Role role, std::span<const u64> x,
                                 std::span<const double> coeffs, int coef_bits, SquarePool& squares,
                                 TriplePool& triples, Exchange& ex, int power_bits) {
  VEIL_REQUIRE(!coeffs.empty(), "activation polynomial has no coefficients");
  VEIL_REQUIRE(coef_bits >= 0 && coef_bits <= 30, "coefficient scale 2^" << coef_bits << " is out of range");
  const int d = degree_of(coeffs);
  const std::size_t n = x.size();
  // Refuse before the first exchange, so a short pool never leaves the peer mid-protocol.
  const PolyCost cost = poly_cost(coeffs, n);
  VEIL_CHECK_IO(squares.remaining() >= cost.squares && triples.remaining() >= cost.triples,
                "preprocessing exhausted: this activation needs "
                    << cost.squares << " squares and " << cost.triples << " triples, " << squares.remaining()
                    << " and " << triples.remaining() << " are left (run more preprocessing)");
  const int fb = f.frac_bits();
  const int sb = power_bits < 0 ? fb : power_bits;
  VEIL_REQUIRE(sb >= 1 && sb <= fb,
               "power scale 2^" << sb << " must be between 2^1 and the value scale 2^" << fb);
  VEIL_REQUIRE(coef_bits + sb >= fb,
               "coefficient scale 2^" << coef_bits << " is too small for power scale 2^" << sb);

  // powers[1]: x at scale f; powers[k >= 2]: x^k at scale s, formed from x truncated to
  // scale s, so that the products (|x|^k 2^(2s)) stay inside the truncation bound.
  std::vector<std::vector<u64>> powers(static_cast<std::size_t>(d) + 1);
  if (d >= 1) powers[1].assign(x.begin(), x.end());
  std::vector<u64> xs(x.begin(), x.end());
  if (d >= 2 && sb < fb) truncate_inplace(f, role, xs, fb - sb);
  if (d >= 2) {
    const Squares s = squares.take(n);
    const auto e = square_open(f, xs, s);
    const auto peer = ex.swap(e, n);
    powers[2] = square_close(f, role, e, peer, s);
    truncate_inplace(f, role, powers[2], sb);
  }
  if (d >= 3) {
    const bool want4 = d == 4, want3 = coeffs[3] != 0.0;
    Squares s4;
    Triples t3;
    std::vector<u64> msg;
    if (want4) {
      s4 = squares.take(n);
      msg = square_open(f, powers[2], s4);
    }
    if (want3) {
      t3 = triples.take(n);
      const auto de = multiply_open(f, xs, powers[2], t3);
      msg.insert(msg.end(), de.begin(), de.end());
    }
    const auto peer = ex.swap(msg, msg.size());
    std::size_t off = 0;
    if (want4) {
      powers[4] = square_close(f, role, std::span(msg).first(n), std::span(peer).first(n), s4);
      truncate_inplace(f, role, powers[4], sb);
      off = n;
    }
    if (want3) {
      powers[3] = multiply_close(f, role, std::span(msg).subspan(off, 2 * n),
                                 std::span(peer).subspan(off, 2 * n), t3);
      truncate_inplace(f, role, powers[3], sb);
    }
  }

  // y * 2^(s + coef_bits) = c_0 2^(s + coef_bits) + round(c_1 2^(coef_bits + s - f)) x 2^f
  //                       + sum_{k >= 2} round(c_k 2^coef_bits) x^k 2^s.
  const auto& m = f.mod();
  std::vector<u64> acc(n, 0);
  for (int k = 1; k <= d; ++k) {
    const double ck = coeffs[static_cast<std::size_t>(k)];
    if (ck == 0.0 || powers[static_cast<std::size_t>(k)].empty()) continue;
    const double scaled = std::ldexp(ck, k == 1 ? coef_bits + sb - fb : coef_bits);
    VEIL_REQUIRE(std::fabs(scaled) < 9.0e15, "activation coefficient " << ck << " is too large");
    const u64 w = m.from_signed(static_cast<std::int64_t>(std::llround(scaled)));
    const u64 ws = m.shoup(w);
    const auto& pk = powers[static_cast<std::size_t>(k)];
    for (std::size_t i = 0; i < n; ++i) acc[i] = m.add(acc[i], m.mul_shoup(pk[i], w, ws));
  }
  if (role == Role::kServer && coeffs[0] != 0.0) {
    const u64 c0 = f.encode(coeffs[0], sb + coef_bits);
    for (auto& v : acc) v = m.add(v, c0);
  }
  if (coef_bits + sb > fb) truncate_inplace(f, role, acc, coef_bits + sb - fb);
  return acc;
}

}  // namespace veil::mpc
