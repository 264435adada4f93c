// Shared helpers for the CKKS tests: toy contexts (insecure, explicit opt-in), random
// inputs with fixed seeds, and precision in bits (-log2 of the max absolute error), as in
// Lattigo's tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <memory>
#include <random>
#include <vector>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::test {

using ckks::Complex;

inline double precision_bits(const std::vector<Complex>& got, const std::vector<Complex>& want) {
  double err = 0;
  for (std::size_t i = 0; i < want.size(); ++i) err = std::max(err, std::abs(got[i] - want[i]));
  return err == 0 ? 60.0 : -std::log2(err);
}

inline std::vector<Complex> random_complex(std::size_t n, std::uint64_t seed, double bound = 1.0) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> d(-bound, bound);
  std::vector<Complex> v(n);
  for (auto& x : v) x = Complex(d(g), d(g));
  return v;
}

// Everything a CKKS test needs, built once per parameter set.
struct Fixture {
  ckks::ContextPtr ctx;
  std::unique_ptr<rlwe::KeyGenerator> keygen;
  std::unique_ptr<ckks::CkksEncoder> encoder;
  rlwe::PublicKey pk;
  rlwe::RelinKeys rk;
  std::unique_ptr<ckks::Encryptor> encryptor;
  std::unique_ptr<ckks::Decryptor> decryptor;
  std::unique_ptr<ckks::Evaluator> evaluator;

  explicit Fixture(const ckks::CkksParameters& p) {
    ctx = ckks::CkksContext::create(p);
    keygen = std::make_unique<rlwe::KeyGenerator>(ctx);
    encoder = std::make_unique<ckks::CkksEncoder>(ctx);
    pk = keygen->create_public_key();
    rk = keygen->create_relin_keys();
    encryptor = std::make_unique<ckks::Encryptor>(ctx, pk);
    decryptor = std::make_unique<ckks::Decryptor>(ctx, keygen->secret_key());
    evaluator = std::make_unique<ckks::Evaluator>(ctx);
  }
  double scale() const { return ctx->params().scale; }
  ckks::Ciphertext encrypt(const std::vector<Complex>& v, int level = -1, std::size_t slots = 0) const {
    if (level < 0) level = ctx->max_level();
    return encryptor->encrypt(encoder->encode(v, scale(), level, slots));
  }
  std::vector<Complex> decrypt(const ckks::Ciphertext& ct) const {
    return encoder->decode(decryptor->decrypt(ct));
  }
};

// Toy parameters: N = 2^log_n, a 60-bit base prime, `levels` 40-bit primes, and enough
// 61-bit special primes that P exceeds every key-switching digit. Insecure by
// construction; the explicit opt-in is the point.
inline ckks::CkksParameters toy_params(int log_n = 10, int levels = 4, int dnum = 1) {
  std::vector<int> q = {60};
  for (int i = 0; i < levels; ++i) q.push_back(40);
  const int alpha = rlwe::key_switch_digit_size(static_cast<std::size_t>(levels + 1), dnum);
  const int digit_bits = 60 + 40 * (alpha - 1);
  const int special = (digit_bits + 60) / 61;
  return ckks::CkksParameters::create(log_n, q, std::vector<int>(special, 61), 40, dnum,
                                      /*allow_insecure=*/true);
}

}  // namespace veil::test

// The CKKS tests use the RLWE core's keys, key generator and serialisers unqualified.
namespace veil::ckks {
using namespace veil::rlwe;
}  // namespace veil::ckks
