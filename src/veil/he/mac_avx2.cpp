// The multiply-accumulate kernels compiled for AVX2 (4-lane vpmuludq on the sub-32-bit
// path); mac.cpp calls them when the CPU has AVX2 and SIMD is enabled.
#include "veil/he/mac.hpp"
#include "veil/he/mac_impl.hpp"

namespace veil::he {

void mac_pointwise_avx2(const math::Modulus& q, std::size_t n, std::span<const u64* const> w,
                        std::span<const u64* const> x, std::size_t polys, u64* const* out) {
  mac(q, n, w.size(), [&](std::size_t t, std::size_t j) { return w[t][j]; }, x, polys, out);
}

void mac_scalar_avx2(const math::Modulus& q, std::size_t n, std::span<const u64> w, std::span<const u64* const> x,
                     std::size_t polys, u64* const* out) {
  mac(q, n, w.size(), [&](std::size_t t, std::size_t) { return w[t]; }, x, polys, out);
}

}  // namespace veil::he
