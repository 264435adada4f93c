// Internal to hybrid/linear.cpp: the row kernels of the online linear layer, declared once
// for the portable build (linear.cpp) and the AVX2 build (linear_avx2.cpp, chosen at run
// time by math::simd_level()).
//
// Input: the digit planes of every column, 4 int32 per column (unused planes zero), each
// digit below 2^31. Output: for each row r in [r0, r1), 4 int64 sums of weight * digit
// (exact while sum_j |w_rj| < 2^31, QuantLinear::max_row_l1).
#pragma once

#include <cstdint>

#include "veil/hybrid/program.hpp"

namespace veil::hybrid::detail {

inline constexpr int kLanes = 4;

void accumulate_rows(const QuantLinear& q, const std::int32_t* digits, int r0, int r1, std::int64_t* acc);
void accumulate_rows_avx2(const QuantLinear& q, const std::int32_t* digits, int r0, int r1,
                          std::int64_t* acc);

}  // namespace veil::hybrid::detail
