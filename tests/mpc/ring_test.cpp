// The two-prime share ring Z_(p0 p1) (mpc/field.hpp): every operation against the same
// computed on plain 128-bit integers mod P, truncation and the Beaver protocols with both
// parties, and the residue-wise wire format.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "mpc_test_util.hpp"
#include "veil/common/bytes.hpp"
#include "veil/mpc/activation.hpp"
#include "veil/mpc/channel_exchange.hpp"
#include "veil/mpc/share.hpp"
#include "veil/mpc/truncate.hpp"
#include "veil/net/memory_channel.hpp"

namespace veil::mpc {
namespace {

using u128 = unsigned __int128;

// The shapes the hybrid mode uses: a 61-bit and a 31-bit prime (2^13 | p - 1 here).
Field wide_field(int frac_bits = 12) {
  return Field({test::test_prime(61), test::test_prime(31)}, frac_bits);
}

u128 modulus(const Field& f) { return static_cast<u128>(f.p(0)) * f.p(1); }

// A uniform integer in [0, P) and its residues, drawn independently of the field code.
u128 draw(std::mt19937_64& g, u128 P) {
  const u128 x = (static_cast<u128>(g()) << 64) | g();
  return x % P;
}
std::vector<u64> residues(const Field& f, u128 x) {
  return {static_cast<u64>(x % f.p(0)), static_cast<u64>(x % f.p(1))};
}

TEST(MpcRing, ArithmeticMatchesPlainIntegersModP) {
  const Field f = wide_field();
  ASSERT_EQ(f.words(), 2);
  const u128 P = modulus(f);
  EXPECT_NEAR(f.log2_modulus(), 92.0, 1.0);
  std::mt19937_64 g(test::test_seed());
  const std::size_t n = 2000;
  std::vector<u128> a(n), b(n);
  std::vector<u64> wa, wb;
  for (std::size_t i = 0; i < n; ++i) {
    a[i] = draw(g, P), b[i] = draw(g, P);
    for (u64 v : residues(f, a[i])) wa.push_back(v);
    for (u64 v : residues(f, b[i])) wb.push_back(v);
  }
  // CRT recombination is the inverse of taking residues.
  for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(f.combine(&wa[2 * i]) == a[i]) << i;
  auto sum = wa, diff = wa, scaled = wa;
  add_inplace(f, sum, wb);
  sub_inplace(f, diff, wb);
  const std::int64_t k = -1234567;
  mul_public_inplace(f, scaled, k);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(f.combine(&sum[2 * i]) == (a[i] + b[i]) % P) << i;
    ASSERT_TRUE(f.combine(&diff[2 * i]) == (a[i] + P - b[i]) % P) << i;
    // a * k = -(a * 1234567) mod P; a * 1234567 < 2^113 fits.
    const u128 pos = (a[i] * 1234567u) % P;
    ASSERT_TRUE(f.combine(&scaled[2 * i]) == (pos == 0 ? 0 : P - pos)) << i;
  }
  EXPECT_TRUE(in_field(f, sum));
  auto bad = wa;
  bad[1] = f.p(1);  // a residue mod p1 out of range
  EXPECT_FALSE(in_field(f, bad));
  EXPECT_FALSE(in_field(f, std::vector<u64>(3, 0)));  // not whole elements
  EXPECT_THROW(add_inplace(f, std::span(sum).first(3), std::span<const u64>(wb).first(3)),
               std::invalid_argument);
}

TEST(MpcRing, SignedValuesBeyondOnePrimeRoundTrip) {
  const Field f = wide_field();
  // 2^70 and more do not fit the 61-bit prime alone; the ring holds them.
  for (double x : {0.0, 1.5, -1.5, 0x1p49, -0x1p49, 3.0e14, -7.25e13}) {
    const double xs[] = {x};
    const auto e = f.encode(xs, 12);
    ASSERT_EQ(e.size(), 2u);
    EXPECT_EQ(f.decode(e, 12)[0], x);
    const i128 want = static_cast<i128>(std::ldexp(x, 12));
    EXPECT_TRUE(f.centered(e.data()) == want) << x;
  }
  u64 w[2];
  const i128 big = -(static_cast<i128>(1) << 90);
  f.from_signed(big, w);
  EXPECT_TRUE(f.centered(w) == big);
  const double too_big[] = {0x1p51};
  EXPECT_THROW(f.encode(too_big, 12), std::invalid_argument);  // beyond 2^62 at 2^12
  EXPECT_THROW(f.encode(0.5, 12), std::invalid_argument);      // scalar form: one prime only
  EXPECT_THROW(Field({test::test_prime(61), test::test_prime(61)}, 8), std::invalid_argument);
}

TEST(MpcRing, MasksAreUniformOverTheWholeRing) {
  const Field f = wide_field();
  const u128 P = modulus(f);
  MaskSource masks;
  const std::size_t n = 40000;
  const auto v = masks.uniform(f, 2 * n);
  ASSERT_TRUE(in_field(f, v));
  // Quarters of [0, P): 10000 expected each, sd 87.
  int quarter[4] = {};
  for (std::size_t i = 0; i < n; ++i) ++quarter[static_cast<int>(f.combine(&v[2 * i]) / (P / 4 + 1))];
  for (int q : quarter) EXPECT_NEAR(q, 10000, 600);
}

struct TruncRun {
  std::size_t failures = 0;
  double expected_failures = 0;
  int worst_error = 0;
};

TruncRun run_truncation(const Field& f, int value_bits, int bits, std::size_t trials) {
  std::mt19937_64 g(test::test_seed());
  std::uniform_int_distribution<std::int64_t> d(-(std::int64_t{1} << value_bits) + 1,
                                                (std::int64_t{1} << value_bits) - 1);
  MaskSource masks;
  std::vector<std::int64_t> xs(trials);
  std::vector<u64> x(2 * trials);
  TruncRun r;
  for (std::size_t i = 0; i < trials; ++i) {
    xs[i] = d(g);
    f.from_signed(xs[i], &x[2 * i]);
    r.expected_failures += (std::fabs(static_cast<double>(xs[i])) + 1) / std::exp2(f.log2_modulus());
  }
  Shared s = split(f, x, masks);
  truncate_inplace(f, Role::kServer, s.server, bits);
  truncate_inplace(f, Role::kClient, s.client, bits);
  const auto y = reconstruct(f, s.server, s.client);
  for (std::size_t i = 0; i < trials; ++i) {
    const i128 err = f.centered(&y[2 * i]) - (xs[i] >> bits);
    if (err < -1 || err > 1)
      ++r.failures;
    else
      r.worst_error = std::max(r.worst_error, static_cast<int>(err < 0 ? -err : err));
  }
  return r;
}

TEST(MpcRing, TruncationKeepsOneUlpWithThirtyMoreBitsThanOnePrime) {
  const Field f = wide_field();
  const int l = max_truncation_value_bits(f, 40);
  EXPECT_GE(l, 50);  // one 61-bit prime: 20
  EXPECT_GE(l, max_truncation_value_bits(Field(f.p(0), 12), 40) + 30);
  EXPECT_LE(truncation_failure_log2(f, l), -40.0);
  const TruncRun r = run_truncation(f, std::min(l, 62), 20, 100000);
  EXPECT_EQ(r.failures, 0u) << "seed " << test::test_seed();
  EXPECT_LE(r.worst_error, 1);
}

TEST(MpcRing, TruncationFailureRateMatchesTheBoundOverP) {
  // A 44-bit ring (20 + 24 bits) and 34-bit values: failures about 2^-10 per value.
  const Field f({test::test_prime(20), test::test_prime(24)}, 8);
  const TruncRun r = run_truncation(f, 34, 8, 400000);
  EXPECT_GT(r.expected_failures, 100.0);
  EXPECT_GT(static_cast<double>(r.failures), 0.5 * r.expected_failures) << "seed " << test::test_seed();
  EXPECT_LT(static_cast<double>(r.failures), 1.5 * r.expected_failures) << "seed " << test::test_seed();
  EXPECT_LE(r.worst_error, 1);
}

TEST(MpcRing, BeaverSquaresAndProductsMatchPlainProducts) {
  const Field f = wide_field();
  MaskSource masks;
  std::mt19937_64 g(test::test_seed());
  // 45-bit operands: products up to 2^90, beyond any single 61-bit prime.
  std::uniform_int_distribution<std::int64_t> d(-(std::int64_t{1} << 45), std::int64_t{1} << 45);
  const std::size_t n = 500, w = 2 * n;
  std::vector<std::int64_t> xv(n), yv(n);
  std::vector<u64> x(w), y(w);
  for (std::size_t i = 0; i < n; ++i) {
    xv[i] = d(g), yv[i] = d(g);
    f.from_signed(xv[i], &x[2 * i]);
    f.from_signed(yv[i], &y[2 * i]);
  }
  const Shared xs = split(f, x, masks), ys = split(f, y, masks);
  auto [sq_s, sq_c] = deal_squares(f, w, masks);
  auto [tr_s, tr_c] = deal_triples(f, w, masks);
  test::MailboxPair pair;
  std::vector<u64> x2s, x2c, xys, xyc;
  test::run_both(
      [&] {
        const auto e = square_open(f, xs.server, sq_s);
        x2s = square_close(f, Role::kServer, e, pair.server().swap(e, w), sq_s);
        const auto de = multiply_open(f, xs.server, ys.server, tr_s);
        xys = multiply_close(f, Role::kServer, de, pair.server().swap(de, 2 * w), tr_s);
      },
      [&] {
        const auto e = square_open(f, xs.client, sq_c);
        x2c = square_close(f, Role::kClient, e, pair.client().swap(e, w), sq_c);
        const auto de = multiply_open(f, xs.client, ys.client, tr_c);
        xyc = multiply_close(f, Role::kClient, de, pair.client().swap(de, 2 * w), tr_c);
      });
  const auto x2 = reconstruct(f, x2s, x2c), xy = reconstruct(f, xys, xyc);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(f.centered(&x2[2 * i]) == static_cast<i128>(xv[i]) * xv[i]) << i;
    ASSERT_TRUE(f.centered(&xy[2 * i]) == static_cast<i128>(xv[i]) * yv[i]) << i;
  }
}

