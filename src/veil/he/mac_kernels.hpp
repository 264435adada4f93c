// The per-level builds of the multiply-accumulate kernels (internal to he/): mac.cpp
// dispatches to them, mac_avx512.cpp hands what it does not cover to the AVX2 ones.
#pragma once

#include <cstdint>
#include <span>

#include "veil/he/mac.hpp"

namespace veil::he {

// AVX2 builds of the same kernels (mac_avx2.cpp).
void mac_pointwise_avx2(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                        std::span<const u64* const> x, std::size_t polys, u64* const* out);
void mac_pointwise_packed_avx2(const math::Modulus& q, std::size_t n, std::span<const PackedRow> w,
                               std::span<const u64* const> x, std::size_t polys, u64* const* out);
void mac_scalar_rows_avx2(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                          const u64* const* w, std::span<const u64* const> x, std::size_t polys,
                          u64* const* out);

void mac_scalar_rows_signed_avx2(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                                 const std::int32_t* const* w, std::span<const u64* const> x,
                                 std::size_t polys, u64* const* out);

// AVX-512 builds (mac_avx512.cpp); they hand the cases they do not cover to the AVX2 ones.
void mac_pointwise_avx512(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                          std::span<const u64* const> x, std::size_t polys, u64* const* out);
void mac_pointwise_packed_avx512(const math::Modulus& q, std::size_t n, std::span<const PackedRow> w,
                                 std::span<const u64* const> x, std::size_t polys, u64* const* out);
void mac_scalar_rows_avx512(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                            const u64* const* w, std::span<const u64* const> x, std::size_t polys,
                            u64* const* out);

}  // namespace veil::he
