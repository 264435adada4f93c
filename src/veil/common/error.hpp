// Error reporting for the public API. Following SEAL's guard-clause style, every public
// operation validates its arguments first; following OpenFHE, the exception carries the
// file and line so a user's report points at the check that fired.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace veil {

// The message without the " (file.cpp:123)" locations VEIL_REQUIRE / VEIL_CHECK_IO append
// (nested messages carry several): what may be shown to a remote peer, which has no use
// for the build's internals. Local logs keep them.
std::string without_location(const std::string& message);

namespace detail {
[[noreturn]] void throw_invalid(const char* file, int line, const std::string& msg);
[[noreturn]] void throw_runtime(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace veil

// VEIL_REQUIRE(cond, streamable...) throws std::invalid_argument("msg (file:line)").
#define VEIL_REQUIRE(cond, ...)                                                  \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::ostringstream veil_require_os_;                                       \
      veil_require_os_ << __VA_ARGS__;                                           \
      ::veil::detail::throw_invalid(__FILE__, __LINE__, veil_require_os_.str()); \
    }                                                                            \
  } while (0)

// VEIL_CHECK_IO(cond, streamable...) throws std::runtime_error for I/O and peer errors
// (corrupt files, malformed messages).
#define VEIL_CHECK_IO(cond, ...)                                                 \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::ostringstream veil_require_os_;                                       \
      veil_require_os_ << __VA_ARGS__;                                           \
      ::veil::detail::throw_runtime(__FILE__, __LINE__, veil_require_os_.str()); \
    }                                                                            \
  } while (0)
