#include "veil/nn/network.hpp"

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

void Network::drop_linear_weights() {
  for (Stage& s : stages) {
    if (!s.is<LinearStage>()) continue;
    // An all-zero matrix of the same size, still well formed.
    SparseMatrix& w = std::get<LinearStage>(s.op).weights;
    // Moved-from temporaries free the storage (assigning {} would keep the capacity).
    w.col = std::vector<int>();
    w.val = std::vector<double>();
    w.row_ptr = std::vector<std::int64_t>(static_cast<std::size_t>(w.rows) + 1, 0);
  }
}

}  // namespace veil::nn
