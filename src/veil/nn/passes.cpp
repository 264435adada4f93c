#include "veil/nn/passes.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "veil/common/error.hpp"
#include "veil/nn/linear.hpp"

namespace veil::nn {

namespace {

// Where a stage came from; the passes treat batch norms and pools specially.
enum class Origin { kLayer, kBatchNorm, kPool, kGlobalPool, kPoly, kAdd };

struct Item {
  Origin origin = Origin::kLayer;
  Stage stage;
  std::vector<int> inputs;  // producer items, -1 = the network input
  double pool_scale = 1;    // kPool: the 1/k^2 its weights carry
  bool linear() const { return stage.is<LinearStage>(); }
  LinearStage& lin() { return stage.linear(); }
};

// Every node must feed the output (a dead branch would be lowered and evaluated for
// nothing), and the output must be the last node, so the last stage is the output.
void check_graph(const Graph& graph) {
  VEIL_REQUIRE(!graph.nodes.empty(), "graph '" << graph.name << "' has no nodes");
  const int last = static_cast<int>(graph.nodes.size()) - 1;
  VEIL_REQUIRE(graph.output == last, "the graph output is not its last node; remove the nodes after it");
  std::vector<bool> used(graph.nodes.size(), false);
  used[last] = true;
  for (int i = last; i >= 0; --i)
    if (used[i])
      for (int src : graph.nodes[i].inputs)
        if (src >= 0) used[src] = true;
  for (int i = 0; i <= last; ++i)
    VEIL_REQUIRE(used[i],
                 "node '" << graph.nodes[i].name << "' does not contribute to the graph output; remove it");
}

std::vector<Item> initial_items(const Graph& graph) {
  std::vector<Item> items;
  std::vector<int> item_of(graph.nodes.size(), -1);  // node -> item producing its value
  auto source = [&](int node) { return node < 0 ? -1 : item_of[node]; };
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    Item item;
    for (int src : n.inputs) item.inputs.push_back(source(src));
    switch (n.op) {
      case OpKind::kFlatten:
        item_of[i] = item.inputs[0];  // changes the shape only
        continue;
      case OpKind::kAdd:
        item.origin = Origin::kAdd;
        item.stage.op = AddStage{n.name, n.out};
        break;
      case OpKind::kPoly:
        item.origin = Origin::kPoly;
        item.stage.op = PolyStage{n.name, n.coefficients, n.input_range, n.fit_range};
        break;
      case OpKind::kBatchNorm:
        item.origin = Origin::kBatchNorm;
        break;
      case OpKind::kAveragePool:
        item.origin = Origin::kPool;
        item.pool_scale = 1.0 / (n.window.kernel_h * n.window.kernel_w);
        break;
      case OpKind::kGlobalAveragePool:
        item.origin = Origin::kGlobalPool;
        break;
      default:
        item.origin = Origin::kLayer;
        break;
    }
    if (item.origin != Origin::kPoly && item.origin != Origin::kAdd) item.stage.op = linear_stage(n);
    item_of[i] = static_cast<int>(items.size());
    items.push_back(std::move(item));
  }
  return items;
}

// True when item i + 1 reads only item i and nothing else reads item i: the two can
// become one stage, or move a factor between them, without changing what any other
// stage sees. In a chain every neighbouring pair qualifies; at a residual fork or join
// none does, so no pass reaches across one.
bool fusable(const std::vector<Item>& items, std::size_t i) {
  if (i + 1 >= items.size()) return false;
  const int producer = static_cast<int>(i);
  if (items[i + 1].inputs != std::vector<int>{producer}) return false;
  int readers = 0;
  for (const Item& item : items)
    for (int src : item.inputs) readers += src == producer ? 1 : 0;
  return readers == 1;
}

// Replaces items i and i + 1 by merged (which computes item i + 1's output from item i's
// inputs) and renumbers the edges.
void replace_pair(std::vector<Item>& items, std::size_t i, Item merged) {
  merged.inputs = items[i].inputs;
  items[i] = std::move(merged);
  const int gone = static_cast<int>(i) + 1;
  items.erase(items.begin() + gone);
  for (Item& item : items)
    for (int& src : item.inputs)
      if (src >= gone) --src;  // gone itself now lives at i = gone - 1
}

// first followed by second as one stage. A batch norm is diagonal, so it keeps the
// other stage's locality: Conv + BN stays a spatial convolution even on a 1x1 map.
Item merge(Item& first, Item& second) {
  Item out;
  out.origin = Origin::kLayer;
  out.stage.op = compose(first.lin(), second.lin());
  const LinearStage* geometry = nullptr;
  if (first.origin == Origin::kBatchNorm) geometry = &second.lin();
  if (second.origin == Origin::kBatchNorm) geometry = &first.lin();
  if (geometry) {
    out.lin().spatial = geometry->spatial;
    out.lin().stride_y = geometry->stride_y;
    out.lin().stride_x = geometry->stride_x;
  }
  return out;
}

// (a) BN into the preceding Conv/Gemm: row r of W and b_r scale by the channel's
// gamma / sqrt(var + eps), then the shift adds to the bias.
void fold_batch_norms(std::vector<Item>& items) {
  for (std::size_t i = 1; i < items.size(); ++i) {
    if (items[i].origin != Origin::kBatchNorm || items[i - 1].origin != Origin::kLayer ||
        !fusable(items, i - 1))
      continue;
    replace_pair(items, i - 1, merge(items[i - 1], items[i]));
    --i;
  }
}

// (b) Pools: multiply into a following dense stage; otherwise leave a unit-weight sum
// pool and move 1/k^2 into the following spatial stage.
void fold_pools(std::vector<Item>& items) {
  for (std::size_t i = 0; i + 1 < items.size(); ++i) {
    Item& pool = items[i];
    Item& next = items[i + 1];
    if ((pool.origin != Origin::kPool && pool.origin != Origin::kGlobalPool) || !next.linear() ||
        !fusable(items, i))
      continue;
    if (pool.origin == Origin::kGlobalPool || !next.lin().spatial) {
      replace_pair(items, i, merge(pool, next));
      continue;
    }
    for (double& v : pool.lin().weights.val) v = 1.0;
    pool.lin().unit_weights = true;
    scale_columns(next.lin(), pool.pool_scale);
    // A pool right after a pool carries the first one's factor on top of its own.
    if (next.origin == Origin::kPool) next.pool_scale *= pool.pool_scale;
    pool.pool_scale = 1;
  }
}

// (c) p(x) = c_d * q(x) with q monic; c_d moves into the first linear stage after the
// polynomial that multiplies by weights (a sum pool in between commutes with scaling), or
// at a fork into every reader when each is such a stage. A monic quadratic costs one level
// where c_d x^2 + ... costs two.
void fold_leading_coefficients(std::vector<Item>& items) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].origin != Origin::kPoly) continue;
    std::vector<double>& c = items[i].stage.poly().coefficients;
    while (c.size() > 1 && c.back() == 0) c.pop_back();
    const double lead = c.back();
    if (c.size() < 2 || lead == 1.0) continue;
    LinearStage* target = nullptr;
    for (std::size_t j = i + 1; j < items.size() && items[j].linear() && fusable(items, j - 1); ++j)
      if (!items[j].lin().unit_weights) {
        target = &items[j].lin();
        break;
      }
    std::vector<LinearStage*> targets;
    if (target) {
      targets.push_back(target);
    } else {
      // A fork (a pre-activation residual block's activation feeds both the branch and the
      // projection shortcut): c_d moves into every reader when all multiply by weights.
      bool all = true;
      for (std::size_t j = i + 1; j < items.size(); ++j)
        for (int src : items[j].inputs) {
          if (src != static_cast<int>(i)) continue;
          if (items[j].linear() && !items[j].lin().unit_weights && items[j].inputs.size() == 1)
            targets.push_back(&items[j].lin());
          else
            all = false;
        }
      if (!all || targets.size() < 2) continue;
    }
    for (LinearStage* t : targets) scale_columns(*t, lead);
    for (double& v : c) v /= lead;
    c.back() = 1.0;
  }
}

