#include "veil/nn/linear.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"

namespace veil::nn {

namespace {

// Appends rows one at a time, keeping CSR consistent.
struct RowBuilder {
  SparseMatrix m;
  RowBuilder(int rows, int cols) {
    m.rows = rows;
    m.cols = cols;
    m.row_ptr.reserve(static_cast<std::size_t>(rows) + 1);
    m.row_ptr.push_back(0);
  }
  void add(int col, double value) {
    m.col.push_back(col);
    m.val.push_back(value);
  }
  void end_row() { m.row_ptr.push_back(static_cast<std::int64_t>(m.val.size())); }
};

// Calls f(ky, kx, iy, ix) for every tap of window w at output (y, x) that falls inside
// the input (taps over the padding contribute nothing), ky then kx ascending.
template <class F>
void for_each_tap(const Window& w, const Shape& in, int y, int x, F&& f) {
  for (int ky = 0; ky < w.kernel_h; ++ky) {
    const int iy = y * w.stride_h - w.pad_top + ky * w.dilation_h;
    if (iy < 0 || iy >= in.h) continue;
    for (int kx = 0; kx < w.kernel_w; ++kx) {
      const int ix = x * w.stride_w - w.pad_left + kx * w.dilation_w;
      if (ix >= 0 && ix < in.w) f(ky, kx, iy, ix);
    }
  }
}

// The rows of a windowed stage, and the strides the packing needs.
void finish_windowed(LinearStage& s, RowBuilder& b, const Window& w) {
  s.weights = std::move(b.m);
  s.spatial = true;
  s.stride_y = w.stride_h;
  s.stride_x = w.stride_w;
}

LinearStage base_stage(const Node& node) {
  LinearStage s;
  s.name = node.name;
  s.in = node.in;
  s.out = node.out;
  s.bias.assign(node.out.size(), 0.0);
  return s;
}

LinearStage conv_stage(const Node& node) {
  LinearStage s = base_stage(node);
  const Window& w = node.window;
  const Shape in = node.in, out = node.out;
  const int in_per_group = in.c / node.group, out_per_group = out.c / node.group;
  RowBuilder b(out.size(), in.size());
  b.m.col.reserve(static_cast<std::size_t>(out.size()) * in_per_group * w.kernel_h * w.kernel_w);
  b.m.val.reserve(b.m.col.capacity());
  for (int o = 0; o < out.c; ++o) {
    const int first_in = (o / out_per_group) * in_per_group;
    for (int y = 0; y < out.h; ++y)
      for (int x = 0; x < out.w; ++x) {
        // Channel-major input order makes (ic, ky, kx) ascending in column index.
        for (int ic = 0; ic < in_per_group; ++ic)
          for_each_tap(w, in, y, x, [&](int ky, int kx, int iy, int ix) {
            const std::size_t k =
                ((static_cast<std::size_t>(o) * in_per_group + ic) * w.kernel_h + ky) * w.kernel_w + kx;
            b.add(((first_in + ic) * in.h + iy) * in.w + ix, node.weights[k]);
          });
        b.end_row();
        s.bias[(o * out.h + y) * out.w + x] = node.bias[o];
      }
  }
  finish_windowed(s, b, w);
  return s;
}

LinearStage pool_stage(const Node& node) {
  LinearStage s = base_stage(node);
  const Window& w = node.window;
  const Shape in = node.in, out = node.out;
  // count_include_pad = 1: the divisor is the full window even where it hangs over the
  // border, so the stage is exactly (sum pool) / k^2.
  const double weight = 1.0 / (w.kernel_h * w.kernel_w);
  RowBuilder b(out.size(), in.size());
  for (int c = 0; c < out.c; ++c)
    for (int y = 0; y < out.h; ++y)
      for (int x = 0; x < out.w; ++x) {
        for_each_tap(w, in, y, x,
                     [&](int, int, int iy, int ix) { b.add((c * in.h + iy) * in.w + ix, weight); });
        b.end_row();
      }
  finish_windowed(s, b, w);
  return s;
}

LinearStage global_pool_stage(const Node& node) {
  LinearStage s = base_stage(node);
  const int pixels = node.in.h * node.in.w;
  RowBuilder b(node.out.size(), node.in.size());
  for (int c = 0; c < node.in.c; ++c) {
    for (int p = 0; p < pixels; ++p) b.add(c * pixels + p, 1.0 / pixels);
    b.end_row();
  }
  s.weights = std::move(b.m);
  return s;
}

LinearStage batch_norm_stage(const Node& node) {
  LinearStage s = base_stage(node);
  const int pixels = node.in.h * node.in.w;
  RowBuilder b(node.out.size(), node.in.size());
  for (int c = 0; c < node.in.c; ++c)
    for (int p = 0; p < pixels; ++p) {
      b.add(c * pixels + p, node.weights[c]);
      b.end_row();
      s.bias[c * pixels + p] = node.bias[c];
    }
  s.weights = std::move(b.m);
  s.spatial = pixels > 1;
  return s;
}

LinearStage dense_stage(const Node& node) {
  LinearStage s = base_stage(node);
  const int n = node.in.size();
  RowBuilder b(node.out.size(), n);
  b.m.col.reserve(node.weights.size());
  b.m.val.reserve(node.weights.size());
  for (int o = 0; o < node.out_features; ++o) {
    for (int i = 0; i < n; ++i) b.add(i, node.weights[static_cast<std::size_t>(o) * n + i]);
    b.end_row();
  }
  s.weights = std::move(b.m);
  s.bias = node.bias;
  return s;
}

}  // namespace

LinearStage linear_stage(const Node& node) {
  switch (node.op) {
    case OpKind::kConv:
      return conv_stage(node);
    case OpKind::kGemm:
      return dense_stage(node);
    case OpKind::kBatchNorm:
      return batch_norm_stage(node);
    case OpKind::kAveragePool:
      return pool_stage(node);
    case OpKind::kGlobalAveragePool:
      return global_pool_stage(node);
    default:
      break;
  }
  VEIL_REQUIRE(false, "node '" << node.name << "': " << op_name(node.op) << " is not a linear layer");
  return {};
}

LinearStage compose(const LinearStage& first, const LinearStage& second) {
  const SparseMatrix& a = first.weights;
  const SparseMatrix& b = second.weights;
  VEIL_REQUIRE(b.cols == a.rows, "cannot compose '" << first.name << "' (" << a.rows << " outputs) with '"
                                                    << second.name << "' (" << b.cols << " inputs)");
  LinearStage s;
  s.name = first.name + "+" + second.name;
  s.in = first.in;
  s.out = second.out;
  s.spatial = first.spatial && second.spatial;
  s.stride_y = s.spatial ? first.stride_y * second.stride_y : 1;
  s.stride_x = s.spatial ? first.stride_x * second.stride_x : 1;
  s.bias = second.bias;
  SparseMatrix& m = s.weights;
  m.rows = b.rows;
  m.cols = a.cols;
  m.row_ptr.assign(static_cast<std::size_t>(b.rows) + 1, 0);
  // Gustavson's row-by-row sparse product in two passes: a symbolic one counts each
  // output row's entries, so that the numeric one writes every row straight into its
  // place. Growing the arrays row by row instead copied them again at every doubling and
  // took most of a CIFAR-10 model's hybrid lowering. Rows are independent, so both passes
  // split them in blocks over the thread pool, each block with its own dense accumulator;
  // every row's arithmetic is the same as in one thread.
  const std::size_t rows = static_cast<std::size_t>(b.rows);
  const std::size_t blocks = std::min<std::size_t>(rows, static_cast<std::size_t>(num_threads()) * 8);
  const auto block_rows = [&](std::size_t blk) {
    return std::pair<int, int>(static_cast<int>(rows * blk / blocks),
                               static_cast<int>(rows * (blk + 1) / blocks));
  };
  parallel_for(blocks, [&](std::size_t blk) {
    const auto [r0, r1] = block_rows(blk);
    std::vector<int> mark(static_cast<std::size_t>(a.cols), -1);
    for (int r = r0; r < r1; ++r) {
      std::int64_t count = 0;
      for (std::int64_t e = b.row_ptr[r]; e < b.row_ptr[r + 1]; ++e) {
        const int k = b.col[e];
        for (std::int64_t f = a.row_ptr[k]; f < a.row_ptr[k + 1]; ++f) {
          const int c = a.col[f];
          if (mark[c] != r) {
            mark[c] = r;
            ++count;
          }
        }
      }
      m.row_ptr[static_cast<std::size_t>(r) + 1] = count;
    }
  });
  for (std::size_t r = 0; r < rows; ++r) m.row_ptr[r + 1] += m.row_ptr[r];
  m.col.resize(static_cast<std::size_t>(m.row_ptr[rows]));
  m.val.resize(static_cast<std::size_t>(m.row_ptr[rows]));
  parallel_for(blocks, [&](std::size_t blk) {
    const auto [r0, r1] = block_rows(blk);
    std::vector<double> acc(static_cast<std::size_t>(a.cols), 0.0);
    std::vector<int> mark(static_cast<std::size_t>(a.cols), -1);
    std::vector<int> touched;
    for (int r = r0; r < r1; ++r) {
      touched.clear();
      for (std::int64_t e = b.row_ptr[r]; e < b.row_ptr[r + 1]; ++e) {
        const int k = b.col[e];
        const double bv = b.val[e];
        s.bias[r] += bv * first.bias[k];
        for (std::int64_t f = a.row_ptr[k]; f < a.row_ptr[k + 1]; ++f) {
          const int c = a.col[f];
          if (mark[c] != r) {
            mark[c] = r;
            touched.push_back(c);
          }
          acc[c] += bv * a.val[f];
        }
      }
      std::sort(touched.begin(), touched.end());
      std::int64_t out = m.row_ptr[r];
      for (int c : touched) {
        m.col[out] = c;
        m.val[out] = acc[c];
        ++out;
        acc[c] = 0;
      }
    }
  });
  return s;
}

void scale_columns(LinearStage& stage, double factor) {
  for (double& v : stage.weights.val) v *= factor;
  stage.unit_weights = stage.unit_weights && factor == 1.0;
}

std::vector<double> evaluate(const LinearStage& stage, const std::vector<double>& x) {
  const SparseMatrix& m = stage.weights;
  VEIL_REQUIRE(static_cast<int>(x.size()) == m.cols,
               "stage '" << stage.name << "' expects " << m.cols << " inputs, got " << x.size());
  std::vector<double> y(stage.bias);
  for (int r = 0; r < m.rows; ++r) {
    double sum = 0;
    for (std::int64_t e = m.row_ptr[r]; e < m.row_ptr[r + 1]; ++e) sum += m.val[e] * x[m.col[e]];
    y[r] += sum;
  }
  return y;
}

void validate(const LinearStage& stage) {
  const SparseMatrix& m = stage.weights;
  const std::string& n = stage.name;
  VEIL_REQUIRE(m.rows == stage.out.size() && m.cols == stage.in.size(),
               "stage '" << n << "': matrix is " << m.rows << "x" << m.cols << " for shapes "
                         << stage.in.size() << " -> " << stage.out.size());
  VEIL_REQUIRE(stage.bias.size() == static_cast<std::size_t>(m.rows),
               "stage '" << n << "': bias size mismatch");
  VEIL_REQUIRE(m.row_ptr.size() == static_cast<std::size_t>(m.rows) + 1 && m.row_ptr.front() == 0 &&
                   m.row_ptr.back() == m.nnz() && m.col.size() == m.val.size(),
               "stage '" << n << "': inconsistent CSR arrays");
  for (int r = 0; r < m.rows; ++r)
    VEIL_REQUIRE(m.row_ptr[r] <= m.row_ptr[r + 1], "stage '" << n << "': row_ptr decreases");
  for (int c : m.col)
    VEIL_REQUIRE(c >= 0 && c < m.cols, "stage '" << n << "': column " << c << " out of range");
  VEIL_REQUIRE(stage.stride_y >= 1 && stage.stride_x >= 1, "stage '" << n << "': strides must be positive");
}

}  // namespace veil::nn
