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

// Two plans of one network are the same plan: parameters, levels, keys, and every stage's
// layouts and diagonal positions (plan_from_choice against make_plan).
inline void expect_same_plan(const Plan& a, const Plan& b) {
  EXPECT_EQ(a.describe(), b.describe());
  EXPECT_EQ(a.params.q, b.params.q);
  EXPECT_EQ(a.params.p, b.params.p);
  EXPECT_EQ(a.params.dnum, b.params.dnum);
  EXPECT_EQ(a.params.scale, b.params.scale);
  EXPECT_EQ(a.small_params.has_value(), b.small_params.has_value());
  if (a.small_params && b.small_params) {
    EXPECT_EQ(a.small_params->q, b.small_params->q);
  }
  EXPECT_EQ(a.depth, b.depth);
  EXPECT_EQ(a.rotation_steps, b.rotation_steps);
  EXPECT_EQ(a.rotation_key_levels, b.rotation_key_levels);
  EXPECT_EQ(a.small_rotation_steps, b.small_rotation_steps);
  EXPECT_EQ(a.small_rotation_key_levels, b.small_rotation_key_levels);
  EXPECT_EQ(a.conjugation_key_level, b.conjugation_key_level);
  EXPECT_EQ(a.small_conjugation_key_level, b.small_conjugation_key_level);
  EXPECT_EQ(a.predicted_seconds, b.predicted_seconds);
  EXPECT_TRUE(a.packing.input == b.packing.input);
  EXPECT_TRUE(a.packing.output == b.packing.output);
  EXPECT_EQ(a.packing.switch_after, b.packing.switch_after);
  ASSERT_EQ(a.packing.stages.size(), b.packing.stages.size());
  for (std::size_t k = 0; k < a.packing.stages.size(); ++k) {
    const PackedStage &x = a.packing.stages[k], &y = b.packing.stages[k];
    EXPECT_TRUE(x.in == y.in && x.out == y.out) << "stage " << k;
    EXPECT_EQ(x.fold, y.fold) << "stage " << k;
    EXPECT_EQ(x.giant_step, y.giant_step) << "stage " << k;
    EXPECT_EQ(x.levels, y.levels) << "stage " << k;
    EXPECT_EQ(x.counts.rotations(), y.counts.rotations()) << "stage " << k;
    EXPECT_EQ(x.counts.plaintext_mults, y.counts.plaintext_mults) << "stage " << k;
    EXPECT_EQ(x.spec.unit, y.spec.unit) << "stage " << k;
    EXPECT_EQ(x.spec.fold_steps, y.spec.fold_steps) << "stage " << k;
    ASSERT_EQ(x.spec.diagonals.size(), y.spec.diagonals.size()) << "stage " << k;
    for (std::size_t d = 0; d < x.spec.diagonals.size(); ++d) {
      const auto &u = x.spec.diagonals[d], &v = y.spec.diagonals[d];
      EXPECT_TRUE(u.out_block == v.out_block && u.in_block == v.in_block && u.step == v.step)
          << "stage " << k << " diagonal " << d;
    }
  }
}

}  // namespace veil::nn::test
