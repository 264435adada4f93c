#include "veil/nn/he/packing.hpp"

#include <algorithm>
#include <bit>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>

#include "veil/common/error.hpp"
#include "veil/he/polynomial.hpp"

namespace veil::nn {

namespace {

// Relative cost of the pieces of a stage, in units of one key switch (measured on this
// engine: a plaintext multiply-accumulate term costs ~1/30 of a rotation, a
// multiply+relinearise about one rotation).
constexpr double kPlainMultCost = 1.0 / 30;
constexpr double kHoistedCost = rlwe::kHoistedRotationCost;
constexpr double kRelinCost = 1.2;
// A level spent where a cheaper layout spends none makes every later operation larger and
// can force a larger ring, so it outweighs any rotation saving.
constexpr double kLevelCost = 100;

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

double stage_cost(const he::LinearTransformSpec& spec, int giant) {
  const he::TransformCounts c = he::count(spec, giant);
  return c.giant_rotations + c.fold_rotations + kHoistedCost * c.baby_rotations +
         kPlainMultCost * static_cast<double>(c.plaintext_mults) + kLevelCost * c.levels;
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

std::vector<Candidate> candidates(const LinearStage& st, const Layout& in) {
  std::vector<Candidate> out;
  const Layout compact = Layout::compact(st.out, in.slots);
  auto add = [&](const Layout& l, bool fold) {
    for (const auto& c : out)
      if (c.out == l && c.fold == fold) return;
    if (l.injective()) out.push_back({l, fold});
  };
  add(compact, false);
  if (st.out.size() * 2 <= static_cast<int>(in.slots) && compact.blocks() == 1) add(compact, true);
  if (st.spatial && in.shape == st.in) {
    const int rs = in.row_stride * st.stride_y, xs = in.col_stride * st.stride_x;
    if (extent(st.out, rs, xs) <= in.channel_stride) {
      add(keep_channels(in, st.out, rs, xs), false);
      if (auto mux = multiplexed(st.out, in.slots, in.channel_stride, rs, xs)) add(*mux, false);
    }
  }
  return out;
}

}  // namespace

Layout Layout::compact(const Shape& shape, std::size_t slots) {
  return with_strides(shape, slots, shape.h * shape.w, shape.w, 1);
}

Layout Layout::replicated(const Layout& layout) {
  Layout r = layout;
  if (layout.blocks() != 1 || layout.mux_rows * layout.mux_cols != 1) return r;
  // Copies at the channel period, so copy k of channel c sits where channel c + k * C
  // would: output channel o then finds every input channel within a few channel strides.
  r.replica_stride = layout.shape.c * layout.channel_stride;
  r.replicas = static_cast<int>(layout.slots / static_cast<std::size_t>(r.replica_stride));
  if (r.replicas < 2) return layout;
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
      channels_per_block % (mux_rows * mux_cols) != 0 || replicas < 1)
    return false;
  // Sorted positions rather than a bitmap of every slot: a layout read from the wire may
  // claim thousands of blocks. More copies than any model needs fail outright.
  const std::int64_t count = static_cast<std::int64_t>(shape.size()) * replicas;
  if (count > (std::int64_t{1} << 26)) return false;
  const auto n = static_cast<std::int64_t>(slots);
  std::vector<std::int64_t> at;
  at.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < shape.size(); ++i) {
    const std::int64_t s = slot(i);
    for (int r = 0; r < replicas; ++r) {
      const std::int64_t a = s + static_cast<std::int64_t>(r) * replica_stride;
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
  return os.str();
}

he::LinearTransformSpec pack_linear(const LinearStage& st, const Layout& in, const Layout& out, bool fold,
                                    bool with_values) {
  // Flatten/Reshape keep the channel-major order, so only the sizes must agree: the
  // input layout addresses flat indices with its own shape.
  VEIL_REQUIRE(in.shape.size() == st.in.size() && out.shape.size() == st.out.size(),
               "layout sizes do not match stage '" << st.name << "'");
  const auto n = static_cast<std::int64_t>(in.slots);
  VEIL_REQUIRE(n > 0 && (n & (n - 1)) == 0 && out.slots == in.slots,
               "layouts need the same power-of-two slot count");
  he::LinearTransformSpec spec;
  spec.slots = in.slots;
  spec.in_blocks = in.blocks();
  spec.out_blocks = fold ? 1 : out.blocks();
  const int m_pow2 = static_cast<int>(std::bit_ceil(static_cast<unsigned>(st.out.size())));
  if (fold)
    for (std::int64_t s = m_pow2; s < n; s *= 2) spec.fold_steps.push_back(static_cast<int>(s));

  // Diagonal of each (out block, in block, offset): a flat table when it is small enough
  // (planning packs every candidate layout of every stage, millions of weights each).
  const std::uint64_t keys = static_cast<std::uint64_t>(spec.out_blocks) * spec.in_blocks * n;
  constexpr std::uint64_t kFlatLimit = std::uint64_t{1} << 22;  // 16 MiB
  std::vector<std::int32_t> flat(keys <= kFlatLimit ? keys : 0, -1);
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
  for (int i = 0; i < in.shape.size(); ++i) in_slot[i] = in.slot(i);
  const int log_n = std::countr_zero(static_cast<std::uint64_t>(n));
  const std::int64_t mask = n - 1;
  for (int o = 0; o < st.weights.rows; ++o) {
    const std::int64_t so_global = out.slot(o);
    const int out_block = static_cast<int>(so_global >> log_n);
    const std::int64_t so_local = so_global & mask;
    for (std::int64_t k = st.weights.row_ptr[o]; k < st.weights.row_ptr[o + 1]; ++k) {
      // n is a power of two (checked above): shifts and masks in this hot loop.
      const std::int64_t si_global = in_slot[st.weights.col[k]];
      const int bi = static_cast<int>(si_global >> log_n);
      const std::int64_t first_copy = si_global & mask;
      std::int64_t si = first_copy;
      int bo = out_block;
      std::int64_t so = so_local;
      // Replicated input: read the copy closest to the output slot.
      for (int r = 1; r < in.replicas; ++r) {
        const std::int64_t cand = first_copy + static_cast<std::int64_t>(r) * in.replica_stride;
        if (std::llabs(cand - so) < std::llabs(si - so)) si = cand;
      }
      if (fold) {
        bo = 0;
        so = o + (si / m_pow2) * m_pow2;  // replica holding this input's partial sum
      }
      const int d = static_cast<int>((si - so) & mask);
      const std::uint64_t key = (static_cast<std::uint64_t>(bo) * spec.in_blocks + bi) * n + d;
      const auto [at, fresh] = find_or_add(key);
      if (fresh) {
        spec.diagonals.push_back({bo, bi, d, {}});
        if (with_values) spec.diagonals.back().values.assign(in.slots, 0.0);
        support.push_back(0);
      }
      if (with_values) spec.diagonals[at].values[so] += st.weights.val[k];
      ++support[at];
    }
  }
  // A sum pool needs no plaintext product when every diagonal covers every output of its
  // block (then unread slots may hold anything).
  if (st.unit_weights && !fold) {
    std::vector<std::int64_t> outputs_per_block(spec.out_blocks, 0);
    for (int o = 0; o < st.out.size(); ++o) ++outputs_per_block[out.slot(o) / n];
    bool unit = std::all_of(st.bias.begin(), st.bias.end(), [](double b) { return b == 0.0; });
    for (std::size_t i = 0; i < spec.diagonals.size() && unit; ++i)
      unit = support[i] == outputs_per_block[spec.diagonals[i].out_block];
    spec.unit = unit;
    if (unit)
      for (auto& d : spec.diagonals) d.values.clear();
  }
  const bool has_bias = std::any_of(st.bias.begin(), st.bias.end(), [](double b) { return b != 0.0; });
  if (has_bias) {
    spec.bias.assign(spec.out_blocks, std::vector<double>(with_values ? in.slots : 0, 0.0));
    if (with_values)
      for (int o = 0; o < st.out.size(); ++o) {
        const std::int64_t s = fold ? o : out.slot(o);
        spec.bias[fold ? 0 : s / n][s % n] = st.bias[o];
      }
  }
  return spec;
}

void require_chain(const Network& net) {
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const Stage& s = net.stages[k];
    VEIL_REQUIRE(
        s.kind != Stage::Kind::kAdd,
        "node '" << s.add.name
                 << "': residual connections are not supported by the non-interactive encrypted "
                 << "mode; the lowered network is a chain of stages (the graph can still be evaluated "
                 << "in the clear)");
    VEIL_REQUIRE(net.inputs_of(static_cast<int>(k)) == std::vector<int>{static_cast<int>(k) - 1},
                 "stage " << k + 1 << " '" << s.name()
                          << "' does not read the stage before it; the encrypted "
                          << "evaluators run chains of stages only");
  }
}

Packing pack_network(const Network& net, std::size_t slots, bool with_values) {
  VEIL_REQUIRE(!net.stages.empty(), "network has no stages");
  require_chain(net);
  struct Node {
    Layout layout;
    double cost;
    int parent;  // index into previous frontier
    bool fold;
  };
  std::vector<std::vector<Node>> frontier(net.stages.size() + 1);
  const Layout input = Layout::compact(net.input, slots);
  frontier[0].push_back({input, 0.0, -1, false});
  if (const Layout copies = Layout::replicated(input); !(copies == input))
    frontier[0].push_back({copies, 0.0, -1, false});
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const Stage& st = net.stages[k];
    for (std::size_t p = 0; p < frontier[k].size(); ++p) {
      const Node& from = frontier[k][p];
      auto relax = [&](const Layout& l, double c, bool fold) {
        for (auto& node : frontier[k + 1])
          if (node.layout == l && node.fold == fold) {
            if (c < node.cost) node = {l, c, static_cast<int>(p), fold};
            return;
          }
        frontier[k + 1].push_back({l, c, static_cast<int>(p), fold});
      };
      if (st.kind == Stage::Kind::kPoly) {
        relax(from.layout,
              from.cost + kRelinCost * from.layout.blocks() * he::polynomial_depth(st.poly.coefficients),
              false);
        continue;
      }
      for (const Candidate& c : candidates(st.linear, from.layout)) {
        const he::LinearTransformSpec spec = pack_linear(st.linear, from.layout, c.out, c.fold, false);
        relax(c.out, from.cost + stage_cost(spec, giant_step(spec, from.layout, c.out)), c.fold);
      }
    }
  }
  // Walk back from the cheapest final layout.
  std::vector<int> choice(net.stages.size() + 1);
  const auto& last = frontier.back();
  choice.back() =
      static_cast<int>(std::min_element(last.begin(), last.end(),
                                        [](const Node& a, const Node& b) { return a.cost < b.cost; }) -
                       last.begin());
  for (std::size_t k = net.stages.size(); k > 0; --k) choice[k - 1] = frontier[k][choice[k]].parent;

