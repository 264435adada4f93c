#include "veil/nn/he/packing.hpp"

#include <algorithm>
#include <bit>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <unordered_map>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/he/polynomial.hpp"

namespace veil::nn {

namespace {

// Relative cost of the pieces of a stage, in units of one key switch (measured on this
// engine: a plaintext multiply-accumulate term costs ~1/30 of a rotation, a
// multiply+relinearise about one rotation).
constexpr double kPlainMultCost = 1.0 / 30;
constexpr double kHoistedCost = rlwe::kHoistedRotationCost;
constexpr double kRelinCost = 1.2;
// LevelPricing::kAvoid: a level outweighs any rotation saving. kAdaptive: a share of the
// cost so far (measured on cifar10-shallow: a masked first pooling, one level, halves the
// next convolution's diagonals; 6.3 instead of 7.0 GiB of weights, 5-10% faster).
constexpr double kLevelCost = 100;
constexpr double kLevelShare = 1.0 / 12;
// Layouts each stage's output keeps in the search (cifar10-shallow: the same plan with 4 or
// with every layout, 14 at most; planning 2.5 times faster than with every layout).
constexpr std::size_t kBeam = 6;

int extent(const Shape& s, int row_stride, int col_stride) {
  return (s.h - 1) * row_stride + (s.w - 1) * col_stride + 1;
}

Layout with_strides(const Shape& shape, std::size_t slots, int cs, int rs, int xs) {
  Layout l;
  l.shape = shape;
  l.slots = slots;
  l.channel_stride = cs;
  l.row_stride = rs;
  l.col_stride = xs;
  l.channels_per_block = static_cast<int>(slots / static_cast<std::size_t>(cs));
  VEIL_REQUIRE(l.channels_per_block >= 1, "one channel of " << shape.h << "x" << shape.w << " needs " << cs
                                                            << " slots; only " << slots << " per ciphertext");
  return l;
}

// Giant steps worth trying besides powers of two: the strides along which a map's
// diagonals line up (a convolution's offsets are channel delta x channel stride + tap).
std::vector<int> stride_steps(const Layout& in, const Layout& out) {
  return {in.channel_stride, in.row_stride, out.channel_stride, out.row_stride};
}

int giant_step(const he::LinearTransformSpec& spec, const Layout& in, const Layout& out) {
  return he::choose_giant_step(spec, kHoistedCost, stride_steps(in, out));
}

double stage_cost(const he::TransformCounts& c) {
  return c.giant_rotations + c.fold_rotations + kHoistedCost * c.baby_rotations +
         kPlainMultCost * static_cast<double>(c.plaintext_mults);
}

struct Candidate {
  Layout out;
  bool fold;
};

// `in`'s channel placement (frames and sub-position grid) with new pixel strides: what a
// sum pool needs to stay free of plaintext products (every channel keeps its slots).
Layout keep_channels(const Layout& in, const Shape& shape, int rs, int xs) {
  Layout l = in;
  l.shape = shape;
  l.row_stride = rs;
  l.col_stride = xs;
  l.replicas = 1;
  l.replica_stride = 0;
  return l;
}

// Pixels `rs`, `xs` apart whose cells (xs wide, rs / (w * xs) rows of w * xs slots) are
// filled with channels: a gy x gx grid of sub-positions with strides w * xs and 1.
std::optional<Layout> multiplexed(const Shape& shape, std::size_t slots, int cs, int rs, int xs) {
  const int row = shape.w * xs;
  if (rs % row != 0 || xs * (rs / row) == 1) return std::nullopt;
  Layout l = with_strides(shape, slots, cs, rs, xs);
  l.mux_cols = xs;
  l.mux_rows = rs / row;
  l.mux_col_stride = 1;
  l.mux_row_stride = row;
  l.channels_per_block *= l.mux_rows * l.mux_cols;
  return l;
}

// `copies`: also the layouts with copies (Layout::replicated, Layout::cell_copies).
std::vector<Candidate> candidates(const LinearStage& st, const Layout& in, bool copies) {
  std::vector<Candidate> out;
  const Layout compact = Layout::compact(st.out, in.slots);
  auto add = [&](const Layout& l, bool fold) {
    for (const auto& c : out)
      if (c.out == l && c.fold == fold) return;
    if (!l.injective()) return;
    out.push_back({l, fold});
    if (fold || !copies) return;
    // And with copies for the stage after: of a last block it leaves at most half full,
    // and, after a strided stage (which makes the cells), of the channels in the free part
    // of each pixel's cell (a stage that keeps the cells would write its copies for
    // nothing: the one before it can). At most 2 x 2 copies per cell, what one 2x2 pooling
    // leaves: on cifar10-shallow more were never chosen and made the search four times slower.
    const Layout in_cells = st.stride_x * st.stride_y > 1 ? Layout::cell_copies(l) : l;
    for (const Layout& c :
         {Layout::replicated(l), in_cells.copy_rows * in_cells.copy_cols <= 4 ? in_cells : l})
      if (!(c == l) && c.injective()) out.push_back({c, false});
  };
  const bool spatial = st.spatial && in.shape == st.in;
  const int rs = in.row_stride * st.stride_y, xs = in.col_stride * st.stride_x;
  const bool keeps = spatial && extent(st.out, rs, xs) <= in.channel_stride;
  // A compact output of a map whose pixels are spread out (after a pooling) gathers every
  // pixel by its own diagonals: tens of thousands for a 16 x 16 map, never chosen where
  // the layouts that keep the spread exist, yet each a pass over the weights to cost (half
  // of cifar10-shallow's planning). Offered for small maps only.
  constexpr int kGatherPixels = 16;
  if (!keeps || (rs == st.out.w && xs == 1) || st.out.h * st.out.w <= kGatherPixels) {
    add(compact, false);
    if (st.out.size() * 2 <= static_cast<int>(in.slots) && compact.blocks() == 1) add(compact, true);
  }
  if (keeps) {
    add(keep_channels(in, st.out, rs, xs), false);
    if (auto mux = multiplexed(st.out, in.slots, in.channel_stride, rs, xs)) add(*mux, false);
  }
  return out;
}

// Output layouts of a stage that ends in the ring of half the degree: `in`'s slots / 2
// per block, compact or at the input's pixel strides (so that a convolution's diagonals
// stay few), with or without multiplexed channels.
std::vector<Candidate> switch_candidates(const LinearStage& st, const Layout& in) {
  const std::size_t half = in.slots / 2;
  std::vector<Candidate> out;
  auto add = [&](const Layout& l) {
    for (const auto& c : out)
      if (c.out == l) return;
    if (l.injective()) out.push_back({l, false});
  };
  if (static_cast<std::size_t>(st.out.h * st.out.w) <= half) add(Layout::compact(st.out, half));
  if (st.spatial && in.shape == st.in) {
    const int rs = in.row_stride * st.stride_y, xs = in.col_stride * st.stride_x;
    const int cs = in.channel_stride;
    if (extent(st.out, rs, xs) <= cs && static_cast<std::size_t>(cs) <= half) {
      add(with_strides(st.out, half, cs, rs, xs));
      if (auto mux = multiplexed(st.out, half, cs, rs, xs)) add(*mux);
    }
  }
  VEIL_REQUIRE(!out.empty(), "stage '" << st.name << "': no layout of " << half
                                       << " slots holds a channel of " << st.out.h << "x" << st.out.w
                                       << ", so it cannot end in the smaller ring");
  return out;
}

}  // namespace

Layout Layout::compact(const Shape& shape, std::size_t slots) {
  return with_strides(shape, slots, shape.h * shape.w, shape.w, 1);
}

Layout Layout::replicated(const Layout& layout) {
  Layout r = layout;
  if (layout.mux_rows * layout.mux_cols != 1 || layout.replicas != 1 ||
      layout.copy_rows * layout.copy_cols != 1)
    return r;
  // Copies at the period of the last block's channels, so copy k of its channel c sits
  // where channel c + k * C' would (C' channels in that block): output channel o then
  // finds every one of them within a few channel strides.
  const int last = layout.shape.c - (layout.blocks() - 1) * layout.channels_per_block;
  r.replica_stride = last * layout.channel_stride;
  r.replicas = static_cast<int>(layout.slots / static_cast<std::size_t>(r.replica_stride));
  if (r.replicas < 2) return layout;
  return r;
}

Layout Layout::cell_copies(const Layout& layout) {
  Layout r = layout;
  if (layout.replicas != 1 || layout.copy_rows * layout.copy_cols != 1) return r;
  // A cell is col_stride slots wide and row_stride / row rows high, where a row holds the
  // shape's width of cells (multiplexed() builds the same cells).
  const int row = layout.shape.w * layout.col_stride;
  if (row <= 0 || layout.row_stride % row != 0) return r;
  const int cell_rows = layout.row_stride / row, cell_cols = layout.col_stride;
  if (layout.mux_rows * layout.mux_cols > 1 && (layout.mux_row_stride != row || layout.mux_col_stride != 1))
    return r;
  r.copy_rows = cell_rows / layout.mux_rows;
  r.copy_cols = cell_cols / layout.mux_cols;
  r.copy_row_stride = layout.mux_rows * row;
  r.copy_col_stride = layout.mux_cols;
  if (r.copy_rows * r.copy_cols < 2) return layout;
  return r;
}

std::int64_t Layout::slot(int index) const {
  const int hw = shape.h * shape.w;
  const int c = index / hw, y = (index % hw) / shape.w, x = index % shape.w;
  const int block = c / channels_per_block, r = c % channels_per_block;
  const int frame = r % frames(), sub = r / frames();
  const std::int64_t offset = static_cast<std::int64_t>(frame) * channel_stride +
                              static_cast<std::int64_t>(sub / mux_cols) * mux_row_stride +
                              static_cast<std::int64_t>(sub % mux_cols) * mux_col_stride +
                              static_cast<std::int64_t>(y) * row_stride +
                              static_cast<std::int64_t>(x) * col_stride;
  return static_cast<std::int64_t>(block) * static_cast<std::int64_t>(slots) + offset;
}

bool Layout::injective() const {
  if (slots == 0 || channels_per_block < 1 || mux_rows < 1 || mux_cols < 1 || frames() < 1 ||
      channels_per_block % (mux_rows * mux_cols) != 0 || replicas < 1 || copy_rows < 1 || copy_cols < 1 ||
      replica_stride < 0 || copy_row_stride < 0 || copy_col_stride < 0 ||
      std::int64_t{replicas} * copy_rows * copy_cols > (std::int64_t{1} << 20))
    return false;
  // Sorted positions rather than a bitmap of every slot: a layout read from the wire may
  // claim thousands of blocks. More copies than any model needs fail outright.
  const std::int64_t count = static_cast<std::int64_t>(shape.size()) * replicas * copy_rows * copy_cols;
  if (count > (std::int64_t{1} << 26)) return false;
  const auto n = static_cast<std::int64_t>(slots);
  std::vector<std::int64_t> at;
  at.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < shape.size(); ++i) {
    const std::int64_t s = slot(i);
    for (int r = 0; r < copies(i); ++r) {
      const std::int64_t a = s + copy_offset(r);
      if (s < 0 || s / n >= blocks() || a >= (s / n + 1) * n) return false;
      at.push_back(a);
    }
  }
  std::sort(at.begin(), at.end());
  return std::adjacent_find(at.begin(), at.end()) == at.end();
}