// The items reading item i.
std::vector<int> readers_of(const std::vector<Item>& items, int i) {
  std::vector<int> out;
  for (std::size_t j = 0; j < items.size(); ++j)
    for (int src : items[j].inputs)
      if (src == i) out.push_back(static_cast<int>(j));
  return out;
}

// (e) BN followed by a monic quadratic, where BN could not fold into its producer. With
// y = a x + b per channel and p(y) = y^2 + c1 y + c0:
//   p(y) = (y + c1/2)^2 + k = a^2 (x + s)^2 + k,  s = (b + c1/2) / a,  k = c0 - c1^2/4.
// BN becomes the shift x + s (identity weights: an addition, no level), the polynomial a
// plain square, and each reader R of the square takes a^2 into its columns and R(k 1)
// into its bias. The shifted values grow by 1/|a|, so channels with a tiny a would need
// more headroom than the chain keeps: the pass then leaves the pair alone.
void square_batch_norms(std::vector<Item>& items) {
  // Largest |x + s| allowed; the planner checks the headroom again for the square.
  constexpr double kMaxShiftedRange = 256;
  for (std::size_t i = 0; i + 1 < items.size(); ++i) {
    Item& bn = items[i];
    Item& act = items[i + 1];
    if (bn.origin != Origin::kBatchNorm || act.origin != Origin::kPoly || !fusable(items, i)) continue;
    const std::vector<double>& c = act.stage.poly().coefficients;
    // The measured input range, else the fitted one (values rarely pass it by much).
    const PolyStage& p = act.stage.poly();
    const double range = p.input_range > 0 ? p.input_range : p.fit_range;
    if (c.size() != 3 || c[2] != 1.0 || !(range > 0)) continue;
    // Where (d) would merge BN into its producer instead, leave it to (d).
    if (bn.inputs.size() == 1 && bn.inputs[0] == static_cast<int>(i) - 1 && items[i - 1].linear() &&
        fusable(items, i - 1))
      continue;
    const std::vector<int> readers = readers_of(items, static_cast<int>(i) + 1);
    bool ok = !readers.empty();
    for (int r : readers)
      ok = ok && items[r].linear() && !items[r].lin().unit_weights && items[r].inputs.size() == 1;
    const SparseMatrix& w = bn.lin().weights;
    for (int row = 0; ok && row < w.rows; ++row)
      ok = w.row_ptr[row + 1] - w.row_ptr[row] == 1 && w.col[w.row_ptr[row]] == row &&
           (range + std::abs(c[1]) / 2) <= kMaxShiftedRange * std::abs(w.val[row]);
    if (!ok) continue;

    const double k = c[0] - c[1] * c[1] / 4;
    std::vector<double> a2(w.rows), shift(w.rows);
    double shifted_range = 0;
    for (int row = 0; row < w.rows; ++row) {
      const double a = w.val[row];
      a2[row] = a * a;
      shift[row] = (bn.lin().bias[row] + c[1] / 2) / a;
      shifted_range = std::max(shifted_range, (range + std::abs(c[1]) / 2) / std::abs(a));
    }
    for (int r : readers) {
      LinearStage& t = items[r].lin();
      for (int row = 0; row < t.weights.rows; ++row)
        for (auto e = t.weights.row_ptr[row]; e < t.weights.row_ptr[row + 1]; ++e) {
          t.bias[row] += t.weights.val[e] * k;
          t.weights.val[e] *= a2[t.weights.col[e]];
        }
    }
    LinearStage& s = bn.lin();
    for (double& v : s.weights.val) v = 1.0;
    s.bias = std::move(shift);
    s.unit_weights = true;
    PolyStage& square = act.stage.poly();
    square.coefficients = {0.0, 0.0, 1.0};
    if (square.input_range > 0) square.input_range = shifted_range;  // unmeasured stays unmeasured
    square.fit_range = std::max(square.fit_range, shifted_range);    // a square is exact anywhere
  }
}

