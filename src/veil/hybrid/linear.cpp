#include "veil/hybrid/linear.hpp"

#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/hybrid/linear_kernels.hpp"
#include "veil/math/cpu.hpp"

namespace veil::hybrid::detail {

void accumulate_rows(const QuantLinear& q, const std::int32_t* digits, int r0, int r1, std::int64_t* acc) {
  const int* col = q.col.data();
  const std::int32_t* w = q.weight.data();
  for (int r = r0; r < r1; ++r) {
    std::int64_t s[kLanes] = {};
    const std::int64_t e0 = q.row_ptr[static_cast<std::size_t>(r)],
                       e1 = q.row_ptr[static_cast<std::size_t>(r) + 1];
    for (std::int64_t e = e0; e < e1; ++e) {
      const std::int64_t wv = w[e];
      const std::int32_t* d = digits + static_cast<std::ptrdiff_t>(col[e]) * kLanes;
      for (int j = 0; j < kLanes; ++j) s[j] += wv * d[j];
    }
    for (int j = 0; j < kLanes; ++j) acc[static_cast<std::ptrdiff_t>(r - r0) * kLanes + j] = s[j];
  }
}

}  // namespace veil::hybrid::detail

namespace veil::hybrid {

namespace {

using i64 = std::int64_t;
using u128 = unsigned __int128;
using i128 = __int128;

void check(const mpc::Field& f, const QuantLinear& q, std::span<const u64> x) {
  VEIL_REQUIRE(x.size() == static_cast<std::size_t>(q.cols) * static_cast<std::size_t>(f.words()),
               "linear layer input has " << x.size() / static_cast<std::size_t>(f.words())
                                         << " values, the layer expects " << q.cols);
}

u64 reduce_signed(const math::Modulus& m, i128 v) {
  const bool neg = v < 0;
  const u128 mag = static_cast<u128>(neg ? -v : v);
  const u64 r = m.reduce128(mag);
  return neg ? m.neg(r) : r;
}

// One pass over the weights for every plane of the input: a plane is 31-bit digits of
// one residue (plane j of residue res[j], digit weight 2^shift[j]). kPlanes: 2 for one
// 61-bit prime (low and high digits), 3 with a second prime below 2^31, at most 4.
template <int kPlanes>
std::vector<u64> apply_planes(const mpc::Field& f, const QuantLinear& q, std::span<const u64> x,
                              bool add_bias, const int (&res)[kPlanes], const int (&shift)[kPlanes]) {
  static_assert(kPlanes <= detail::kLanes);
  constexpr u64 kLoMask = (u64{1} << 31) - 1;
  constexpr std::size_t kL = detail::kLanes;
  const std::size_t words = static_cast<std::size_t>(f.words());
  std::vector<std::int32_t> xs(static_cast<std::size_t>(q.cols) * kL, 0);
  for (std::size_t c = 0; c < static_cast<std::size_t>(q.cols); ++c)
    for (int j = 0; j < kPlanes; ++j)
      xs[c * kL + static_cast<std::size_t>(j)] =
          static_cast<std::int32_t>((x[c * words + static_cast<std::size_t>(res[j])] >> shift[j]) & kLoMask);
  std::vector<u64> y(static_cast<std::size_t>(q.rows) * words);
  u64 scale[kPlanes];
  for (int j = 0; j < kPlanes; ++j) scale[j] = f.mod(res[j]).reduce(u64{1} << shift[j]);
  const bool avx2 = math::simd_level() >= math::SimdLevel::kAvx2;
  constexpr int kBlock = 64;
  const std::size_t blocks = static_cast<std::size_t>((q.rows + kBlock - 1) / kBlock);
  parallel_for(blocks, [&](std::size_t b) {
    const int r0 = static_cast<int>(b) * kBlock, r1 = std::min(q.rows, r0 + kBlock);
    std::int64_t acc[kBlock * kL];
    if (avx2)
      detail::accumulate_rows_avx2(q, xs.data(), r0, r1, acc);
    else
      detail::accumulate_rows(q, xs.data(), r0, r1, acc);
    for (int r = r0; r < r1; ++r) {
      const std::int64_t* a = acc + static_cast<std::size_t>(r - r0) * kL;
      const std::size_t out = static_cast<std::size_t>(r) * words;
      for (std::size_t k = 0; k < words; ++k) y[out + k] = 0;
      for (int j = 0; j < kPlanes; ++j) {
        const math::Modulus& m = f.mod(res[j]);
        u64& dst = y[out + static_cast<std::size_t>(res[j])];
        dst = m.add(dst, m.mul(reduce_signed(m, a[j]), scale[j]));
      }
      if (add_bias)
        for (std::size_t k = 0; k < words; ++k) {
          const math::Modulus& m = f.mod(static_cast<int>(k));
          y[out + k] = m.add(y[out + k], reduce_signed(m, q.bias[static_cast<std::size_t>(r)]));
        }
    }
  });
  return y;
}

}  // namespace

std::vector<u64> apply_reference(const mpc::Field& f, const QuantLinear& q, std::span<const u64> x,
                                 bool add_bias) {
  check(f, q, x);
  const std::size_t words = static_cast<std::size_t>(f.words());
  std::vector<u64> y(static_cast<std::size_t>(q.rows) * words);
  for (std::size_t k = 0; k < words; ++k)
    for (int r = 0; r < q.rows; ++r) {
      i128 acc = add_bias ? q.bias[static_cast<std::size_t>(r)] : 0;
      for (i64 e = q.row_ptr[static_cast<std::size_t>(r)]; e < q.row_ptr[static_cast<std::size_t>(r) + 1];
           ++e)
        acc += static_cast<i128>(q.weight[static_cast<std::size_t>(e)]) *
               static_cast<i128>(x[static_cast<std::size_t>(q.col[static_cast<std::size_t>(e)]) * words + k]);
      y[static_cast<std::size_t>(r) * words + k] = reduce_signed(f.mod(static_cast<int>(k)), acc);
    }
  return y;
}

std::vector<u64> apply(const mpc::Field& f, const QuantLinear& q, std::span<const u64> x, bool add_bias) {
  check(f, q, x);
  // |digit * w| < 2^31 * |w|, summed: < 2^31 * max_row_l1 <= 2^62 keeps an int64 exact.
  if (q.max_row_l1 >= (i64{1} << 31)) return apply_reference(f, q, x, add_bias);
  if (f.words() == 1) return apply_planes<2>(f, q, x, add_bias, {0, 0}, {0, 31});
  if (f.p(1) <= (u64{1} << 31)) return apply_planes<3>(f, q, x, add_bias, {0, 0, 1}, {0, 31, 0});
  return apply_planes<4>(f, q, x, add_bias, {0, 0, 1, 1}, {0, 31, 0, 31});
}

}  // namespace veil::hybrid
