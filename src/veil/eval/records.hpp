// What an evaluation loop runs on and how it reports progress.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace veil::eval {

// Normalised inputs (nn::normalize) and their labels, one per record.
struct Records {
  std::vector<std::vector<double>> inputs;
  std::vector<int> labels;
  std::size_t size() const { return inputs.size(); }
};

// Called after each evaluation with the records done so far and a short running summary.
using Progress = std::function<void(std::size_t done, const std::string& summary)>;

// Index of the largest value (the first of equal ones).
int argmax(const std::vector<double>& v);

}  // namespace veil::eval
