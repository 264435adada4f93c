// The message of the std::invalid_argument a call throws, for tests that check what an
// error names ("(no exception)" when it throws none).
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace veil::test {

inline std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace veil::test