std::string Layout::describe() const {
  std::ostringstream os;
  os << shape.c << "x" << shape.h << "x" << shape.w << " in " << blocks() << " ct (" << channels_per_block
     << " ch/ct, strides c" << channel_stride << " y" << row_stride << " x" << col_stride << ")";
  if (mux_rows * mux_cols > 1) os << ", " << mux_rows << "x" << mux_cols << " multiplexed";
  if (replicas > 1) os << " x" << replicas << " copies";
  if (copy_rows * copy_cols > 1) os << ", " << copy_rows << "x" << copy_cols << " copies per cell";
  return os.str();
}

namespace {

// The weights of a convolution or pooling by (output channel, input channel, tap): the first
// weight of each (in the matrix's order), with how many weights share it. Where the output
// layout's pixel strides are the input's times the stage's strides (every layout the
// search gives a spatial stage but a compact one from a strided input), a weight's diagonal
// depends on its tap and channels only, not on its pixel, so packing positions from these
// representatives (counted with their multiplicities) gives the same diagonals in the same
// order as packing every weight, at a pixel count's fraction of the work.
struct TapPattern {
  std::vector<std::int64_t> row_ptr;  // per output, into weight / count
  std::vector<std::int64_t> weight;   // index into the stage's weights
  std::vector<std::int64_t> count;
};

// Empty (no row_ptr) when the stage is not spatial or its taps spread too far to tabulate.
TapPattern tap_pattern(const LinearStage& st) {
  TapPattern p;
  if (!st.spatial) return p;
  const int in_hw = st.in.h * st.in.w, out_hw = st.out.h * st.out.w;
  // Each input's channel, row and column, looked up rather than divided out per weight.
  std::vector<int> in_c(st.in.size()), in_y(st.in.size()), in_x(st.in.size());
  for (int i = 0; i < st.in.size(); ++i)
    in_c[i] = i / in_hw, in_y[i] = i % in_hw / st.in.w, in_x[i] = i % st.in.w;
  auto tap = [&](int o, std::int64_t k, int& dy, int& dx) {
    const int col = st.weights.col[k];
    dy = in_y[col] - st.stride_y * (o % out_hw / st.out.w);
    dx = in_x[col] - st.stride_x * (o % st.out.w);
  };
  int y0 = 0, y1 = 0, x0 = 0, x1 = 0;
  for (int o = 0; o < st.weights.rows; ++o)
    for (std::int64_t k = st.weights.row_ptr[o]; k < st.weights.row_ptr[o + 1]; ++k) {
      int dy = 0, dx = 0;
      tap(o, k, dy, dx);
      y0 = std::min(y0, dy), y1 = std::max(y1, dy), x0 = std::min(x0, dx), x1 = std::max(x1, dx);
    }
  const std::int64_t ys = y1 - y0 + 1, xs = x1 - x0 + 1;
  const std::int64_t cells = std::int64_t{st.out.c} * st.in.c * ys * xs;
  if (cells > (std::int64_t{1} << 24)) return p;
  std::vector<std::int64_t> entry(static_cast<std::size_t>(cells), -1);
  p.row_ptr.push_back(0);
  for (int o = 0; o < st.weights.rows; ++o) {
    for (std::int64_t k = st.weights.row_ptr[o]; k < st.weights.row_ptr[o + 1]; ++k) {
      int dy = 0, dx = 0;
      tap(o, k, dy, dx);
      const std::int64_t cell =
          ((std::int64_t{o / out_hw} * st.in.c + in_c[st.weights.col[k]]) * ys + (dy - y0)) * xs + (dx - x0);
      std::int64_t& e = entry[static_cast<std::size_t>(cell)];
      if (e < 0) {
        e = static_cast<std::int64_t>(p.weight.size());
        p.weight.push_back(k);
        p.count.push_back(0);
      }
      ++p.count[static_cast<std::size_t>(e)];
    }
    p.row_ptr.push_back(static_cast<std::int64_t>(p.weight.size()));
  }
  return p;
}

he::LinearTransformSpec pack_linear_impl(const LinearStage& st, const Layout& in, const Layout& out,
                                         bool fold, bool with_values, const TapPattern* taps) {
  // Flatten/Reshape keep the channel-major order, so only the sizes must agree: the
  // input layout addresses flat indices with its own shape.
  VEIL_REQUIRE(in.shape.size() == st.in.size() && out.shape.size() == st.out.size(),
               "layout sizes do not match stage '" << st.name << "'");
  const auto n = static_cast<std::int64_t>(in.slots);
  // A stage that ends in the ring of half the degree (ring_switch) writes a layout of
  // n / 2 slots, each output as two partial sums at its slot s and s + n / 2, which the
  // switch adds.
  const bool to_small_ring = out.slots * 2 == in.slots;
  VEIL_REQUIRE(n > 1 && (n & (n - 1)) == 0 && (out.slots == in.slots || to_small_ring),
               "layouts need the same power-of-two slot count (or half of it at a ring switch)");
  VEIL_REQUIRE(!(to_small_ring && fold), "a ring switch needs its outputs in place, not folded");
  VEIL_REQUIRE(
      out.replicas * out.copy_rows * out.copy_cols == 1 || !(fold || to_small_ring),
      "stage '" << st.name << "': a folded output or one that ends in the smaller ring has no copies");
  he::LinearTransformSpec spec;
  spec.slots = in.slots;
  spec.in_blocks = in.blocks();
  spec.out_blocks = fold ? 1 : out.blocks();
  const int m_pow2 = static_cast<int>(std::bit_ceil(static_cast<unsigned>(st.out.size())));
  if (fold)
    for (std::int64_t s = m_pow2; s < n; s *= 2) spec.fold_steps.push_back(static_cast<int>(s));

  const int out_copies = out.replicas * out.copy_rows * out.copy_cols;
  // Positions only, pixel strides that follow the stage's: one weight per tap (TapPattern).
  const bool by_tap = taps != nullptr && !taps->row_ptr.empty() && !with_values && !fold &&
                      in.shape == st.in && out.shape == st.out &&
                      out.row_stride == in.row_stride * st.stride_y &&
                      out.col_stride == in.col_stride * st.stride_x;
  const std::vector<std::int64_t>& row_ptr = by_tap ? taps->row_ptr : st.weights.row_ptr;

  // Diagonal of each (out block, in block, offset): a flat table when it is small enough
  // (planning packs every candidate layout of every stage, millions of weights each).
  const std::uint64_t keys = static_cast<std::uint64_t>(spec.out_blocks) * spec.in_blocks * n;
  constexpr std::uint64_t kFlatLimit = std::uint64_t{1} << 22;  // 16 MiB
  // (Not for a few thousand visits, packing by tap: filling the table would cost more.)
  const auto visits = static_cast<std::uint64_t>((by_tap ? taps->weight.size() : st.weights.val.size()) *
                                                 static_cast<std::size_t>(out_copies));
  std::vector<std::int32_t> flat(keys <= kFlatLimit && visits * 4 >= keys ? keys : 0, -1);
  std::unordered_map<std::uint64_t, std::size_t> index;
  auto find_or_add = [&](std::uint64_t key) -> std::pair<std::size_t, bool> {
    if (!flat.empty()) {
      if (flat[key] >= 0) return {static_cast<std::size_t>(flat[key]), false};
      flat[key] = static_cast<std::int32_t>(spec.diagonals.size());
      return {spec.diagonals.size(), true};
    }
    auto [it, fresh] = index.try_emplace(key, spec.diagonals.size());
    return {it->second, fresh};
  };
  std::vector<std::int64_t> support;  // entries per diagonal (for the unit check)
  std::vector<std::int64_t> in_slot(in.shape.size());
  // Replicated input: each (input, output) channel pair reads the copy whose channel
  // origin lies nearest the output channel's, the same copy for every tap, so the pair's
  // taps share one channel offset (a choice per slot would split the taps of the pairs
  // half a period apart between two offsets, and double their diagonals). Copies of the
  // last block's channels are chosen along the rotations' cycle, copies inside a cell by
  // the rows and columns between the two sub-positions; of two copies equally near, the
  // one before the output, so that the offsets of all pairs form one window.
  std::vector<int> in_replicas(in.shape.size()), in_channel(in.shape.size());
  const int in_hw = in.shape.h * in.shape.w, out_hw = out.shape.h * out.shape.w;
  std::vector<std::int64_t> channel_origin(in.shape.c);  // block-local slot of each channel's pixel (0, 0)
  for (int c = 0; c < in.shape.c; ++c) channel_origin[c] = in.slot(c * in_hw) & (n - 1);
  for (int i = 0; i < in.shape.size(); ++i) {
    in_slot[i] = in.slot(i);
    in_replicas[i] = in.copies(i) / (in.copy_rows * in.copy_cols);
    in_channel[i] = i / in_hw;
  }
  const int cell_copies = in.copy_rows * in.copy_cols;
  const std::int64_t row_unit = in.copy_rows > 1 ? in.copy_row_stride / in.mux_rows : n;
  auto centred = [](std::int64_t a, std::int64_t m) { return ((a + m / 2) % m + m) % m - m / 2; };
  auto cycle_rank = [&](std::int64_t offset) {
    const std::int64_t c = centred(offset, n);
    return 2 * std::llabs(c) + (c > 0 ? 1 : 0);
  };
  auto cell_rank = [&](std::int64_t offset) {
    const std::int64_t c = centred(offset, std::max(in.channel_stride, 1));
    const std::int64_t dy = (c + (c >= 0 ? row_unit / 2 : -(row_unit / 2))) / row_unit;
    return 2 * (std::llabs(dy) + std::llabs(c - dy * row_unit)) + (c > 0 ? 1 : 0);
  };
  // Offset from an input's first copy to the copy that output channel origin `to` reads.
  auto nearest_copy = [&](int col, std::int64_t to) {
    const std::int64_t origin = channel_origin[in_channel[col]];
    std::int64_t best = 0;
    for (int r = 1; r < in_replicas[col]; ++r) {
      const std::int64_t cand = static_cast<std::int64_t>(r) * in.replica_stride;
      if (cycle_rank(origin + cand - to) < cycle_rank(origin + best - to)) best = cand;
    }
    std::int64_t cell = 0;
    for (int k = 1; k < cell_copies; ++k) {
      const std::int64_t cand = in.copy_offset(k);
      if (cell_rank(origin + best + cand - to) < cell_rank(origin + best + cell - to)) cell = cand;
    }
    return best + cell;
  };
  std::vector<std::int64_t> chosen(
      in.replicas * cell_copies > 1 ? static_cast<std::size_t>(out.shape.c) * out_copies * in.shape.c : 0,
      -1);
  const int log_n = std::countr_zero(static_cast<std::uint64_t>(n));
  const std::int64_t mask = n - 1;
  const int log_out = std::countr_zero(static_cast<std::uint64_t>(out.slots));
  for (int o = 0; o < st.weights.rows; ++o) {
    const std::int64_t so_global = out.slot(o);
    const int out_block = static_cast<int>(so_global >> log_out);
    const auto out_mask = static_cast<std::int64_t>(out.slots - 1);
    // A replicated output is written at each of its copies (its own diagonals each).
    for (int copy = 0; copy < out.copies(o); ++copy) {
      const std::int64_t shift = out.copy_offset(copy);
      const std::int64_t so_local = (so_global & out_mask) + shift;
      const std::int64_t out_origin = (out.slot(o / out_hw * out_hw) & out_mask) + shift;
      const std::span<std::int64_t> pair_copy =
          chosen.empty()
              ? std::span<std::int64_t>()
              : std::span<std::int64_t>(chosen).subspan(
                    (static_cast<std::size_t>(o / out_hw) * out_copies + copy) * in.shape.c, in.shape.c);
      for (std::int64_t j = row_ptr[o]; j < row_ptr[o + 1]; ++j) {
        const std::int64_t k = by_tap ? taps->weight[j] : j;
        // n is a power of two (checked above): shifts and masks in this hot loop.
        const int col = st.weights.col[k];
        const std::int64_t si_global = in_slot[col];
        const int bi = static_cast<int>(si_global >> log_n);
        std::int64_t si = si_global & mask;
        int bo = out_block;
        std::int64_t so = so_local;
        if (!pair_copy.empty()) {
          // The choice depends on the two channels only: worked out once per pair.
          std::int64_t& c = pair_copy[static_cast<std::size_t>(in_channel[col])];
          if (c < 0) c = nearest_copy(col, out_origin);
          si += c;
        }
        if (fold) {
          bo = 0;
          so = o + (si / m_pow2) * m_pow2;  // replica holding this input's partial sum
        }
        int d = static_cast<int>((si - so) & mask);
        if (to_small_ring) {
          // The switch adds the two halves of the slots (ckks/ring_switch.hpp), so a product
          // for output slot so may land at so or so + n/2: the diagonals are the offsets
          // modulo n/2, as if the input were folded into the smaller ring, and the stage
          // costs no more than one packed in it.
          d &= static_cast<int>(n / 2 - 1);
          so = (si - d) & mask;
        }
        const std::uint64_t key = (static_cast<std::uint64_t>(bo) * spec.in_blocks + bi) * n + d;
        const auto [at, fresh] = find_or_add(key);
        if (fresh) {
          spec.diagonals.push_back({bo, bi, d, {}});
          if (with_values) spec.diagonals.back().values.assign(in.slots, 0.0);
          support.push_back(0);
        }
        if (with_values) spec.diagonals[at].values[so] += st.weights.val[k];
        support[at] += by_tap ? taps->count[j] : 1;
      }
    }
  }
  // A sum pool or shift needs no plaintext product when every diagonal covers every output
  // of its block (then unread slots may hold anything); a bias is added afterwards.
  // (Not before a ring switch: the slots it does not write must be zero there.)
  if (st.unit_weights && !fold && !to_small_ring) {
    std::vector<std::int64_t> outputs_per_block(spec.out_blocks, 0);
    for (int o = 0; o < st.out.size(); ++o) outputs_per_block[out.slot(o) / n] += out.copies(o);
    bool unit = true;
    for (std::size_t i = 0; i < spec.diagonals.size() && unit; ++i)
      unit = support[i] == outputs_per_block[spec.diagonals[i].out_block];
    spec.unit = unit;
    if (unit)
      for (auto& d : spec.diagonals) d.values.clear();
  }
  const bool has_bias = std::any_of(st.bias.begin(), st.bias.end(), [](double b) { return b != 0.0; });
  if (has_bias) {
    spec.bias.assign(spec.out_blocks, std::vector<double>(with_values ? in.slots : 0, 0.0));
    const auto out_n = static_cast<std::int64_t>(out.slots);
    if (with_values)
      for (int o = 0; o < st.out.size(); ++o) {
        const std::int64_t s = fold ? o : out.slot(o);
        for (int copy = 0; copy < (fold ? 1 : out.copies(o)); ++copy)
          spec.bias[fold ? 0 : s / out_n][s % out_n + out.copy_offset(copy)] = st.bias[o];
      }
  }
  return spec;
}

}  // namespace

