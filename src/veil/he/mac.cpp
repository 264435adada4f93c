#include "veil/he/mac.hpp"

#include "veil/he/mac_impl.hpp"
#include "veil/math/cpu.hpp"

namespace veil::he {

// AVX2 builds of the same kernels (mac_avx2.cpp).
void mac_pointwise_avx2(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                        std::span<const u64* const> x, std::size_t polys, u64* const* out);
void mac_scalar_rows_avx2(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                          const u64* const* w, std::span<const u64* const> x, std::size_t polys, u64* const* out);

void mac_scalar_rows_signed_avx2(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                                 const std::int32_t* const* w, std::span<const u64* const> x, std::size_t polys,
                                 u64* const* out);

void mac_pointwise(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                   std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (math::simd_enabled() && math::cpu_features().avx2_fma) return mac_pointwise_avx2(q, n, w, x, polys, out);
  mac(q, n, w.size(), [&](std::size_t t, std::size_t j) { return w[t][j]; }, x, polys, out);
}

void mac_scalar(const math::Modulus& q, std::size_t n, std::span<const u64> w, std::span<const u64* const> x,
                std::size_t polys, u64* const* out) {
  const u64* row = w.data();
  mac_scalar_rows(q, n, 1, w.size(), &row, x, polys, out);
}

void mac_scalar_rows(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                     const u64* const* w, std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (math::simd_enabled() && math::cpu_features().avx2_fma)
    return mac_scalar_rows_avx2(q, n, rows, terms, w, x, polys, out);
  mac_rows(q, n, rows, terms, w, x, polys, out);
}

void mac_scalar_rows_signed(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                            const std::int32_t* const* w, std::span<const u64* const> x, std::size_t polys,
                            u64* const* out) {
  if (math::simd_enabled() && math::cpu_features().avx2_fma)
    return mac_scalar_rows_signed_avx2(q, n, rows, terms, w, x, polys, out);
  mac_rows_signed_portable(q, n, rows, terms, w, x, polys, out);
}

}  // namespace veil::he