TEST(MpcRing, ActivationOverTheChannelIsFinerThanOnePrimeAllows) {
  // Values at 2^-24 and coefficients at 2^-24: x^2 at 2^48 overflows the one-prime
  // truncation bound (2^20), not the ring's (2^51).
  const Field f = wide_field(24);
  MaskSource masks;
  const std::vector<double> c{0.375, 0.5, 0.117};
  const std::size_t n = 300;
  std::mt19937_64 g(test::test_seed());
  std::uniform_real_distribution<double> d(-4, 4);
  std::vector<double> x(n);
  for (auto& v : x) v = d(g);
  auto sq = deal_squares(f, poly_cost(c, 2 * n).squares, masks);
  SquarePool ps(std::move(sq.first)), pc(std::move(sq.second));
  TriplePool ts, tc;
  const Shared xs = split(f, f.encode(x, 24), masks);
  auto [srv, cli] = net::make_memory_pair();
  ChannelExchange es(*srv, Role::kServer, f, 40), ec(*cli, Role::kClient, f, 40);
  std::vector<u64> ys, yc;
  const PolyScales sc{24, 24, 48, 24};
  test::run_both([&] { ys = poly_activation(f, Role::kServer, xs.server, c, sc, ps, ts, es); },
                 [&] { yc = poly_activation(f, Role::kClient, xs.client, c, sc, pc, tc, ec); });
  const auto y = f.decode(reconstruct(f, ys, yc), 24);
  ASSERT_EQ(y.size(), n);
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i)
    worst = std::max(worst, std::fabs(y[i] - (c[0] + c[1] * x[i] + c[2] * x[i] * x[i])));
  // Two truncations (1 ulp each, the x^2 one times c_2) and c_2 rounded to 2^-24 (half an
  // ulp times x^2 <= 16): under 10 ulp at 2^-24.
  EXPECT_LE(worst, std::ldexp(10.0, -24)) << "seed " << test::test_seed();
  // One message per side: n elements at 61 + 31 bits, residue by residue.
  EXPECT_EQ(srv->bytes_sent(), 16 + 8 + (n * 61 + 7) / 8 + (n * 31 + 7) / 8);
}