he::LinearTransformSpec pack_linear(const LinearStage& st, const Layout& in, const Layout& out, bool fold,
                                    bool with_values) {
  return pack_linear_impl(st, in, out, fold, with_values, nullptr);
}

namespace {

std::string shape_text(const Shape& s) {
  return std::to_string(s.c) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
}

// The tensor stage k gives (polynomials keep their input's shape; -1: the input).
Shape output_shape(const Network& net, int k) {
  while (k >= 0) {
    const Stage& s = net.stages[k];
    if (s.is<LinearStage>()) return s.linear().out;
    if (s.is<AddStage>()) return s.add().shape;
    k = net.inputs_of(k).front();
  }
  return net.input;
}

std::string stage_text(const Network& net, int k) {
  return k < 0 ? std::string("the network input")
               : "stage " + std::to_string(k + 1) + " '" + net.stages[k].name() + "'";
}

}  // namespace

void check_graph(const Network& net) {
  const int count = static_cast<int>(net.stages.size());
  std::vector<int> readers(count, 0);
  for (int k = 0; k < count; ++k) {
    const Stage& s = net.stages[k];
    const std::vector<int> inputs = net.inputs_of(k);
    for (int src : inputs) {
      VEIL_REQUIRE(src >= -1 && src < k, "stage " << k + 1 << " '" << s.name() << "' reads stage " << src + 1
                                                  << ", which does not come before it (stages must be in "
                                                  << "topological order)");
      if (src >= 0) ++readers[src];
    }
    if (s.is<AddStage>()) {
      VEIL_REQUIRE(inputs.size() >= 2,
                   "node '" << s.add().name << "': an Add needs two inputs, it has " << inputs.size());
      for (int src : inputs) {
        const Shape in = output_shape(net, src);
        VEIL_REQUIRE(in == s.add().shape,
                     "node '" << s.add().name << "': residual Add of tensors of different shapes ("
                              << stage_text(net, src) << " gives " << shape_text(in) << ", the Add takes "
                              << shape_text(s.add().shape)
                              << "); both branches must give the same shape: a shortcut that changes the "
                              << "size or the channels needs a projection (e.g. a strided 1x1 Conv)");
      }
      continue;
    }
    VEIL_REQUIRE(inputs.size() == 1, "stage " << k + 1 << " '" << s.name() << "' reads " << inputs.size()
                                              << " tensors; only an Add reads more than one");
    if (s.is<LinearStage>())
      VEIL_REQUIRE(net.output_size(inputs[0]) == s.linear().in.size(),
                   "stage " << k + 1 << " '" << s.name() << "' takes " << s.linear().in.size()
                            << " values but " << stage_text(net, inputs[0]) << " gives "
                            << net.output_size(inputs[0]));
  }
  for (int k = 0; k + 1 < count; ++k)
    VEIL_REQUIRE(readers[k] > 0, "stage " << k + 1 << " '" << net.stages[k].name()
                                          << "' is read by no later stage; only the last stage is the "
                                          << "network's output");
}

