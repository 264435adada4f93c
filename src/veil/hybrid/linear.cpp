#include "veil/hybrid/linear.hpp"

#include <algorithm>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"

namespace veil::hybrid {

namespace {

using i64 = std::int64_t;
using u128 = unsigned __int128;
using i128 = __int128;

void check(const QuantLinear& q, std::span<const u64> x) {
  VEIL_REQUIRE(static_cast<int>(x.size()) == q.cols,
               "linear layer input has " << x.size() << " values, the layer expects " << q.cols);
}

u64 reduce_signed(const mpc::Field& f, i128 v) {
  const bool neg = v < 0;
  const u128 mag = static_cast<u128>(neg ? -v : v);
  const u64 r = f.mod().reduce128(mag);
  return neg ? f.mod().neg(r) : r;
}

}  // namespace

std::vector<u64> apply_reference(const mpc::Field& f, const QuantLinear& q, std::span<const u64> x,
                                 bool add_bias) {
  check(q, x);
  std::vector<u64> y(static_cast<std::size_t>(q.rows));
  for (int r = 0; r < q.rows; ++r) {
    i128 acc = add_bias ? q.bias[static_cast<std::size_t>(r)] : 0;
    for (i64 e = q.row_ptr[static_cast<std::size_t>(r)]; e < q.row_ptr[static_cast<std::size_t>(r) + 1]; ++e)
      acc += static_cast<i128>(q.weight[static_cast<std::size_t>(e)]) *
             static_cast<i128>(x[static_cast<std::size_t>(q.col[static_cast<std::size_t>(e)])]);
    y[static_cast<std::size_t>(r)] = reduce_signed(f, acc);
  }
  return y;
}

std::vector<u64> apply(const mpc::Field& f, const QuantLinear& q, std::span<const u64> x, bool add_bias) {
  check(q, x);
  // |lo * w| < 2^31 * |w|, summed: < 2^31 * max_row_l1 <= 2^62 keeps an int64 exact.
  if (q.max_row_l1 >= (i64{1} << 31)) return apply_reference(f, q, x, add_bias);
  constexpr u64 kLoMask = (u64{1} << 31) - 1;
  std::vector<std::int32_t> lo(x.size()), hi(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    lo[i] = static_cast<std::int32_t>(x[i] & kLoMask);
    hi[i] = static_cast<std::int32_t>(x[i] >> 31);
  }
  std::vector<u64> y(static_cast<std::size_t>(q.rows));
  const u64 two31 = u64{1} << 31;
  constexpr int kBlock = 64;
  const std::size_t blocks = static_cast<std::size_t>((q.rows + kBlock - 1) / kBlock);
  parallel_for(blocks, [&](std::size_t b) {
    const int r0 = static_cast<int>(b) * kBlock, r1 = std::min(q.rows, r0 + kBlock);
    for (int r = r0; r < r1; ++r) {
      i64 acc_lo = 0, acc_hi = 0;
      const i64 e0 = q.row_ptr[static_cast<std::size_t>(r)], e1 = q.row_ptr[static_cast<std::size_t>(r) + 1];
      const int* col = q.col.data();
      const std::int32_t* w = q.weight.data();
      for (i64 e = e0; e < e1; ++e) {
        const i64 wv = w[e];
        const int c = col[e];
        acc_lo += wv * lo[static_cast<std::size_t>(c)];
        acc_hi += wv * hi[static_cast<std::size_t>(c)];
      }
      // y = hi * 2^31 + lo (+ bias), each part reduced once.
      const u64 h = f.mod().mul(reduce_signed(f, acc_hi), two31);
      i128 rest = acc_lo;
      if (add_bias) rest += q.bias[static_cast<std::size_t>(r)];
      y[static_cast<std::size_t>(r)] = f.mod().add(h, reduce_signed(f, rest));
    }
  });
  return y;
}

}  // namespace veil::hybrid
