#include "veil/math/modarith.hpp"

#include <gmp.h>
#include <gtest/gtest.h>

#include <random>

#include "veil/math/primes.hpp"

namespace veil::math {
namespace {

TEST(Modulus, BarrettAndShoupMatchDivision) {
  std::mt19937_64 g(7);
  for (int bits : {2, 17, 30, 40, 50, 60, 61}) {
    const u64 q = (bits == 2) ? 3 : generate_ntt_primes(bits, 1, 64)[0];
    Modulus m(q);
    for (int i = 0; i < 20000; ++i) {
      const u128 x = (static_cast<u128>(g()) << 64) | g();
      ASSERT_EQ(m.reduce128(x), static_cast<u64>(x % q)) << "q=" << q;
      const u64 a = g() % q, b = g() % q;
      ASSERT_EQ(m.mul(a, b), static_cast<u64>(static_cast<u128>(a) * b % q));
      const u64 x64 = g();
      ASSERT_EQ(m.mul_shoup(x64, b, m.shoup(b)), static_cast<u64>(static_cast<u128>(x64) * b % q));
    }
  }
}

TEST(Modulus, InverseAndPower) {
  Modulus m(generate_ntt_primes(61, 1, 1 << 17)[0]);
  std::mt19937_64 g(9);
  for (int i = 0; i < 1000; ++i) {
    const u64 a = 1 + g() % (m.value() - 1);
    EXPECT_EQ(m.mul(a, m.inv(a)), 1u);
  }
  EXPECT_EQ(m.pow(3, m.value() - 1), 1u);  // Fermat
  EXPECT_THROW(Modulus(6).inv(4), std::invalid_argument);
}

TEST(Primes, MillerRabinAgreesWithGmp) {
  std::mt19937_64 g(11);
  mpz_t z;
  mpz_init(z);
  for (int i = 0; i < 20000; ++i) {
    const u64 n = (i < 1000) ? static_cast<u64>(i) : (g() >> (g() % 40));
    mpz_set_ui(z, n);
    ASSERT_EQ(is_prime(n), mpz_probab_prime_p(z, 40) != 0) << n;
  }
  mpz_clear(z);
}

TEST(Primes, GeneratedPrimesAreNttFriendlyAndDistinct) {
  const u64 two_n = u64{1} << 17;
  auto ps = generate_ntt_primes({60, 40, 40, 40, 61, 50}, two_n);
  ASSERT_EQ(ps.size(), 6u);
  std::vector<int> bits = {60, 40, 40, 40, 61, 50};
  for (std::size_t i = 0; i < ps.size(); ++i) {
    EXPECT_TRUE(is_prime(ps[i]));
    EXPECT_EQ(ps[i] % two_n, 1u);
    EXPECT_EQ(Modulus(ps[i]).bits(), bits[i]);
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(ps[i], ps[j]);
  }
  EXPECT_THROW(generate_ntt_primes(12, 50, two_n), std::invalid_argument);  // too few small primes
}

TEST(Primes, PrimitiveRootHasOrderTwoN) {
  const u64 two_n = 1 << 12;
  const u64 q = generate_ntt_primes(45, 1, two_n)[0];
  Modulus m(q);
  const u64 r = minimal_primitive_root(two_n, q);
  EXPECT_EQ(m.pow(r, two_n), 1u);
  EXPECT_EQ(m.pow(r, two_n / 2), q - 1);
}

}  // namespace
}  // namespace veil::math