// ChannelExchange packs a word at a time; the bytes are ByteWriter::packed's, residue by
// residue (the wire format of docs/protocol.md), for one prime and for the ring.
TEST(MpcRing, FramesAreTheGenericPackedBytes) {
  MaskSource masks;
  for (const Field& f : {Field(test::test_prime(40), 8), wide_field()}) {
    for (std::size_t n : {0, 1, 7, 64, 1001}) {
      const auto v = masks.uniform(f, n * static_cast<std::size_t>(f.words()));
      auto [srv, cli] = net::make_memory_pair();
      ChannelExchange es(*srv, Role::kServer, f, 40);
      es.send(v);
      const net::Frame got = cli->receive();
      ByteWriter want;
      want.u64(v.size());
      for (int r = 0; r < f.words(); ++r) {
        std::vector<u64> part;
        for (std::size_t i = static_cast<std::size_t>(r); i < v.size();
             i += static_cast<std::size_t>(f.words()))
          part.push_back(v[i]);
        want.packed(part, static_cast<unsigned>(std::bit_width(f.p(r) - 1)));
      }
      EXPECT_EQ(got.payload, want.buffer()) << f.words() << " primes, " << n << " values";
      // And back.
      auto [a, b] = net::make_memory_pair();
      a->send(40, got.payload);
      ChannelExchange ec(*b, Role::kClient, f, 40);
      EXPECT_EQ(ec.receive(v.size()), v);
    }
  }
}

TEST(MpcRing, HostileResiduesAreRefused) {
  const Field f = wide_field();
  auto refused = [&](const std::vector<u64>& r0, const std::vector<u64>& r1, std::uint64_t count) {
    auto [srv, cli] = net::make_memory_pair();
    ByteWriter w;
    w.u64(count);
    w.packed(r0, 61);
    w.packed(r1, 31);
    srv->send(40, w.buffer());
    ChannelExchange ec(*cli, Role::kClient, f, 40);
    try {
      ec.receive(count);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(refused({1, 2}, {3, 4}, 4), "(accepted)");
  EXPECT_NE(refused({1, 2}, {3, f.p(1)}, 4).find("outside Z_p"), std::string::npos);
  EXPECT_NE(refused({1}, {3}, 3).find("not whole elements"), std::string::npos);
}

}  // namespace
}  // namespace veil::mpc
