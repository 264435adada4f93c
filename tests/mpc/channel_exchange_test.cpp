// The online protocols over a real net::Channel (the in-memory pair; TCP behaves the same
// through the same interface): results, byte and round counters, hostile peers.
#include "veil/mpc/channel_exchange.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mpc_test_util.hpp"
#include "veil/common/bytes.hpp"
#include "veil/mpc/activation.hpp"
#include "veil/net/frame.hpp"
#include "veil/net/memory_channel.hpp"

namespace veil::mpc {
namespace {

constexpr std::uint16_t kShares = 40;

TEST(MpcExchange, PolyActivationOverTheMemoryChannel) {
  const Field f(test::test_prime(60), 12);
  MaskSource masks;
  const std::vector<double> c{0.738099333, 0.5, 0.0887234775, 0.0, -0.00068481};
  const std::size_t n = 500;
  std::mt19937_64 g(test::test_seed());
  std::uniform_real_distribution<double> d(-4, 4);
  std::vector<double> x(n);
  for (auto& v : x) v = d(g);
  auto sq = deal_squares(f, poly_cost(c, n).squares, masks);
  SquarePool ps(std::move(sq.first)), pc(std::move(sq.second));
  TriplePool ts, tc;
  const Shared xs = split(f, f.encode(x, 12), masks);
  auto [srv, cli] = net::make_memory_pair();
  ChannelExchange es(*srv, Role::kServer, f, kShares), ec(*cli, Role::kClient, f, kShares);
  std::vector<u64> ys, yc;
  // Coefficients at 2^-16: the x^4 coefficient (-6.8e-4) then loses at most 2^-17 * 4^4.
  test::run_both([&] { ys = poly_activation(f, Role::kServer, xs.server, c, 16, ps, ts, es); },
                 [&] { yc = poly_activation(f, Role::kClient, xs.client, c, 16, pc, tc, ec); });
  const double tol = std::ldexp(1.0, -17) * 256 + 8 * std::ldexp(1.0, -12);
  const auto y = f.decode(reconstruct(f, ys, yc), 12);
  for (std::size_t i = 0; i < n; ++i) {
    double want = 0;
    for (std::size_t k = c.size(); k-- > 0;) want = want * x[i] + c[k];
    ASSERT_NEAR(y[i], want, tol) << i << " seed " << test::test_seed();
  }
  // Two rounds, each one message per side of n elements packed at bits(p) = 60 bits.
  EXPECT_EQ(srv->stats().frames_sent, 2u);
  EXPECT_EQ(cli->stats().frames_sent, 2u);
  EXPECT_EQ(srv->bytes_sent(), cli->bytes_received());
  EXPECT_EQ(cli->bytes_sent(), srv->bytes_received());
  EXPECT_EQ(srv->bytes_sent(), 2 * (16 + 8 + (n * 60 + 7) / 8));
  EXPECT_EQ(srv->rounds(), 2u);
}

TEST(MpcExchange, HostilePeerMessagesAreRefusedByName) {
  const Field f(test::test_prime(40), 8);
  auto expect_refusal = [&](std::uint16_t type, const std::vector<u64>& values, std::uint64_t count,
                            const std::string& what) {
    auto [srv, cli] = net::make_memory_pair();
    ByteWriter w;
    w.u64(count);
    w.packed(values, 40);
    srv->send(type, w.buffer());
    ChannelExchange ec(*cli, Role::kClient, f, kShares);
    try {
      ec.swap(std::vector<u64>(3, 1), 3);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_refusal(kShares + 1, {1, 2, 3}, 3, "expected message type");
  expect_refusal(kShares, {1, 2}, 2, "peer sent 2 values, expected 3");
  expect_refusal(kShares, {1, 2, f.p()}, 3, "outside Z_p");
}

}  // namespace
}  // namespace veil::mpc
