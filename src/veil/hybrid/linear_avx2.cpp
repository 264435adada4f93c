// The AVX2 row kernel: per weight, the four digits of its column widened to 64-bit lanes
// and multiplied by the weight in one signed 32 x 32 -> 64 multiply (vpmuldq), so all
// planes of both residues cost about what one plane costs in scalar code.
#include <immintrin.h>

#include "veil/hybrid/linear_kernels.hpp"

namespace veil::hybrid::detail {

void accumulate_rows_avx2(const QuantLinear& q, const std::int32_t* digits, int r0, int r1,
                          std::int64_t* acc) {
  const int* col = q.col.data();
  const std::int32_t* w = q.weight.data();
  for (int r = r0; r < r1; ++r) {
    __m256i sum = _mm256_setzero_si256();
    const std::int64_t e0 = q.row_ptr[static_cast<std::size_t>(r)],
                       e1 = q.row_ptr[static_cast<std::size_t>(r) + 1];
    for (std::int64_t e = e0; e < e1; ++e) {
      const __m128i d = _mm_loadu_si128(
          reinterpret_cast<const __m128i*>(digits + static_cast<std::ptrdiff_t>(col[e]) * kLanes));
      const __m256i x = _mm256_cvtepi32_epi64(d);
      sum = _mm256_add_epi64(sum, _mm256_mul_epi32(x, _mm256_set1_epi64x(w[e])));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + static_cast<std::ptrdiff_t>(r - r0) * kLanes), sum);
  }
}

}  // namespace veil::hybrid::detail