namespace {

// Refuses a ring switch after stage c that the evaluators cannot run (std::invalid_argument).
void check_switch(const Network& net, std::size_t slots, int c) {
  const int count = static_cast<int>(net.stages.size());
  VEIL_REQUIRE(c < count && net.stages[c].is<LinearStage>(),
               "a ring switch follows a linear stage; stage " << c + 1 << " is not one");
  VEIL_REQUIRE(slots >= 2, "no ring smaller than " << slots << " slots");
  for (int k = c + 1; k < count; ++k)
    for (int src : net.inputs_of(k))
      VEIL_REQUIRE(src >= c, "stage " << k + 1 << " '" << net.stages[k].name() << "' reads "
                                      << stage_text(net, src) << ", from before the ring switch after stage "
                                      << c + 1 << "; switch rings where nothing earlier is read later");
}

// One layout a stage's output may take in the search, with the cheapest way there.
struct Node {
  Layout layout;
  double cost;
  std::vector<int> parents;  // per input: index into that producer's frontier
  bool fold;
};

}  // namespace

struct CostKey {
  int stage = 0;
  Layout in, out;
  bool fold = false;
  bool operator==(const CostKey&) const = default;
};

struct CostKeyHash {
  std::size_t operator()(const CostKey& k) const {
    std::size_t h = static_cast<std::size_t>(k.stage) * 2 + (k.fold ? 1 : 0);
    for (const Layout* l : {&k.in, &k.out})
      for (std::int64_t v :
           {std::int64_t{l->shape.c}, std::int64_t{l->shape.h}, std::int64_t{l->shape.w},
            static_cast<std::int64_t>(l->slots), std::int64_t{l->channel_stride}, std::int64_t{l->row_stride},
            std::int64_t{l->col_stride}, std::int64_t{l->channels_per_block}, std::int64_t{l->mux_rows},
            std::int64_t{l->mux_cols}, std::int64_t{l->replicas}, std::int64_t{l->copy_rows},
            std::int64_t{l->copy_cols}})
        h = (h ^ static_cast<std::size_t>(v)) * 0x100000001B3ull;
    return h;
  }
};

