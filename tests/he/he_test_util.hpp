// Plain references shared by the he/ tests: what a diagonal linear map computes, the
// largest error between two decoded vectors, and random inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "veil/he/linear_transform.hpp"

namespace veil::test {

// n values uniform in [-bound, bound].
inline std::vector<double> random_vector(std::size_t n, std::mt19937_64& g, double bound = 1.0) {
  std::uniform_real_distribution<double> d(-bound, bound);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

inline double max_error(const std::vector<double>& got, const std::vector<double>& want) {
  double e = 0;
  for (std::size_t i = 0; i < want.size(); ++i) e = std::max(e, std::abs(got[i] - want[i]));
  return e;
}

// Plain semantics of a spec: out[bo][s] = sum values[s] * in[bi][(s + d) mod n], + bias, then folds.
inline std::vector<std::vector<double>> apply_plain(const he::LinearTransformSpec& spec,
                                                    const std::vector<std::vector<double>>& in) {
  const std::size_t n = spec.slots;
  std::vector<std::vector<double>> out(spec.out_blocks, std::vector<double>(n, 0.0));
  for (const auto& t : spec.diagonals)
    for (std::size_t s = 0; s < n; ++s)
      out[t.out_block][s] += (spec.unit ? 1.0 : t.values[s]) * in[t.in_block][(s + t.step) % n];
  for (int b = 0; b < spec.out_blocks; ++b) {
    if (!spec.bias.empty())
      for (std::size_t s = 0; s < n; ++s) out[b][s] += spec.bias[b][s];
    for (int f : spec.fold_steps) {
      std::vector<double> r(n);
      for (std::size_t s = 0; s < n; ++s) r[s] = out[b][(s + f) % n];
      for (std::size_t s = 0; s < n; ++s) out[b][s] += r[s];
    }
  }
  return out;
}

}  // namespace veil::test
