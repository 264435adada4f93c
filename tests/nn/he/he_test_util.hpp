// Shared by the encrypted-network tests: the client's half of a plan (context, keys,
// encoder, encryptor, decryptor) and the largest element-wise error.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "veil/ckks/encoder.hpp"
#include "veil/ckks/encryptor.hpp"
#include "veil/nn/he/encrypted.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/rlwe/keygen.hpp"

namespace veil::nn::test {

struct Client {
  ckks::ContextPtr ctx;
  rlwe::KeyGenerator keygen;
  ckks::CkksEncoder encoder;
  ckks::Encryptor encryptor;
  ckks::Decryptor decryptor;
  ResultRing result;  // decrypts the results (in the smaller ring after a ring switch)
  explicit Client(const Plan& plan)
      : ctx(ckks::CkksContext::create(plan.params)),
        keygen(ctx),
        encoder(ctx),
        encryptor(ctx, keygen.secret_key()),
        decryptor(ctx, keygen.secret_key()),
        result(plan, ctx, keygen.secret_key()) {}
};

inline double max_abs_error(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double e = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) e = std::max(e, std::abs(a[i] - b[i]));
  return e;
}

}  // namespace veil::nn::test