// A (stage, input layout, output layout) pair once packed (positions only) and costed.
struct CostedPair {
  double cost = 0;  // without the levels, which are priced per path
  he::TransformCounts counts;
  int giant_step = 1;
  he::LinearTransformSpec spec;
};
using PairCache = std::unordered_map<CostKey, CostedPair, CostKeyHash>;

// The search's frontiers without a ring switch, kept with a packing (Packing::search) so
// that ring-switch candidates start from them instead of searching the early stages again.
struct LayoutSearch {
  std::size_t slots = 0;
  std::size_t stages = 0;
  std::vector<std::vector<Node>> frontier;
  // Every pair the searches packed: a pair recurs under several producer layouts, in
  // each ring-switch candidate's run and in the final assembly, and packing it visits
  // every weight (on cifar10-shallow over half the visits were repeats).
  std::shared_ptr<PairCache> pairs;
  LevelPricing pricing = LevelPricing::kAdaptive;
};

namespace {

// Stage k packed from layout `from` to `to` (the search's assembly and pack_network_as);
// a linear stage reuses `costed` (the search packed that pair already) when given.
PackedStage packed_stage(const Network& net, int k, const Layout& from, const Layout& to, bool fold,
                         bool with_values, const CostedPair* costed) {
  const Stage& st = net.stages[k];
  PackedStage ps;
  ps.kind = st.kind();
  ps.in = from;
  ps.out = to;
  ps.fold = fold;
  if (!st.inputs.empty()) ps.inputs = net.inputs_of(k);
  if (st.is<PolyStage>()) {
    ps.name = st.poly().name;
    ps.coefficients = st.poly().coefficients;
    ps.levels = he::polynomial_depth(ps.coefficients);
  } else if (st.is<AddStage>()) {
    ps.name = st.add().name;
  } else {
    ps.name = st.linear().name;
    if (costed) {
      ps.spec = costed->spec;
      ps.giant_step = costed->giant_step;
      ps.counts = costed->counts;
    } else {
      ps.spec = pack_linear(st.linear(), from, to, fold, with_values);
      ps.giant_step = giant_step(ps.spec, from, to);
      ps.counts = he::count(ps.spec, ps.giant_step);
    }
    ps.levels = ps.counts.levels;
  }
  return ps;
}

// The layout search (see packing.hpp), once without a ring switch and then again from each
// candidate stage on: the stages before a switch pack as they do without it, so each
// candidate reuses their frontiers. One packing per entry of `switches` (-1: none); with
// `rethrow` false a candidate that cannot be packed gives a packing without stages.
std::vector<Packing> pack_all(const Network& net, std::size_t slots, bool with_values,
                              const std::vector<int>& switches, bool rethrow, const LayoutSearch* reuse,
                              LevelPricing pricing, const LayoutSearch* pairs_of = nullptr) {
  VEIL_REQUIRE(!net.stages.empty(), "network has no stages");
  check_graph(net);
  const int count = static_cast<int>(net.stages.size());
  int switch_after = -1;  // the run in progress (build() reads it)
  // frontier[k + 1]: the layouts stage k's output may take, with the cheapest way there;
  // frontier[0]: the input's.
  std::vector<std::vector<Node>> frontier(count + 1);
  std::vector<int> readers(count + 1, 0);  // with multiplicity (Add(x, x) reads x twice)
  std::vector<int> reader(count + 1, -1);  // the last stage to read it
  for (int k = 0; k < count; ++k)
    for (int src : net.inputs_of(k)) ++readers[src + 1], reader[src + 1] = k;
  // A linear stage may write copies of its outputs when its one reader (through
  // polynomials) is a linear stage with at least twice its weights: the copies save
  // diagonals there at the price of more here, which only a much cheaper stage (a
  // pooling, a first convolution on few channels) pays. Not offering them elsewhere keeps
  // the search's pairs, each a pass over the weights, as few as before.
  std::vector<bool> copies_pay(count, false);
  for (int k = 0; k < count; ++k) {
    if (!net.stages[k].is<LinearStage>()) continue;
    int r = k;
    while (readers[r + 1] == 1 && net.stages[reader[r + 1]].is<PolyStage>()) r = reader[r + 1];
    if (readers[r + 1] != 1 || !net.stages[reader[r + 1]].is<LinearStage>()) continue;
    copies_pay[k] = 2 * net.stages[k].linear().weights.val.size() <=
                    net.stages[reader[r + 1]].linear().weights.val.size();
  }
  const Layout input = Layout::compact(net.input, slots);
  frontier[0].push_back({input, 0.0, {}, false});
  // Copies of the input only when one stage reads it (its readers must agree on a layout).
  if (const Layout copies = Layout::replicated(input); !(copies == input) && readers[0] == 1)
    frontier[0].push_back({copies, 0.0, {}, false});

  const LayoutSearch* cached = reuse ? reuse : pairs_of;
  const std::shared_ptr<PairCache> pairs =
      cached && cached->pairs && cached->slots == slots && cached->stages == net.stages.size()
          ? cached->pairs
          : std::make_shared<PairCache>();
  PairCache& costed = *pairs;
  // Each linear stage's weights by tap, made when the stage's first pair is packed.
  std::vector<std::optional<TapPattern>> taps(count);
  auto relax = [&](int k, const Layout& l, double c, std::vector<int> parents, bool fold) {
    for (auto& node : frontier[k + 1])
      if (node.layout == l && node.fold == fold) {
        if (c < node.cost) node = {l, c, std::move(parents), fold};
        return;
      }
    frontier[k + 1].push_back({l, c, std::move(parents), fold});
  };
  // (Re)builds the frontier of a linear or polynomial stage from its producer's; a linear
  // stage also tries `targets` (layouts another branch of an Add reaches).
  auto build = [&](int k, const std::vector<Layout>& targets) {
    const Stage& st = net.stages[k];
    const int src = net.inputs_of(k).front();
    frontier[k + 1].clear();
    // Every (producer layout, candidate) pair of a linear stage is packed to be costed:
    // millions of weights each, so the pairs are costed in parallel, then relaxed in order
    // (the same plan as a serial search).
    struct Try {
      std::size_t parent;
      Candidate c;
      double cost = 0;
    };
    std::vector<Try> tries;
    for (std::size_t p = 0; p < frontier[src + 1].size(); ++p) {
      const Node& from = frontier[src + 1][p];
      if (st.is<PolyStage>()) {
        relax(k, from.layout,
              from.cost + kRelinCost * from.layout.blocks() * he::polynomial_depth(st.poly().coefficients),
              {static_cast<int>(p)}, false);
        continue;
      }
      std::vector<Candidate> cands = k == switch_after ? switch_candidates(st.linear(), from.layout)
                                                       : candidates(st.linear(), from.layout, copies_pay[k]);
      for (const Layout& t : targets)
        if (t.shape == st.linear().out && std::none_of(cands.begin(), cands.end(), [&](const Candidate& c) {
              return c.out == t && !c.fold;
            }))
          cands.push_back({t, false});
      for (Candidate& c : cands) tries.push_back({p, std::move(c)});
    }
    // Pairs packed before (under another producer node, in another candidate's run) are
    // looked up; the new ones are packed in parallel.
    std::vector<std::size_t> fresh;
    std::vector<CostKey> keys(tries.size());
    for (std::size_t i = 0; i < tries.size(); ++i) {
      keys[i] = {k, frontier[src + 1][tries[i].parent].layout, tries[i].c.out, tries[i].c.fold};
      if (!costed.contains(keys[i]) &&
          std::none_of(fresh.begin(), fresh.end(), [&](std::size_t j) { return keys[j] == keys[i]; }))
        fresh.push_back(i);
    }
    if (!fresh.empty() && !taps[k]) taps[k] = tap_pattern(st.linear());
    std::vector<CostedPair> packed(fresh.size());
    parallel_for(fresh.size(), [&](std::size_t f) {
      const CostKey& key = keys[fresh[f]];
      CostedPair& p = packed[f];
      p.spec = pack_linear_impl(st.linear(), key.in, key.out, key.fold, false, &*taps[k]);
      p.giant_step = giant_step(p.spec, key.in, key.out);
      p.counts = he::count(p.spec, p.giant_step);
      p.cost = stage_cost(p.counts);
    });
    for (std::size_t f = 0; f < fresh.size(); ++f) costed.emplace(keys[fresh[f]], std::move(packed[f]));
    for (std::size_t i = 0; i < tries.size(); ++i) {
      const CostedPair& cp = costed.at(keys[i]);
      const double so_far = frontier[src + 1][tries[i].parent].cost + cp.cost;
      tries[i].cost =
          cp.cost + cp.counts.levels * (pricing == LevelPricing::kAvoid ? kLevelCost : kLevelShare * so_far);
    }
    for (const Try& t : tries)
      relax(k, t.c.out, frontier[src + 1][t.parent].cost + t.cost, {static_cast<int>(t.parent)}, t.c.fold);
  };
  // The linear stage that ends the branch feeding an Add through `src` (polynomials keep
  // their input's layout), when nothing else reads the stages in between; else -2.
  auto branch_end = [&](int src, std::vector<int>& path) {
    path.clear();
    while (src >= 0 && readers[src + 1] == 1) {
      path.push_back(src);
      const Stage& s = net.stages[src];
      if (s.is<LinearStage>()) return src;
      if (!s.is<PolyStage>()) break;
      src = net.inputs_of(src).front();
    }
    return -2;
  };

  auto run = [&](int from) {
    for (int k = from; k < count; ++k) frontier[k + 1].clear();
    for (int k = from; k < count; ++k) {
      const Stage& st = net.stages[k];
      const std::vector<int> inputs = net.inputs_of(k);
      if (!st.is<AddStage>()) {
        build(k, {});
      } else {
        // Each branch's last linear stage may also produce the layouts the others reach.
        std::vector<std::vector<Layout>> reach(inputs.size());
        for (std::size_t j = 0; j < inputs.size(); ++j)
          for (const Node& n : frontier[inputs[j] + 1]) reach[j].push_back(n.layout);
        std::vector<int> path;
        for (std::size_t j = 0; j < inputs.size(); ++j) {
          if (branch_end(inputs[j], path) < 0) continue;
          std::vector<Layout> targets;
          for (std::size_t i = 0; i < inputs.size(); ++i)
            if (i != j) targets.insert(targets.end(), reach[i].begin(), reach[i].end());
          // path runs from the Add's input back to the linear stage: rebuild it forwards.
          build(path.back(), targets);
          for (auto it = std::next(path.rbegin()); it != path.rend(); ++it) build(*it, {});
        }
        // The layouts every input reaches, at the sum of the cheapest ways there.
        const auto& first = frontier[inputs[0] + 1];
        for (std::size_t a = 0; a < first.size(); ++a) {
          std::vector<int> parents = {static_cast<int>(a)};
          double c = first[a].cost;
          for (std::size_t j = 1; j < inputs.size() && parents.size() == j; ++j) {
            const auto& other = frontier[inputs[j] + 1];
            int best = -1;
            for (std::size_t b = 0; b < other.size(); ++b)
              if (other[b].layout == first[a].layout && (best < 0 || other[b].cost < other[best].cost))
                best = static_cast<int>(b);
            if (best < 0) break;
            parents.push_back(best);
            c += other[best].cost;
          }
          if (parents.size() == inputs.size()) relax(k, first[a].layout, c, std::move(parents), false);
        }
        VEIL_REQUIRE(
            !frontier[k + 1].empty(),
            "node '" << st.add().name << "': its inputs (" << stage_text(net, inputs[0]) << " and "
                     << stage_text(net, inputs[1])
                     << ") share no slot layout; a residual Add needs a linear stage (e.g. a "
                     << "convolution) at the end of at least one branch, which can produce the other's "
                     << "layout");
      }
      // A stage read by several stages keeps one layout, so that its readers agree.
      auto& f = frontier[k + 1];
      // Otherwise the kBeam cheapest layouts go on (a beam search): every layout kept is
      // packed against every candidate of the next linear stage, one pass over its weights
      // each, and the layouts with copies would double the frontiers of a CIFAR network.
      if (f.size() > kBeam) {
        std::stable_sort(f.begin(), f.end(), [](const Node& a, const Node& b) { return a.cost < b.cost; });
        f.resize(kBeam);
      }
      if (readers[k + 1] > 1 && f.size() > 1) {
        const auto best = std::min_element(f.begin(), f.end(),
                                           [](const Node& a, const Node& b) { return a.cost < b.cost; });
        f = {*best};
      }
    }
  };

  // Walk back from the cheapest final layout.
  auto assemble = [&]() {
    std::vector<int> choice(count + 1, -1);
    const auto& last = frontier.back();
    choice.back() =
        static_cast<int>(std::min_element(last.begin(), last.end(),
                                          [](const Node& a, const Node& b) { return a.cost < b.cost; }) -
                         last.begin());
    for (int k = count - 1; k >= 0; --k) {
      VEIL_REQUIRE(choice[k + 1] >= 0, "internal: no layout chosen for stage " << k + 1);
      const Node& node = frontier[k + 1][choice[k + 1]];
      const std::vector<int> inputs = net.inputs_of(k);
      for (std::size_t j = 0; j < inputs.size(); ++j) {
        int& c = choice[inputs[j] + 1];
        VEIL_REQUIRE(c < 0 || c == node.parents[j], "internal: readers of one stage chose different layouts");
        c = node.parents[j];
      }
    }

    Packing packing;
    packing.slots = slots;
    packing.switch_after = switch_after;
    packing.input = frontier[0][choice[0]].layout;
    for (int k = 0; k < count; ++k) {
      const std::vector<int> inputs = net.inputs_of(k);
      const Node& from = frontier[inputs[0] + 1][choice[inputs[0] + 1]];
      const Node& to = frontier[k + 1][choice[k + 1]];
      const auto it = with_values || !net.stages[k].is<LinearStage>()
                          ? costed.end()
                          : costed.find({k, from.layout, to.layout, to.fold});
      packing.stages.push_back(packed_stage(net, k, from.layout, to.layout, to.fold, with_values,
                                            it == costed.end() ? nullptr : &it->second));
    }
    packing.output = packing.stages.back().out;
    return packing;
  };

  auto search = std::make_shared<LayoutSearch>();
  if (reuse && reuse->slots == slots && reuse->stages == net.stages.size() &&
      reuse->frontier.size() == frontier.size()) {
    search->frontier = reuse->frontier;
  } else {
    run(0);
    search->frontier = frontier;
  }
  search->slots = slots;
  search->stages = net.stages.size();
  search->pairs = pairs;
  search->pricing = pricing;
  const std::vector<std::vector<Node>>& plain = search->frontier;
  std::vector<Packing> out;
  for (int c : switches) {
    switch_after = c;
    frontier = plain;
    try {
      if (c >= 0) {
        check_switch(net, slots, c);
        run(c);
      }
      out.push_back(assemble());
      if (c < 0) out.back().search = search;
    } catch (const std::invalid_argument&) {
      if (rethrow) throw;
      out.emplace_back();
    }
  }
  return out;
}

}  // namespace

