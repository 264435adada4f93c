// Key switching's two ways of raising the digits (rlwe/key_switch.hpp: all digits to all
// limbs in tiles, or per output limb) must agree bit for bit: relinearisation-style jobs
// and hoisted automorphism jobs, one prime per digit (dnum = L, SEAL's arrangement) and
// wider digits, special primes under and over 50 bits (the double and the integer paths
// of base conversion), 30-bit chains (keys in 32-bit words) and 33-bit ones (keys in 33
// bits). So must the tiled path run in chunks of jobs, and the jobs left over Q_l * P.
// CKKS's evaluator tests check that the result decrypts correctly.
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

TEST_P(KeySwitchRaise, EveryPathAgrees) {
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
    // Three jobs: a relinearisation-style one between two rotations.
    auto run = [&](KeySwitcher::Raise r, std::size_t chunk_bytes, bool lower) {
      KeySwitcher ks(ctx);
      ks.set_raise(r);
      ks.set_lowered_chunk_bytes(chunk_bytes);
      std::vector<SwitchJob> jobs(3);
      jobs[0].key = &gk;
      jobs[0].perm = &perm;
      jobs[1].key = &relin.key;
      jobs[2] = jobs[0];
      ks.key_switch(d.data(), level, jobs, lower);
      return jobs;
    };
    const std::size_t all = KeySwitcher::kLoweredChunkBytes;
    const auto tiled = run(KeySwitcher::Raise::kTiled, all, true);
    const std::size_t lowered = (level + 1) * ctx->n(), extended = lowered + ctx->num_p() * ctx->n();
    auto expect_same = [&](const std::vector<SwitchJob>& got, const char* what) {
      for (std::size_t j = 0; j < tiled.size(); ++j) {
        ASSERT_EQ(got[j].acc0.size(), lowered) << what;
        EXPECT_TRUE(std::equal(tiled[j].acc0.begin(), tiled[j].acc0.end(), got[j].acc0.begin()))
            << what << ": job " << j << " level " << level;
        EXPECT_TRUE(std::equal(tiled[j].acc1.begin(), tiled[j].acc1.end(), got[j].acc1.begin()))
            << what << ": job " << j << " level " << level;
      }
    };
    expect_same(run(KeySwitcher::Raise::kPerTarget, all, true), "per target");
    expect_same(run(KeySwitcher::Raise::kTiled, 1, true), "one job a chunk");
    expect_same(run(KeySwitcher::Raise::kTiled, 4 * extended * sizeof(u64), true), "two jobs a chunk");
    // Left over Q_l * P, the same sums lowered by the caller.
    auto raw = run(KeySwitcher::Raise::kTiled, 1, false);
    const KeySwitcher ks(ctx);
    for (auto& job : raw) {
      ASSERT_EQ(job.acc0.size(), extended);
      ks.mod_down(job.acc0, level);
      ks.mod_down(job.acc1, level);
    }
    expect_same(raw, "lowered by the caller");
    // The jobs 0 and 2 are the same rotation.
    EXPECT_TRUE(std::equal(tiled[0].acc0.begin(), tiled[0].acc0.end(), tiled[2].acc0.begin()));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Digits, KeySwitchRaise,
    ::testing::Values(Case{{50, 40, 40, 40, 40, 40}, {50}, 6},          // one prime per digit
                      Case{{60, 40, 40, 40, 40, 40}, {61}, 6},          // integer-path target
                      Case{{50, 40, 40, 40, 40, 40, 40}, {50, 50}, 4},  // wider digits
                      Case{{60, 50, 50, 50, 50}, {55, 55, 55}, 2},
                      Case{{42, 30, 30, 30, 30, 30}, {30, 30, 30}, 2},  // 32-bit key words
                      Case{{45, 33, 33, 33, 33, 33}, {45, 45}, 3}));    // 33-bit key words

}  // namespace
}  // namespace veil::rlwe