// (d) Consecutive linear stages -> one.
void merge_linear(std::vector<Item>& items) {
  for (std::size_t i = 0; i + 1 < items.size();) {
    Item& a = items[i];
    Item& b = items[i + 1];
    const bool sum_pool_into_conv =
        a.linear() && a.lin().unit_weights && a.lin().spatial && b.linear() && b.lin().spatial;
    if (!a.linear() || !b.linear() || sum_pool_into_conv || !fusable(items, i)) {
      ++i;
      continue;
    }
    replace_pair(items, i, merge(a, b));
  }
}

int ceil_log2(int v) {
  int bits = 0;
  while ((1 << bits) < v) ++bits;
  return bits;
}

// Powers x^2..x^d a polynomial needs, each built as x^(2^j) * x^(k - 2^j) so that x^k
// sits at depth ceil(log2 k).
void need_power(int k, std::set<int>& powers) {
  if (k <= 1 || powers.count(k)) return;
  powers.insert(k);
  int p = 1;
  while (p * 2 <= k) p *= 2;
  if (p == k) {
    need_power(k / 2, powers);
  } else {
    need_power(p, powers);
    need_power(k - p, powers);
  }
}

StageCost linear_cost(const LinearStage& s) {
  StageCost c;
  c.name = s.name;
  c.kind = StageKind::kLinear;
  c.depth = s.unit_weights ? 0 : 1;
  c.plaintext_mults = s.unit_weights ? 0 : s.weights.nnz();
  for (int r = 0; r < s.weights.rows; ++r) {
    const std::int64_t terms = s.weights.row_ptr[r + 1] - s.weights.row_ptr[r] + (s.bias[r] != 0 ? 1 : 0);
    c.additions += terms > 0 ? terms - 1 : 0;
  }
  return c;
}

StageCost poly_cost(const PolyStage& p, int values) {
  StageCost c;
  c.name = p.name;
  c.kind = StageKind::kPoly;
  std::vector<double> coef = p.coefficients;
  while (coef.size() > 1 && coef.back() == 0) coef.pop_back();
  const int d = static_cast<int>(coef.size()) - 1;
  if (d >= 1) c.depth = coef.back() == 1.0 ? ceil_log2(d) : ceil_log2(d + 1);
  std::set<int> powers;
  std::int64_t scalar = 0, terms = 0;
  for (int k = 0; k <= d; ++k) {
    if (coef[k] == 0) continue;
    ++terms;
    need_power(k, powers);
    if (k >= 1 && coef[k] != 1.0) ++scalar;
  }
  c.ciphertext_mults = static_cast<std::int64_t>(powers.size()) * values;
  c.constant_mults = scalar * values;
  c.additions = (terms > 0 ? terms - 1 : 0) * values;
  return c;
}

}  // namespace

