// rlwe::KeyPoly holds each limb in the narrowest words its prime allows (32 bits, 33 bits,
// 64 bits): every residue must come back as it went in, whatever the limb's words, the
// ring degree (a multiple of 8 or not: the 33rd bits are packed eight to a byte) and the
// residue (0, q - 1, and values just around 2^32).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <random>
#include <vector>

#include "veil/math/primes.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::rlwe {
namespace {

TEST(KeyPoly, EveryResidueComesBackInTheNarrowestWords) {
  std::mt19937_64 rng(3);
  for (std::size_t n : {std::size_t{8}, std::size_t{12}, std::size_t{1024}}) {
    // Two 30-bit primes, a 32-bit, two 33-bit and a 45-bit one, interleaved, so offsets
    // into each kind of storage are exercised.
    std::vector<u64> primes;
    for (int bits : {33, 30, 45, 32, 33, 30}) {
      const auto cand = math::generate_ntt_primes(bits, 2, 16);
      primes.push_back(cand[primes.size() % 2]);
    }
    std::vector<u64> residues(primes.size() * n);
    for (std::size_t k = 0; k < primes.size(); ++k) {
      std::uniform_int_distribution<u64> dist(0, primes[k] - 1);
      for (std::size_t j = 0; j < n; ++j) residues[k * n + j] = dist(rng);
      residues[k * n] = 0;
      residues[k * n + n - 1] = primes[k] - 1;
      if (primes[k] > (u64{1} << 32)) {
        residues[k * n + 1] = (u64{1} << 32) - 1;
        residues[k * n + 2] = u64{1} << 32;
      }
    }
    const KeyPoly p(n, primes, residues.data());
    ASSERT_EQ(p.limbs(), primes.size());
    std::size_t expect_bytes = 0;
    for (std::size_t k = 0; k < primes.size(); ++k) {
      const int bits = static_cast<int>(std::bit_width(primes[k]));
      const auto words = p.words(k);
      EXPECT_EQ(words, bits <= 32   ? KeyPoly::Words::k32
                       : bits == 33 ? KeyPoly::Words::k33
                                    : KeyPoly::Words::k64)
          << bits << "-bit prime";
      expect_bytes += words == KeyPoly::Words::k32   ? 4 * n
                      : words == KeyPoly::Words::k33 ? 4 * n + (n + 7) / 8
                                                     : 8 * n;
      std::vector<u64> back(n);
      p.get(k, back.data());
      EXPECT_TRUE(std::equal(back.begin(), back.end(), residues.begin() + static_cast<std::ptrdiff_t>(k * n)))
          << "limb " << k << ", n " << n;
      if (words == KeyPoly::Words::k33) {
        // The view the key-switching product reads gives the same values.
        const math::Words33 w = p.words33(k);
        for (std::size_t j = 0; j < n; ++j)
          ASSERT_EQ(w[j], residues[k * n + j]) << "limb " << k << " word " << j;
      }
    }
    EXPECT_EQ(p.bytes(), expect_bytes);
    // set() overwrites a limb completely (33rd bits included).
    KeyPoly q = p;
    std::vector<u64> zeros(n, 0), back(n);
    for (std::size_t k = 0; k < primes.size(); ++k) {
      q.set(k, zeros.data());
      q.get(k, back.data());
      EXPECT_EQ(back, zeros) << "limb " << k;
    }
    EXPECT_FALSE(q == p);
  }
}

}  // namespace
}  // namespace veil::rlwe
