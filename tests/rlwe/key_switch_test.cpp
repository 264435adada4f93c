// Key switching's two ways of raising the digits (rlwe/key_switch.hpp: all digits to all
// limbs in tiles, or per output limb) must agree bit for bit: relinearisation-style jobs
// and hoisted automorphism jobs, one prime per digit (dnum = L, SEAL's arrangement) and
// wider digits, special primes under and over 50 bits (the double and the integer paths
// of base conversion). CKKS's evaluator tests check that the result decrypts correctly.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "veil/rlwe/key_switch.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::rlwe {
namespace {

struct Case {
  std::vector<int> q_bits, p_bits;
  int dnum;
};

class KeySwitchRaise : public ::testing::TestWithParam<Case> {};

TEST_P(KeySwitchRaise, PerTargetEqualsTiled) {
  const Case& c = GetParam();
  // Toy sizes, by explicit opt-in (the last argument).
  auto ctx = std::make_shared<const Context>(Parameters::create(10, c.q_bits, c.p_bits, c.dnum, true));
  KeyGenerator kg(ctx);
  const int top = static_cast<int>(c.q_bits.size()) - 1;
  const RelinKeys relin = kg.create_relin_keys();
  const std::uint32_t g = 5;  // a rotation's Galois element
  const KeySwitchKey gk = kg.create_galois_key(g, top);
  const auto& perm = ctx->ntt_permutation(g);
  std::mt19937_64 rng(7);
  for (int level = top; level >= 0; --level) {
    // Any polynomial in NTT form over Q_level: residues below each prime.
    std::vector<u64> d((level + 1) * ctx->n());
    for (int i = 0; i <= level; ++i) {
      std::uniform_int_distribution<u64> dist(0, ctx->modulus(i).value() - 1);
      for (std::size_t x = 0; x < ctx->n(); ++x) d[i * ctx->n() + x] = dist(rng);
    }
    auto run = [&](KeySwitcher::Raise r) {
      KeySwitcher ks(ctx);
      ks.set_raise(r);
      std::vector<SwitchJob> jobs(2);
      jobs[0].key = &relin.key;
      jobs[1].key = &gk;
      jobs[1].perm = &perm;
      ks.key_switch(d.data(), level, jobs);
      return jobs;
    };
    const auto tiled = run(KeySwitcher::Raise::kTiled);
    const auto per_target = run(KeySwitcher::Raise::kPerTarget);
    for (std::size_t j = 0; j < tiled.size(); ++j) {
      ASSERT_EQ(tiled[j].acc0.size(), (level + 1) * ctx->n());
      EXPECT_TRUE(std::equal(tiled[j].acc0.begin(), tiled[j].acc0.end(), per_target[j].acc0.begin()))
          << "job " << j << " level " << level;
      EXPECT_TRUE(std::equal(tiled[j].acc1.begin(), tiled[j].acc1.end(), per_target[j].acc1.begin()))
          << "job " << j << " level " << level;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Digits, KeySwitchRaise,
                         ::testing::Values(Case{{50, 40, 40, 40, 40, 40}, {50}, 6},  // one prime per digit
                                           Case{{60, 40, 40, 40, 40, 40}, {61}, 6},  // integer-path target
                                           Case{{50, 40, 40, 40, 40, 40, 40}, {50, 50}, 4},  // wider digits
                                           Case{{60, 50, 50, 50, 50}, {55, 55, 55}, 2}));

}  // namespace
}  // namespace veil::rlwe
