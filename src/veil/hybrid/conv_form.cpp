#include "veil/hybrid/conv_form.hpp"

#include <algorithm>
#include <limits>

#include "veil/common/error.hpp"

namespace veil::hybrid {

namespace {
using i64 = std::int64_t;
}  // namespace

std::optional<ConvForm> as_convolution(const Op& op) {
  if (op.kind != Op::Kind::kLinear || !op.spatial || op.stride_y != op.stride_x) return std::nullopt;
  const QuantLinear& q = op.linear;
  const int C = op.in.c, H = op.in.h, W = op.in.w, M = op.out.c, Ho = op.out.h, Wo = op.out.w,
            s = op.stride_y;
  if (q.cols != C * H * W || q.rows != M * Ho * Wo || s < 1) return std::nullopt;
  // Each column's channel and pixel, looked up instead of divided out for every entry: a
  // CIFAR-10 model's stages hold tens of millions of entries, and this runs at every
  // hybrid start (lowering and the server's preprocessing set-up).
  std::vector<int> col_c(static_cast<std::size_t>(q.cols)), col_y(col_c.size()), col_x(col_c.size());
  for (int col = 0; col < q.cols; ++col) {
    col_c[static_cast<std::size_t>(col)] = col / (H * W);
    col_y[static_cast<std::size_t>(col)] = (col / W) % H;
    col_x[static_cast<std::size_t>(col)] = col % W;
  }
  // Offsets of every entry relative to its output pixel's window origin.
  int dy_min = std::numeric_limits<int>::max(), dy_max = std::numeric_limits<int>::min();
  int dx_min = dy_min, dx_max = dy_max;
  for (int r = 0; r < q.rows; ++r) {
    const int i = (r / Wo) % Ho, j = r % Wo;
    for (i64 e = q.row_ptr[static_cast<std::size_t>(r)]; e < q.row_ptr[static_cast<std::size_t>(r) + 1];
         ++e) {
      const auto col = static_cast<std::size_t>(q.col[static_cast<std::size_t>(e)]);
      const int dy = col_y[col] - i * s, dx = col_x[col] - j * s;
      dy_min = std::min(dy_min, dy), dy_max = std::max(dy_max, dy);
      dx_min = std::min(dx_min, dx), dx_max = std::max(dx_max, dx);
    }
  }
  if (q.weight.empty() || dy_min != dx_min || dy_min > 0) return std::nullopt;
  const int pad = -dy_min, kh = dy_max - dy_min + 1, kw = dx_max - dx_min + 1;
  // The output size this convolution would have must be the stage's.
  if ((H + 2 * pad - kh) / s + 1 != Ho || (W + 2 * pad - kw) / s + 1 != Wo || H + 2 * pad < kh ||
      W + 2 * pad < kw)
    return std::nullopt;
  ConvForm f;
  f.shape = bfv::ConvShape{C, H, W, M, kh, kw, s, pad};
  f.kernel.assign(static_cast<std::size_t>(M) * C * kh * kw, 0);
  std::vector<char> seen(f.kernel.size(), 0);
  for (int r = 0; r < q.rows; ++r) {
    const int m = r / (Ho * Wo), i = (r / Wo) % Ho, j = r % Wo;
    for (i64 e = q.row_ptr[static_cast<std::size_t>(r)]; e < q.row_ptr[static_cast<std::size_t>(r) + 1];
         ++e) {
      const auto col = static_cast<std::size_t>(q.col[static_cast<std::size_t>(e)]);
      const int c = col_c[col], dy = col_y[col] - i * s + pad, dx = col_x[col] - j * s + pad;
      const std::size_t k = ((static_cast<std::size_t>(m) * C + c) * kh + dy) * kw + dx;
      const i64 w = q.weight[static_cast<std::size_t>(e)];
      if (seen[k] && f.kernel[k] != w) return std::nullopt;  // not translation invariant
      f.kernel[k] = w, seen[k] = 1;
    }
  }
  // Every non-zero kernel tap inside the image must be an entry: then the matrix and the
  // convolution agree entry for entry (entries were matched above, counts close it). Tap
  // (dy, dx) falls inside the image at rows_in[dy] x cols_in[dx] output pixels.
  std::vector<i64> rows_in(static_cast<std::size_t>(kh), 0), cols_in(static_cast<std::size_t>(kw), 0);
  for (int dy = 0; dy < kh; ++dy)
    for (int i = 0; i < Ho; ++i)
      rows_in[static_cast<std::size_t>(dy)] += i * s + dy - pad >= 0 && i * s + dy - pad < H;
  for (int dx = 0; dx < kw; ++dx)
    for (int j = 0; j < Wo; ++j)
      cols_in[static_cast<std::size_t>(dx)] += j * s + dx - pad >= 0 && j * s + dx - pad < W;
  i64 expected = 0;
  for (std::size_t k = 0; k < f.kernel.size(); ++k)
    if (f.kernel[k] != 0)
      expected += rows_in[(k / static_cast<std::size_t>(kw)) % static_cast<std::size_t>(kh)] *
                  cols_in[k % static_cast<std::size_t>(kw)];
  if (expected != static_cast<i64>(q.weight.size()) - std::count(q.weight.begin(), q.weight.end(), 0))
    return std::nullopt;
  // A per-channel layer (a batch norm left on a residual stream) is a convolution whose
  // kernel is zero off the diagonal m = c.
  if (M == C && C > 1) {
    bool diagonal = true;
    for (std::size_t k = 0; k < f.kernel.size() && diagonal; ++k) {
      const std::size_t mc = k / (static_cast<std::size_t>(kh) * kw);
      diagonal = f.kernel[k] == 0 || mc / static_cast<std::size_t>(C) == mc % static_cast<std::size_t>(C);
    }
    f.shape.depthwise = diagonal;
  }
  return f;
}

ConvForm as_matvec(const Op& op) {
  VEIL_REQUIRE(op.kind == Op::Kind::kLinear, "op '" << op.name << "' is not a linear layer");
  const QuantLinear& q = op.linear;
  ConvForm f;
  f.shape = bfv::ConvShape::matvec(q.cols, q.rows);
  f.kernel.assign(static_cast<std::size_t>(q.rows) * static_cast<std::size_t>(q.cols), 0);
  for (int r = 0; r < q.rows; ++r)
    for (i64 e = q.row_ptr[static_cast<std::size_t>(r)]; e < q.row_ptr[static_cast<std::size_t>(r) + 1]; ++e)
      f.kernel[static_cast<std::size_t>(r) * static_cast<std::size_t>(q.cols) +
               static_cast<std::size_t>(q.col[static_cast<std::size_t>(e)])] =
          q.weight[static_cast<std::size_t>(e)];
  return f;
}

ConvForm convolution_form(const Op& op) {
  if (auto c = as_convolution(op)) return std::move(*c);
  return as_matvec(op);
}

}  // namespace veil::hybrid
