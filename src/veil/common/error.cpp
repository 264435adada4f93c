#include "veil/common/error.hpp"

#include <cstring>
#include <regex>

namespace veil {

std::string without_location(const std::string& message) {
  static const std::regex location(R"( \([A-Za-z0-9_.+-]+\.(cpp|hpp|cc|h):[0-9]+\))");
  return std::regex_replace(message, location, "");
}

}  // namespace veil

namespace veil::detail {

namespace {
std::string with_location(const char* file, int line, const std::string& msg) {
  // Only the file name, not the build machine's path.
  const char* slash = std::strrchr(file, '/');
  return msg + " (" + (slash ? slash + 1 : file) + ":" + std::to_string(line) + ")";
}
}  // namespace

void throw_invalid(const char* file, int line, const std::string& msg) {
  throw std::invalid_argument(with_location(file, line, msg));
}

void throw_runtime(const char* file, int line, const std::string& msg) {
  throw std::runtime_error(with_location(file, line, msg));
}

}  // namespace veil::detail