  Packing packing;
  packing.slots = slots;
  packing.input = frontier[0][choice[0]].layout;
  for (std::size_t k = 0; k < net.stages.size(); ++k) {
    const Stage& st = net.stages[k];
    const Node& from = frontier[k][choice[k]];
    const Node& to = frontier[k + 1][choice[k + 1]];
    PackedStage ps;
    ps.kind = st.kind;
    ps.in = from.layout;
    ps.out = to.layout;
    if (st.kind == Stage::Kind::kPoly) {
      ps.name = st.poly.name;
      ps.coefficients = st.poly.coefficients;
      ps.levels = he::polynomial_depth(ps.coefficients);
    } else {
      ps.name = st.linear.name;
      ps.spec = pack_linear(st.linear, from.layout, to.layout, to.fold, with_values);
      ps.giant_step = giant_step(ps.spec, from.layout, to.layout);
      ps.counts = he::count(ps.spec, ps.giant_step);
      ps.levels = ps.counts.levels;
    }
    packing.stages.push_back(std::move(ps));
  }
  packing.output = packing.stages.back().out;
  return packing;
}

int Packing::depth() const {
  int d = 0;
  for (const auto& s : stages) d += s.levels;
  return d;
}

std::vector<int> Packing::rotation_steps() const {
  std::set<int> steps;
  for (const auto& s : stages)
    if (s.kind == Stage::Kind::kLinear)
      for (int r : he::rotation_steps(s.spec, s.giant_step)) steps.insert(r);
  return {steps.begin(), steps.end()};
}

he::TransformCounts Packing::totals() const {
  he::TransformCounts t;
  t.levels = depth();
  for (const auto& s : stages) {
    if (s.kind != Stage::Kind::kLinear) continue;
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
    for (int r = 0; r < layout.replicas; ++r)
      blocks[s / n][s % n + static_cast<std::int64_t>(r) * layout.replica_stride] = tensor[i];
  }
  return blocks;
}

}  // namespace veil::nn