Packing pack_network(const Network& net, std::size_t slots, bool with_values, int switch_after,
                     LevelPricing pricing, const LayoutSearch* pairs_of) {
  return pack_all(net, slots, with_values, {switch_after}, true, nullptr, pricing, pairs_of).front();
}

std::vector<Packing> pack_network_switches(const Network& net, const Packing& plain,
                                           const std::vector<int>& candidates) {
  return pack_all(net, plain.slots, false, candidates, false, plain.search.get(),
                  plain.search ? plain.search->pricing : LevelPricing::kAdaptive);
}

PackingChoice packing_choice(const Packing& packing) {
  PackingChoice c;
  c.slots = packing.slots;
  c.switch_after = packing.switch_after;
  c.input = packing.input;
  for (const PackedStage& ps : packing.stages) {
    c.outputs.push_back(ps.out);
    c.folds.push_back(ps.fold ? 1 : 0);
  }
  return c;
}

Packing pack_network_as(const Network& net, const PackingChoice& choice) {
  VEIL_REQUIRE(!net.stages.empty(), "network has no stages");
  check_graph(net);
  const int count = static_cast<int>(net.stages.size());
  const std::size_t slots = choice.slots;
  VEIL_REQUIRE(slots >= 2 && slots <= (std::size_t{1} << 16) && (slots & (slots - 1)) == 0,
               "packing for " << slots << " slots: not a power of two in [2, 2^16]");
  VEIL_REQUIRE(
      static_cast<int>(choice.outputs.size()) == count && static_cast<int>(choice.folds.size()) == count,
      "packing for " << choice.outputs.size() << " stages, the network has " << count);
  VEIL_REQUIRE(choice.switch_after >= -1 && choice.switch_after < count,
               "ring switch after stage " << choice.switch_after + 1 << " of " << count);
  if (choice.switch_after >= 0) check_switch(net, slots, choice.switch_after);
  VEIL_REQUIRE(choice.input.shape == net.input && choice.input.slots == slots && choice.input.injective(),
               "the packing's input layout does not fit the network's input");
  Packing packing;
  packing.slots = slots;
  packing.switch_after = choice.switch_after;
  packing.input = choice.input;
  auto layout_of = [&](int src) -> const Layout& { return src < 0 ? choice.input : choice.outputs[src]; };
  for (int k = 0; k < count; ++k) {
    const Stage& st = net.stages[k];
    const Layout& out = choice.outputs[k];
    const std::vector<int> inputs = net.inputs_of(k);
    const bool fold = choice.folds[k] != 0;
    const std::size_t ring = choice.switch_after >= 0 && k >= choice.switch_after ? slots / 2 : slots;
    VEIL_REQUIRE(out.slots == ring && out.shape.size() == output_shape(net, k).size() && out.injective() &&
                     (!fold || st.is<LinearStage>()),
                 stage_text(net, k) << ": the packing's layout does not fit its output");
    if (!st.is<LinearStage>())
      for (int src : inputs)
        VEIL_REQUIRE(layout_of(src) == out, stage_text(net, k) << ": its inputs and output differ in layout");
  }
  // Each stage packs on its own (a pass over its weights): in parallel.
  packing.stages.resize(count);
  parallel_for(static_cast<std::size_t>(count), [&](std::size_t k) {
    const int s = static_cast<int>(k);
    packing.stages[k] = packed_stage(net, s, layout_of(net.inputs_of(s).front()), choice.outputs[k],
                                     choice.folds[k] != 0, false, nullptr);
  });
  packing.output = packing.stages.back().out;
  return packing;
}

