#include "veil/nn/network.hpp"

namespace veil::nn {

int Network::num_outputs() const {
  // Polynomial stages keep the shape, so the output size is the last linear stage's.
  for (auto it = stages.rbegin(); it != stages.rend(); ++it)
    if (it->kind == Stage::Kind::kLinear) return it->linear.out.size();
  return input.size();
}

}  // namespace veil::nn
