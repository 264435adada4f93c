#include "veil/nn/he/packing.hpp"

#include <algorithm>
#include <bit>
#include <optional>
#include <set>
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
  // A stage that ends in the ring of half the degree (ring_switch) writes a layout of
  // n / 2 slots, each output as two partial sums at its slot s and s + n / 2, which the
  // switch adds.
  const bool to_small_ring = out.slots * 2 == in.slots;
  VEIL_REQUIRE(n > 1 && (n & (n - 1)) == 0 && (out.slots == in.slots || to_small_ring),
               "layouts need the same power-of-two slot count (or half of it at a ring switch)");
  VEIL_REQUIRE(!(to_small_ring && fold), "a ring switch needs its outputs in place, not folded");
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
  const int log_out = std::countr_zero(static_cast<std::uint64_t>(out.slots));
  for (int o = 0; o < st.weights.rows; ++o) {
    const std::int64_t so_global = out.slot(o);
    const int out_block = static_cast<int>(so_global >> log_out);
    const std::int64_t so_local = so_global & static_cast<std::int64_t>(out.slots - 1);
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
      ++support[at];
    }
  }
  // A sum pool or shift needs no plaintext product when every diagonal covers every output
  // of its block (then unread slots may hold anything); a bias is added afterwards.
  // (Not before a ring switch: the slots it does not write must be zero there.)
  if (st.unit_weights && !fold && !to_small_ring) {
    std::vector<std::int64_t> outputs_per_block(spec.out_blocks, 0);
    for (int o = 0; o < st.out.size(); ++o) ++outputs_per_block[out.slot(o) / n];
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
        spec.bias[fold ? 0 : s / out_n][s % out_n] = st.bias[o];
      }
  }
  return spec;
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
            std::int64_t{l->mux_cols}, std::int64_t{l->replicas}})
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

// The layout search (see packing.hpp), once without a ring switch and then again from each
// candidate stage on: the stages before a switch pack as they do without it, so each
// candidate reuses their frontiers. One packing per entry of `switches` (-1: none); with
// `rethrow` false a candidate that cannot be packed gives a packing without stages.
std::vector<Packing> pack_all(const Network& net, std::size_t slots, bool with_values,
                              const std::vector<int>& switches, bool rethrow, const LayoutSearch* reuse,
                              LevelPricing pricing) {
  VEIL_REQUIRE(!net.stages.empty(), "network has no stages");
  check_graph(net);
  const int count = static_cast<int>(net.stages.size());
  int switch_after = -1;  // the run in progress (build() reads it)
  // frontier[k + 1]: the layouts stage k's output may take, with the cheapest way there;
  // frontier[0]: the input's.
  std::vector<std::vector<Node>> frontier(count + 1);
  std::vector<int> readers(count + 1, 0);  // with multiplicity (Add(x, x) reads x twice)
  for (int k = 0; k < count; ++k)
    for (int src : net.inputs_of(k)) ++readers[src + 1];
  const Layout input = Layout::compact(net.input, slots);
  frontier[0].push_back({input, 0.0, {}, false});
  // Copies of the input only when one stage reads it (its readers must agree on a layout).
  if (const Layout copies = Layout::replicated(input); !(copies == input) && readers[0] == 1)
    frontier[0].push_back({copies, 0.0, {}, false});

  const std::shared_ptr<PairCache> pairs =
      reuse && reuse->pairs ? reuse->pairs : std::make_shared<PairCache>();
  PairCache& costed = *pairs;
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
                                                       : candidates(st.linear(), from.layout);
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
    std::vector<CostedPair> packed(fresh.size());
    parallel_for(fresh.size(), [&](std::size_t f) {
      const CostKey& key = keys[fresh[f]];
      CostedPair& p = packed[f];
      p.spec = pack_linear(st.linear(), key.in, key.out, key.fold, false);
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
      const Stage& st = net.stages[k];
      const std::vector<int> inputs = net.inputs_of(k);
      const Node& from = frontier[inputs[0] + 1][choice[inputs[0] + 1]];
      const Node& to = frontier[k + 1][choice[k + 1]];
      PackedStage ps;
      ps.kind = st.kind();
      ps.in = from.layout;
      ps.out = to.layout;
      if (!net.stages[k].inputs.empty()) ps.inputs = inputs;
      if (st.is<PolyStage>()) {
        ps.name = st.poly().name;
        ps.coefficients = st.poly().coefficients;
        ps.levels = he::polynomial_depth(ps.coefficients);
      } else if (st.is<AddStage>()) {
        ps.name = st.add().name;
      } else {
        ps.name = st.linear().name;
        const auto it = with_values ? costed.end() : costed.find({k, from.layout, to.layout, to.fold});
        if (it != costed.end()) {
          ps.spec = it->second.spec;
          ps.giant_step = it->second.giant_step;
          ps.counts = it->second.counts;
        } else {
          ps.spec = pack_linear(st.linear(), from.layout, to.layout, to.fold, with_values);
          ps.giant_step = giant_step(ps.spec, from.layout, to.layout);
          ps.counts = he::count(ps.spec, ps.giant_step);
        }
        ps.levels = ps.counts.levels;
      }
      packing.stages.push_back(std::move(ps));
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
                     LevelPricing pricing) {
  return pack_all(net, slots, with_values, {switch_after}, true, nullptr, pricing).front();
}

std::vector<Packing> pack_network_switches(const Network& net, const Packing& plain,
                                           const std::vector<int>& candidates) {
  return pack_all(net, plain.slots, false, candidates, false, plain.search.get(),
                  plain.search ? plain.search->pricing : LevelPricing::kAdaptive);
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
    for (int r = 0; r < layout.replicas; ++r)
      blocks[s / n][s % n + static_cast<std::int64_t>(r) * layout.replica_stride] = tensor[i];
  }
  return blocks;
}

}  // namespace veil::nn