Network lower(const Graph& graph, const LowerOptions& options) {
  check_graph(graph);
  std::vector<Item> items = initial_items(graph);
  if (options.fold_batch_norm) fold_batch_norms(items);
  if (options.fold_pool_scale) fold_pools(items);
  if (options.fold_poly_leading) fold_leading_coefficients(items);
  if (options.square_batch_norm) square_batch_norms(items);
  if (options.merge_linear) merge_linear(items);

  Network net;
  net.name = graph.name;
  net.dataset = graph.dataset;
  net.input = graph.input;
  net.mean = graph.mean;
  net.std = graph.std;
  net.classes = graph.classes;
  for (Item& item : items) {
    if (item.linear()) validate(item.lin());
    item.stage.inputs = std::move(item.inputs);
    net.stages.push_back(std::move(item.stage));
  }
  return net;
}

CostReport cost(const Network& network) {
  CostReport report;
  // Depth after each stage: the deepest input plus the stage's own (a sum along a chain).
  std::vector<int> depth_after(network.stages.size(), 0);
  for (std::size_t k = 0; k < network.stages.size(); ++k) {
    const Stage& s = network.stages[k];
    const std::vector<int> inputs = network.inputs_of(static_cast<int>(k));
    int depth_in = 0;
    for (int src : inputs) depth_in = std::max(depth_in, src < 0 ? 0 : depth_after[src]);
    StageCost c;
    if (const auto* l = std::get_if<LinearStage>(&s.op)) {
      c = linear_cost(*l);
      ++report.linear_stages;
    } else if (const auto* p = std::get_if<PolyStage>(&s.op)) {
      c = poly_cost(*p, network.output_size(inputs[0]));
      ++report.poly_stages;
    } else {
      const AddStage& a = s.add();
      c.name = a.name;
      c.kind = StageKind::kAdd;
      c.additions = static_cast<std::int64_t>(a.shape.size()) * static_cast<std::int64_t>(inputs.size() - 1);
    }
    depth_after[k] = depth_in + c.depth;
    report.plaintext_mults += c.plaintext_mults;
    report.constant_mults += c.constant_mults;
    report.ciphertext_mults += c.ciphertext_mults;
    report.additions += c.additions;
    report.stages.push_back(std::move(c));
  }
  if (!network.stages.empty()) report.depth = depth_after.back();
  return report;
}

std::string describe(const Network& network) {
  const CostReport report = cost(network);
  std::ostringstream out;
  auto shape = [](const Shape& s) {
    return std::to_string(s.c) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
  };
  for (std::size_t i = 0; i < network.stages.size(); ++i) {
    const Stage& s = network.stages[i];
    out << "  " << i + 1 << ". ";
    if (const auto* lp = std::get_if<LinearStage>(&s.op)) {
      const LinearStage& l = *lp;
      const bool shift =
          l.unit_weights && std::any_of(l.bias.begin(), l.bias.end(), [](double b) { return b != 0; });
      out << (shift            ? "shift"
              : l.unit_weights ? "sum-pool"
                               : "linear")
          << " " << l.name << "  " << shape(l.in) << " -> " << shape(l.out)
          << (l.spatial ? "  spatial stride " + std::to_string(l.stride_y) + "x" + std::to_string(l.stride_x)
                        : "  dense")
          << "  nnz " << l.weights.nnz();
    } else if (const auto* a = std::get_if<AddStage>(&s.op)) {
      out << "add " << a->name << "  " << shape(a->shape) << "  of stages";
      for (int src : network.inputs_of(static_cast<int>(i)))
        out << " " << (src < 0 ? "input" : std::to_string(src + 1));
    } else {
      const PolyStage& p = s.poly();
      out << "poly " << p.name << "  degree " << p.degree() << (p.coefficients.back() == 1.0 ? " monic" : "")
          << "  input_range " << p.input_range << " fit_range " << p.fit_range;
    }
    out << "  depth " << report.stages[i].depth << "\n";
  }
  out << "  total: " << report.num_stages() << " stages (" << report.linear_stages << " linear, "
      << report.poly_stages << " poly), depth " << report.depth << ", " << report.plaintext_mults
      << " plaintext-weight mults, " << report.constant_mults << " constant mults, "
      << report.ciphertext_mults << " ciphertext mults, " << report.additions << " additions\n";
  return out.str();
}

}  // namespace veil::nn
