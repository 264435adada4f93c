// Shares hide perfectly: whatever x is, the share a party holds is uniform on Z_p.
#include "veil/mpc/share.hpp"

#include <gtest/gtest.h>

#include "mpc_test_util.hpp"

namespace veil::mpc {
namespace {

// Pearson's chi-square statistic of values in [0, p) over `bins` equal-width bins.
double chi_square(const std::vector<u64>& v, u64 p, int bins) {
  std::vector<double> count(bins, 0.0);
  for (u64 x : v) count[static_cast<std::size_t>(static_cast<unsigned __int128>(x) * bins / p)] += 1;
  const double expected = static_cast<double>(v.size()) / bins;
  double chi = 0;
  for (double c : count) chi += (c - expected) * (c - expected) / expected;
  return chi;
}

// 63 degrees of freedom: P(chi^2 > 130) is about 2e-6, so a uniform source fails this
// test about once in half a million runs.
constexpr int kBins = 64;
constexpr double kChiLimit = 130.0;

TEST(MpcShare, SplitAndReconstructRoundTrip) {
  const Field f(test::test_prime(60), 12);
  MaskSource masks;
  const auto x = f.encode(std::vector<double>{0.0, -3.25, 1e6, 7.5}, 12);
  const Shared s = split(f, x, masks);
  EXPECT_EQ(reconstruct(f, s.server, s.client), x);
  EXPECT_NE(s.server, x);
}

TEST(MpcShare, EachShareIsUniformWhateverTheSecret) {
  const Field f(test::test_prime(60), 12);
  MaskSource masks;
  for (double secret : {0.0, 1.0, -123.456}) {
    const std::vector<u64> x(64 * 1024, f.encode(secret, 12));
    const Shared s = split(f, x, masks);
    EXPECT_LT(chi_square(s.server, f.p(), kBins), kChiLimit) << "server share, secret " << secret;
    EXPECT_LT(chi_square(s.client, f.p(), kBins), kChiLimit) << "client share, secret " << secret;
  }
}

TEST(MpcShare, TheUniformityTestCatchesABiasedMask) {
  // A mask drawn from half the field (as a reduction bug would give) must fail the test
  // above, or the test proves nothing.
  const Field f(test::test_prime(60), 12);
  MaskSource masks;
  auto r = masks.uniform(f, 64 * 1024);
  for (auto& v : r) v >>= 1;
  std::vector<u64> share(r.size(), f.encode(5.0, 12));
  sub_inplace(f, share, r);
  EXPECT_GT(chi_square(share, f.p(), kBins), kChiLimit);
}

TEST(MpcShare, SeededSourcesRepeatAndFreshOnesDiffer) {
  const Field f(test::test_prime(40), 8);
  Seed seed{};
  seed[0] = 7;
  MaskSource a(seed), b(seed), fresh1, fresh2;
  EXPECT_EQ(a.uniform(f, 100), b.uniform(f, 100));
  EXPECT_NE(fresh1.uniform(f, 100), fresh2.uniform(f, 100));
  for (u64 v : a.uniform(f, 10000)) ASSERT_LT(v, f.p());
}

}  // namespace
}  // namespace veil::mpc
