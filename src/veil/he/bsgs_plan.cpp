#include "veil/he/bsgs_plan.hpp"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "veil/common/error.hpp"

namespace veil::he {

namespace {

int mod(long long a, long long m) { return static_cast<int>(((a % m) + m) % m); }

long long near_zero(long long d, long long n) { return d > n / 2 ? d - n : d; }

// Diagonals from the shortest offset out (see step_sets).
std::vector<std::size_t> shortest_first(const LinearTransformSpec& spec) {
  const auto n = static_cast<long long>(spec.slots);
  std::vector<std::pair<long long, std::size_t>> keyed(spec.diagonals.size());
  for (std::size_t i = 0; i < keyed.size(); ++i)
    keyed[i] = {std::llabs(near_zero(spec.diagonals[i].step, n)), i};
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::size_t> order(keyed.size());
  for (std::size_t i = 0; i < keyed.size(); ++i) order[i] = keyed[i].second;
  return order;
}

}  // namespace

// Splits every offset d into giant + baby (baby in [0, G)). A rotation by d is also one
// by d - slots; when G does not divide the slot count the two give different baby
// steps, so each diagonal takes the representative whose baby step its input block
// already rotates by, else the one nearer zero (diagonals are visited from the shortest
// offset out, so common small steps are claimed first).
static StepSets step_sets(const LinearTransformSpec& spec, int giant, const std::vector<std::size_t>& order) {
  const auto n = static_cast<long long>(spec.slots);
  StepSets s;
  s.baby_of.resize(spec.diagonals.size());
  s.giant_of.resize(spec.diagonals.size());
  // Membership bitmaps: planning calls this for every candidate giant step of every map.
  std::vector<std::vector<char>> has_baby(spec.in_blocks, std::vector<char>(giant, 0));
  std::vector<char> has_giant(static_cast<std::size_t>(spec.out_blocks) * spec.slots, 0);
  s.baby.resize(spec.in_blocks);
  for (std::size_t i : order) {
    const auto& t = spec.diagonals[i];
    const long long first = near_zero(t.step, n), second = first > 0 ? first - n : first + n;
    auto& seen = has_baby[t.in_block];
    long long rep = first;
    if (!seen[mod(first, giant)] && seen[mod(second, giant)]) rep = second;
    const int b = mod(rep, giant);
    if (!seen[b]) seen[b] = 1, s.baby[t.in_block].push_back(b);
    s.baby_of[i] = b;
    const int g = mod(rep - b, n);
    s.giant_of[i] = g;
    char& gs = has_giant[static_cast<std::size_t>(t.out_block) * spec.slots + g];
    if (g != 0 && !gs) gs = 1, s.giants.emplace_back(t.out_block, g);
  }
  for (auto& b : s.baby) std::sort(b.begin(), b.end());
  std::sort(s.giants.begin(), s.giants.end());
  return s;
}

StepSets step_sets(const LinearTransformSpec& spec, int giant) {
  return step_sets(spec, giant, shortest_first(spec));
}

void check_spec(const LinearTransformSpec& spec) {
  VEIL_REQUIRE(spec.slots > 0 && (spec.slots & (spec.slots - 1)) == 0, "slot count must be a power of two");
  VEIL_REQUIRE(spec.in_blocks >= 1 && spec.out_blocks >= 1, "a linear map needs at least one block");
  for (const auto& t : spec.diagonals) {
    VEIL_REQUIRE(
        t.in_block >= 0 && t.in_block < spec.in_blocks && t.out_block >= 0 && t.out_block < spec.out_blocks,
        "diagonal block index out of range");
    VEIL_REQUIRE(t.step >= 0 && static_cast<std::size_t>(t.step) < spec.slots, "diagonal step out of range");
  }
  VEIL_REQUIRE(spec.bias.empty() || static_cast<int>(spec.bias.size()) == spec.out_blocks,
               "bias must have one vector per output block");
}

int choose_giant_step(const LinearTransformSpec& spec, double hoisted_cost, const std::vector<int>& extra) {
  check_spec(spec);
  std::set<int> candidates;
  for (std::size_t g = 1; g <= spec.slots; g *= 2) candidates.insert(static_cast<int>(g));
  for (int g : extra)
    if (g >= 1 && static_cast<std::size_t>(g) <= spec.slots) candidates.insert(g);
  int best = static_cast<int>(spec.slots);
  double best_cost = -1;
  const auto order = shortest_first(spec);
  for (int g : candidates) {
    const StepSets s = step_sets(spec, g, order);
    const double cost = static_cast<double>(s.giants.size()) + hoisted_cost * s.baby_rotations();
    if (best_cost < 0 || cost < best_cost) best_cost = cost, best = g;
  }
  return best;
}

std::vector<int> rotation_steps(const LinearTransformSpec& spec, int giant_step) {
  const StepSets s = step_sets(spec, giant_step);
  std::set<int> steps;
  for (const auto& b : s.baby) steps.insert(b.begin(), b.end());
  for (const auto& [bo, g] : s.giants) steps.insert(g);
  for (int f : spec.fold_steps) steps.insert(static_cast<int>(f % static_cast<int>(spec.slots)));
  steps.erase(0);
  return {steps.begin(), steps.end()};
}

TransformCounts count(const LinearTransformSpec& spec, int giant_step) {
  check_spec(spec);
  const StepSets s = step_sets(spec, giant_step);
  TransformCounts c;
  c.baby_rotations = s.baby_rotations();
  c.giant_rotations = static_cast<int>(s.giants.size());
  c.fold_rotations = static_cast<int>(spec.fold_steps.size()) * spec.out_blocks;
  c.plaintext_mults = spec.unit ? 0 : static_cast<std::int64_t>(spec.diagonals.size());
  c.levels = spec.unit ? 0 : 1;
  return c;
}

}  // namespace veil::he
