#include "veil/eval/records.hpp"

#include <algorithm>

namespace veil::eval {

int argmax(const std::vector<double>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace veil::eval