void write_packing_choice(ByteWriter& w, const PackingChoice& c) {
  w.u64(c.slots);
  w.u32(static_cast<std::uint32_t>(c.switch_after));
  write_layout(w, c.input);
  w.u32(static_cast<std::uint32_t>(c.outputs.size()));
  for (std::size_t k = 0; k < c.outputs.size(); ++k) {
    write_layout(w, c.outputs[k]);
    w.u8(static_cast<std::uint8_t>(c.folds[k]));
  }
}

PackingChoice read_packing_choice(ByteReader& r) {
  PackingChoice c;
  c.slots = r.u64();
  c.switch_after = static_cast<std::int32_t>(r.u32());
  c.input = read_layout(r, "packing input");
  const std::uint32_t stages = r.u32();
  // No network has more stages than this; each needs 65 bytes, which the reader checks.
  VEIL_CHECK_IO(stages >= 1 && stages <= 100000, "packing of " << stages << " stages");
  for (std::uint32_t k = 0; k < stages; ++k) {
    c.outputs.push_back(read_layout(r, "stage layout"));
    const std::uint8_t fold = r.u8();
    VEIL_CHECK_IO(fold <= 1, "stage " << k + 1 << ": fold flag " << int{fold});
    c.folds.push_back(static_cast<char>(fold));
  }
  return c;
}

