// Shared helpers for the BFV tests: toy contexts (insecure, explicit opt-in), random
// inputs from printed seeds, and the plain references (negacyclic products mod t,
// convolutions) the encrypted results are compared with.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "veil/bfv/encoder.hpp"
#include "veil/bfv/encryptor.hpp"
#include "veil/bfv/evaluator.hpp"
#include "veil/bfv/flood.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::test {

using bfv::u64;

// A fresh random seed, printed by the test on failure (SCOPED_TRACE).
inline std::uint64_t fresh_seed() {
  return std::random_device{}() * 0x9e3779b97f4a7c15ull ^ std::random_device{}();
}

// N = 2^10, t a 20-bit batching prime, Q = 46 + 50 bits, responses at level 0; public L1
// bound 2^12. Insecure toy parameters, by explicit opt-in.
inline bfv::BfvParameters toy_params(double l1 = 4096, int log_n = 10) {
  const u64 t = bfv::plaintext_prime(20, log_n);
  return bfv::BfvParameters::create(log_n, {46, 50}, t, 0, l1, 40, true);
}

struct BfvFixture {
  bfv::ContextPtr ctx;
  std::unique_ptr<rlwe::KeyGenerator> keygen;
  rlwe::PublicKey pk;
  std::unique_ptr<bfv::Encryptor> sk_enc, pk_enc;
  std::unique_ptr<bfv::Decryptor> dec;
  std::unique_ptr<bfv::Evaluator> eval;
  std::unique_ptr<bfv::Flooder> flooder;

  explicit BfvFixture(const bfv::BfvParameters& p) {
    ctx = bfv::BfvContext::create(p);
    keygen = std::make_unique<rlwe::KeyGenerator>(ctx);
    pk = keygen->create_public_key();
    sk_enc = std::make_unique<bfv::Encryptor>(ctx, keygen->secret_key());
    pk_enc = std::make_unique<bfv::Encryptor>(ctx, pk);
    dec = std::make_unique<bfv::Decryptor>(ctx, keygen->secret_key());
    eval = std::make_unique<bfv::Evaluator>(ctx);
    flooder = std::make_unique<bfv::Flooder>(ctx, pk);
  }
  u64 t() const { return ctx->t(); }
};

inline std::vector<u64> random_mod(std::size_t n, u64 t, std::mt19937_64& g) {
  std::uniform_int_distribution<u64> d(0, t - 1);
  std::vector<u64> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

inline std::vector<std::int64_t> random_signed(std::size_t n, std::int64_t bound, std::mt19937_64& g) {
  std::uniform_int_distribution<std::int64_t> d(-bound, bound);
  std::vector<std::int64_t> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// a * b in Z_t[X]/(X^N + 1), schoolbook.
inline std::vector<u64> negacyclic_mod(const std::vector<u64>& a, const std::vector<u64>& b, u64 t) {
  const std::size_t n = a.size();
  const math::Modulus tm(t);
  std::vector<u64> r(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] == 0) continue;
    for (std::size_t j = 0; j < n; ++j) {
      const u64 p = tm.mul(a[i], b[j]);
      const std::size_t k = i + j;
      if (k < n) {
        r[k] = tm.add(r[k], p);
      } else {
        r[k - n] = tm.sub(r[k - n], p);
      }
    }
  }
  return r;
}

}  // namespace veil::test
