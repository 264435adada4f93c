#include "veil/he/mac.hpp"

#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/he/mac_impl.hpp"
#include "veil/he/mac_kernels.hpp"
#include "veil/math/cpu.hpp"

namespace veil::he {

namespace {
bool avx512() { return math::simd_level() == math::SimdLevel::kAvx512; }
bool avx2() { return math::simd_level() >= math::SimdLevel::kAvx2; }
}  // namespace

void mac_pointwise(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                   std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (avx512()) return mac_pointwise_avx512(q, n, w, x, polys, out);
  if (avx2()) return mac_pointwise_avx2(q, n, w, x, polys, out);
  mac(
      q, n, w.size(), [&](std::size_t t, std::size_t j) { return w[t][j]; }, x, polys, out);
}

void pack_residues(const u64* src, std::size_t n, PackedWidth w, std::uint32_t* lo, std::uint8_t* hi,
                   std::uint16_t* hi16) {
  const int bits = w == PackedWidth::k32 ? 32 : w == PackedWidth::k34 ? 34 : 48;
  VEIL_REQUIRE((w == PackedWidth::k34) == (hi != nullptr) && (w == PackedWidth::k48) == (hi16 != nullptr),
               "packed arrays do not match the width");
  // One check for the whole row, not one per residue (this runs over every cached limb).
  u64 above = 0;
  for (std::size_t j = 0; j < n; ++j) above |= src[j] >> bits;
  VEIL_REQUIRE(above == 0, "residue does not fit " << bits << " bits");
  if (hi) std::fill(hi, hi + (n + 3) / 4, std::uint8_t{0});
  for (std::size_t j = 0; j < n; ++j) {
    lo[j] = static_cast<std::uint32_t>(src[j]);
    if (hi) hi[j >> 2] = static_cast<std::uint8_t>(hi[j >> 2] | ((src[j] >> 32) << (2 * (j & 3))));
    if (hi16) hi16[j] = static_cast<std::uint16_t>(src[j] >> 32);
  }
}

void unpack_residues(PackedRow row, std::size_t n, u64* dst) {
  for (std::size_t j = 0; j < n; ++j) dst[j] = packed_at(row, j);
}

void mac_pointwise_packed(const math::Modulus& q, std::size_t n, std::span<const PackedRow> w,
                          std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  VEIL_REQUIRE(packable(q), "packed weights need a prime below 2^" << kPackedBits);
  if (avx512()) return mac_pointwise_packed_avx512(q, n, w, x, polys, out);
  if (avx2()) return mac_pointwise_packed_avx2(q, n, w, x, polys, out);
  mac(
      q, n, w.size(), [&](std::size_t t, std::size_t j) { return packed_at(w[t], j); }, x, polys, out);
}

void mac_scalar(const math::Modulus& q, std::size_t n, std::span<const u64> w, std::span<const u64* const> x,
                std::size_t polys, u64* const* out) {
  const u64* row = w.data();
  mac_scalar_rows(q, n, 1, w.size(), &row, x, polys, out);
}

void mac_scalar_rows(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                     const u64* const* w, std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  if (avx512()) return mac_scalar_rows_avx512(q, n, rows, terms, w, x, polys, out);
  if (avx2()) return mac_scalar_rows_avx2(q, n, rows, terms, w, x, polys, out);
  mac_rows(q, n, rows, terms, w, x, polys, out);
}

void mac_scalar_rows_signed(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                            const std::int32_t* const* w, std::span<const u64* const> x, std::size_t polys,
                            u64* const* out) {
  if (avx2()) return mac_scalar_rows_signed_avx2(q, n, rows, terms, w, x, polys, out);
  mac_rows_signed_portable(q, n, rows, terms, w, x, polys, out);
}

}  // namespace veil::he