int Packing::depth() const {
  // Levels used after each stage: its deepest input's plus its own.
  std::vector<int> after(stages.size(), 0);
  for (std::size_t k = 0; k < stages.size(); ++k) {
    const auto& in = stages[k].inputs;
    int d = 0;
    if (in.empty())
      d = k > 0 ? after[k - 1] : 0;
    else
      for (int src : in) d = std::max(d, src < 0 ? 0 : after[src]);
    after[k] = d + stages[k].levels;
  }
  return after.empty() ? 0 : after.back();
}

std::vector<int> Packing::rotation_steps(bool small_ring) const {
  std::set<int> steps;
  for (const auto& s : stages)
    if (s.kind == StageKind::kLinear && (s.in.slots != slots) == small_ring)
      for (int r : he::rotation_steps(s.spec, s.giant_step)) steps.insert(r);
  return {steps.begin(), steps.end()};
}

he::TransformCounts Packing::totals() const {
  he::TransformCounts t;
  t.levels = depth();
  for (const auto& s : stages) {
    if (s.kind != StageKind::kLinear) continue;
    t.baby_rotations += s.counts.baby_rotations;
    t.giant_rotations += s.counts.giant_rotations;
    t.fold_rotations += s.counts.fold_rotations;
    t.plaintext_mults += s.counts.plaintext_mults;
  }
  return t;
}

std::vector<double> unpack(const Layout& layout, const std::vector<std::vector<double>>& blocks) {
  VEIL_REQUIRE(static_cast<int>(blocks.size()) >= layout.blocks(), "too few blocks for the layout");
  std::vector<double> t(layout.shape.size());
  const auto n = static_cast<std::int64_t>(layout.slots);
  for (int i = 0; i < layout.shape.size(); ++i) {
    const std::int64_t s = layout.slot(i);
    VEIL_REQUIRE(blocks[s / n].size() >= layout.slots, "block has too few slots for the layout");
    t[i] = blocks[s / n][s % n];
  }
  return t;
}

std::vector<std::vector<double>> pack(const Layout& layout, const std::vector<double>& tensor) {
  VEIL_REQUIRE(static_cast<int>(tensor.size()) == layout.shape.size(),
               "tensor has " << tensor.size() << " values, the layout " << layout.shape.size());
  std::vector<std::vector<double>> blocks(layout.blocks(), std::vector<double>(layout.slots, 0.0));
  const auto n = static_cast<std::int64_t>(layout.slots);
  for (int i = 0; i < layout.shape.size(); ++i) {
    const std::int64_t s = layout.slot(i);
    for (int r = 0; r < layout.copies(i); ++r) blocks[s / n][s % n + layout.copy_offset(r)] = tensor[i];
  }
  return blocks;
}

}  // namespace veil::nn
