// Multiply-accumulate kernels for the linear layers: out = sum_t w_t * x_t (mod q) over
// both polynomials of a ciphertext, reducing once per coefficient instead of per term.
//
// Primes below 2^32 (CKKS scales of up to 32 bits, the common case for CNN inference)
// accumulate 32x32 -> 64-bit products in 64-bit lanes, which vectorise (AVX2 vpmuludq),
// reducing only every floor(2^64 / q^2) terms; larger primes use 128-bit accumulators
// with a Barrett reduction every 32 terms. The AVX2 pointwise kernels fold instead of
// reducing below 2^31 (the latency mode's 2^30 chains) and work in doubles from 33 to 50
// bits; AVX-512 machines take the IFMA kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "veil/math/modarith.hpp"

namespace veil::he {

using math::u64;

// x holds, for each term t, the pointers to its `polys` polynomials (limb i) at
// x[t * polys + c]; out[c] receives polynomial c of the sum.

// Pointwise weights (a plaintext per term): out_c[j] = sum_t w[t][j] * x_c[t][j].
void mac_pointwise(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                   std::span<const u64* const> x, std::size_t polys, u64* const* out);

// Residues of a prime below 2^48 (the NTT form of a plaintext, as cached weight
// diagonals are) stored in fewer than 8 bytes: the low 32 bits in `lo`, and what is above
// them by the prime's width (packed_width):
//   k32, primes below 2^32 (the latency mode's 30-bit chains): nothing more, 4 bytes;
//   k34, below 2^34: two bits each in `hi`, four residues a byte (residue j at bits
//     2 (j mod 4)), 4.25 bytes;
//   k48, below 2^48 (the 40-odd-bit base prime): 16 bits each in `hi16`, 6 bytes.
// The pointwise products are bound by the weights' memory traffic, so this is also about
// half the traffic of 8-byte residues.
enum class PackedWidth { k32, k34, k48 };
struct PackedRow {
  const std::uint32_t* lo = nullptr;
  const std::uint8_t* hi = nullptr;     // k34
  const std::uint16_t* hi16 = nullptr;  // k48
  // The row from residue j on (j a multiple of 4).
  PackedRow from(std::size_t j) const {
    return {lo + j, hi ? hi + j / 4 : nullptr, hi16 ? hi16 + j : nullptr};
  }
};
constexpr int kPackedBits = 48;
inline bool packable(const math::Modulus& q) { return q.value() < (u64{1} << kPackedBits); }
inline PackedWidth packed_width(const math::Modulus& q) {
  return q.value() < (u64{1} << 32)   ? PackedWidth::k32
         : q.value() < (u64{1} << 34) ? PackedWidth::k34
                                      : PackedWidth::k48;
}
// Bytes of n residues packed at width w.
inline std::size_t packed_bytes(PackedWidth w, std::size_t n) {
  return n * sizeof(std::uint32_t) + (w == PackedWidth::k34   ? (n + 3) / 4
                                      : w == PackedWidth::k48 ? n * sizeof(std::uint16_t)
                                                              : 0);
}
inline u64 packed_at(PackedRow row, std::size_t j) {
  if (row.hi16) return row.lo[j] | static_cast<u64>(row.hi16[j]) << 32;
  if (row.hi) return row.lo[j] | (static_cast<u64>((row.hi[j >> 2] >> (2 * (j & 3))) & 3) << 32);
  return row.lo[j];
}
// n residues -> lo[n], and hi[(n + 3) / 4] (k34) or hi16[n] (k48), null where the width
// has none; throws if a residue does not fit the width.
void pack_residues(const u64* src, std::size_t n, PackedWidth w, std::uint32_t* lo, std::uint8_t* hi,
                   std::uint16_t* hi16);
void unpack_residues(PackedRow row, std::size_t n, u64* dst);

// mac_pointwise with packed weights (q packable).
void mac_pointwise_packed(const math::Modulus& q, std::size_t n, std::span<const PackedRow> w,
                          std::span<const u64* const> x, std::size_t polys, u64* const* out);

// One scalar weight per term (already reduced mod q): out_c[j] = sum_t w[t] * x_c[t][j].
void mac_scalar(const math::Modulus& q, std::size_t n, std::span<const u64> w, std::span<const u64* const> x,
                std::size_t polys, u64* const* out);

// `rows` outputs over the same terms at once (the inputs are read once for all of them):
// out[r * polys + c][j] = sum_t w[r][t] * x_c[t][j], w[r] holding `terms` weights.
void mac_scalar_rows(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                     const u64* const* w, std::span<const u64* const> x, std::size_t polys, u64* const* out);

// The same with signed weights of magnitude below 2^31 (integers w * 2^s with s small, as
// a throughput-mode layer's weights at its rescaling prime), for primes of up to 62 bits;
// the fast path for primes too wide for the 32-bit accumulators of mac_scalar_rows.
void mac_scalar_rows_signed(const math::Modulus& q, std::size_t n, std::size_t rows, std::size_t terms,
                            const std::int32_t* const* w, std::span<const u64* const> x, std::size_t polys,
                            u64* const* out);

}  // namespace veil::he
