// Parameters: plaintext primes, the derived noise bounds, automatic selection at 128-bit
// security, and refusals with named errors.
#include <gtest/gtest.h>

#include <cmath>

#include "bfv_test_util.hpp"
#include "error_test_util.hpp"
#include "veil/math/primes.hpp"

namespace veil::test {
namespace {

TEST(BfvParams, PlaintextPrimeIsBatchingFriendly) {
  for (int bits : {20, 37, 41, 60}) {
    const u64 t = bfv::plaintext_prime(bits, 16);
    EXPECT_TRUE(math::is_prime(t));
    EXPECT_EQ((t - 1) % (u64{1} << 17), 0u);
    EXPECT_EQ(64 - __builtin_clzll(t), bits);
  }
  EXPECT_NE(what_of([] { bfv::plaintext_prime(61); }).find("2..60 bits"), std::string::npos);
  EXPECT_NE(what_of([] { bfv::plaintext_prime(12, 12); }).find("use more bits"), std::string::npos);
}

TEST(BfvParams, SelectionIsSecureAndHoldsTheFlood) {
  // The hybrid mode's convolutions: t of 41 bits, 64 channels x 3x3 x weights below 2^12.
  bfv::ParameterRequest r;
  r.t_bits = 41;
  r.max_l1_norm = 64.0 * 9 * 4096;
  const auto p = bfv::select_parameters(r);
  EXPECT_TRUE(p.is_128_bit_secure());
  EXPECT_TRUE(p.batching());
  EXPECT_TRUE(p.validate().empty()) << p.validate();
  EXPECT_EQ(p.log_n, 13) << p.describe();
  EXPECT_LT(p.response_level, p.max_level()) << "responses should be switched down";
  // The same request in a smaller ring is impossible at 128 bits.
  r.max_log_n = 12;
  EXPECT_NE(what_of([&] { bfv::select_parameters(r); }).find("no 128-bit BFV parameters"), std::string::npos);
  // Arbitrary (SIMD) plaintexts: L = N t / 2.
  bfv::ParameterRequest simd;
  simd.t_bits = 41;
  const auto ps = bfv::select_parameters(simd);
  EXPECT_TRUE(ps.validate().empty());
  EXPECT_DOUBLE_EQ(ps.max_l1_norm, static_cast<double>(ps.n()) * static_cast<double>(ps.t) / 2);
}

TEST(BfvParams, RefusalsAreNamed) {
  bfv::ParameterRequest r;
  r.t_bits = 41;
  r.max_l1_norm = 1000;
  r.flood_bits = 30;
  EXPECT_NE(what_of([&] { bfv::select_parameters(r); }).find("s >= 40"), std::string::npos);
  r.flood_bits = 40;
  r.t_bits = 60;
  r.max_l1_norm = 1e300;  // about 2^997: needs a 2^16 ring
  r.max_log_n = 15;
  EXPECT_NE(what_of([&] { bfv::select_parameters(r); }).find("no 128-bit BFV parameters"), std::string::npos);
  const u64 t = bfv::plaintext_prime(20, 10);
  // Insecure without the opt-in.
  EXPECT_NE(what_of([&] {
              bfv::BfvParameters::create(10, {46, 50}, t, 0, 4096);
            }).find("128-bit"),
            std::string::npos);
  // Q too small for the flood, and a response level too low to decrypt.
  EXPECT_NE(what_of([&] {
              bfv::BfvParameters::create(10, {46, 30}, t, 0, 4096, 40, true);
            }).find("modulus too small for flooding"),
            std::string::npos);
  EXPECT_NE(what_of([&] {
              bfv::BfvParameters::create(10, {30, 50, 40}, t, 0, 4096, 40, true);
            }).find("response modulus too small"),
            std::string::npos);
  EXPECT_NE(what_of([&] {
              bfv::BfvParameters::create(10, {46, 50}, t, 0, 4096, 39, true);
            }).find("s >= 40"),
            std::string::npos);
  // No key-switching keys without special primes.
  auto ctx = bfv::BfvContext::create(toy_params());
  rlwe::KeyGenerator kg(ctx);
  EXPECT_NE(what_of([&] { kg.create_relin_keys(); }).find("no special primes"), std::string::npos);
}

TEST(BfvParams, NoiseBoundsFollowTheFormula) {
  const auto p = toy_params(4096);
  const auto nb = bfv::noise_bounds(p);
  const long double n = 1024, l = 4096;
  EXPECT_EQ(nb.fresh_sk, 19.5);
  EXPECT_EQ(nb.fresh_pk, 19 * (2 * n + 1) + 0.5);
  EXPECT_EQ(nb.evaluation, l * nb.fresh_pk + 0.5);
  EXPECT_EQ(nb.flood_log2, static_cast<int>(std::ceil(std::log2(static_cast<double>(nb.evaluation)))) + 40);
  EXPECT_EQ(nb.before_switch, nb.evaluation + 19 * (2 * n + 1) + std::ldexp(1.0L, nb.flood_log2));
}

}  // namespace
}  // namespace veil::test
