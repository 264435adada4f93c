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
  VEIL_REQUIRE(coef_bits >= 0 && coef_bits <= 30, "coefficient scale 2^" << coef_bits << " is out of range");
  const int fb = f.frac_bits();
  const int pb = power_bits < 0 ? fb : power_bits;
  return poly_activation(f, role, x, coeffs, PolyScales{fb, pb, pb + coef_bits, fb}, squares, triples, ex);
}

std::vector<u64> poly_activation(const Field& f, Role role, std::span<const u64> x,
                                 std::span<const double> coeffs, const PolyScales& sc, SquarePool& squares,
                                 TriplePool& triples, Exchange& ex) {
  VEIL_REQUIRE(!coeffs.empty(), "activation polynomial has no coefficients");
  VEIL_REQUIRE(
      sc.power_bits >= 1 && sc.power_bits <= sc.in_bits,
      "power scale 2^" << sc.power_bits << " must be between 2^1 and the input scale 2^" << sc.in_bits);
  VEIL_REQUIRE(sc.sum_bits >= sc.in_bits && sc.sum_bits >= sc.power_bits && sc.out_bits <= sc.sum_bits &&
                   sc.out_bits >= 0 && sc.sum_bits - sc.power_bits <= 30,
               "activation scales (input 2^" << sc.in_bits << ", powers 2^" << sc.power_bits << ", sum 2^"
                                             << sc.sum_bits << ", output 2^" << sc.out_bits
                                             << ") are inconsistent");
  const int d = degree_of(coeffs);
  check_words(f, x.size(), "activation");
  const std::size_t n = x.size();  // words
  // Refuse before the first exchange, so a short pool never leaves the peer mid-protocol.
  const PolyCost cost = poly_cost(coeffs, n);
  VEIL_CHECK_IO(squares.remaining() >= cost.squares && triples.remaining() >= cost.triples,
                "preprocessing exhausted: this activation needs "
                    << cost.squares << " squares and " << cost.triples << " triples, " << squares.remaining()
                    << " and " << triples.remaining() << " are left (run more preprocessing)");
  const int sb = sc.power_bits;

  // powers[1]: x at the input scale; powers[k >= 2]: x^k at the power scale, formed from
  // x truncated to it, so that the products (|x|^k 2^(2 sb)) stay inside the truncation bound.
  std::vector<std::vector<u64>> powers(static_cast<std::size_t>(d) + 1);
  if (d >= 1) powers[1].assign(x.begin(), x.end());
  std::vector<u64> xs(x.begin(), x.end());
  if (d >= 2 && sb < sc.in_bits) truncate_inplace(f, role, xs, sc.in_bits - sb);
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

  // y 2^sum = c_0 2^sum + round(c_1 2^(sum - in)) x 2^in + sum_{k>=2} round(c_k 2^(sum - sb)) x^k 2^sb.
  const std::size_t words = static_cast<std::size_t>(f.words());
  std::vector<u64> acc(n, 0);
  for (int k = 1; k <= d; ++k) {
    const double ck = coeffs[static_cast<std::size_t>(k)];
    if (ck == 0.0 || powers[static_cast<std::size_t>(k)].empty()) continue;
    const double scaled = std::ldexp(ck, sc.sum_bits - (k == 1 ? sc.in_bits : sb));
    VEIL_REQUIRE(std::fabs(scaled) < 9.0e15, "activation coefficient " << ck << " is too large");
    u64 w[2] = {0, 0}, ws[2] = {0, 0};
    for (int r = 0; r < f.words(); ++r) {
      w[r] = f.mod(r).from_signed(static_cast<std::int64_t>(std::llround(scaled)));
      ws[r] = f.mod(r).shoup(w[r]);
    }
    const auto& pk = powers[static_cast<std::size_t>(k)];
    for_each_word(f, n, [&](std::size_t i, const math::Modulus& m) {
      acc[i] = m.add(acc[i], m.mul_shoup(pk[i], w[i & (words - 1)], ws[i & (words - 1)]));
    });
  }
  if (role == Role::kServer && coeffs[0] != 0.0) {
    const double c0v[] = {coeffs[0]};
    const std::vector<u64> c0 = f.encode(c0v, sc.sum_bits);
    for_each_word(
        f, n, [&](std::size_t i, const math::Modulus& m) { acc[i] = m.add(acc[i], c0[i & (words - 1)]); });
  }
  if (sc.sum_bits > sc.out_bits) truncate_inplace(f, role, acc, sc.sum_bits - sc.out_bits);
  return acc;
}

}  // namespace veil::mpc
