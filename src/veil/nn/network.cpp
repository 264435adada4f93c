#include "veil/nn/network.hpp"

#include "veil/common/error.hpp"

namespace veil::nn {

const std::string& Stage::name() const {
  return std::visit([](const auto& s) -> const std::string& { return s.name; }, op);
}

int Network::output_size(int k) const {
  // Polynomial stages keep the shape of what they read.
  while (k >= 0) {
    const Stage& s = stages[k];
    if (const auto* l = std::get_if<LinearStage>(&s.op)) return l->out.size();
    if (const auto* a = std::get_if<AddStage>(&s.op)) return a->shape.size();
    k = inputs_of(k).front();
  }
  return input.size();
}

int Network::num_outputs() const { return output_size(static_cast<int>(stages.size()) - 1); }

std::vector<int> Network::inputs_of(int k) const {
  const std::vector<int>& in = stages[k].inputs;
  return in.empty() ? std::vector<int>{k - 1} : in;
}

bool Network::is_chain() const {
  for (std::size_t k = 0; k < stages.size(); ++k) {
    const Stage& s = stages[k];
    if (s.is<AddStage>()) return false;
    if (!s.inputs.empty() && (s.inputs.size() != 1 || s.inputs[0] != static_cast<int>(k) - 1)) return false;
  }
  return true;
}

namespace {

// Stage s's weights moved out, an all-zero matrix of the same size (still well formed)
// left in their place.
SparseMatrix take_weights(Stage& s) {
  SparseMatrix& w = s.linear().weights;
  SparseMatrix out = std::move(w);
  w = SparseMatrix{};
  w.rows = out.rows;
  w.cols = out.cols;
  w.row_ptr.assign(static_cast<std::size_t>(w.rows) + 1, 0);
  return out;
}

}  // namespace

void Network::drop_linear_weights() {
  for (std::size_t k = 0; k < stages.size(); ++k) drop_linear_weights(k);
}

void Network::drop_linear_weights(std::size_t k) {
  if (stages.at(k).is<LinearStage>()) take_weights(stages[k]);
}

std::vector<SparseMatrix> Network::take_linear_weights() {
  std::vector<SparseMatrix> out;
  for (Stage& s : stages)
    if (s.is<LinearStage>()) out.push_back(take_weights(s));
  return out;
}

void Network::put_linear_weights(std::vector<SparseMatrix> weights) {
  std::size_t i = 0;
  for (Stage& s : stages) {
    if (!s.is<LinearStage>()) continue;
    VEIL_REQUIRE(i < weights.size(), "put_linear_weights: fewer matrices than linear stages");
    SparseMatrix& w = s.linear().weights;
    VEIL_REQUIRE(weights[i].rows == w.rows && weights[i].cols == w.cols,
                 "put_linear_weights: a matrix of the wrong size for stage '" << s.name() << "'");
    w = std::move(weights[i++]);
  }
  VEIL_REQUIRE(i == weights.size(), "put_linear_weights: more matrices than linear stages");
}

}  // namespace veil::nn
