// Small formatting helpers shared by the command line and the server's log.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace veil {

// "48 B", "552.0 KiB", "281.7 MiB", "1.9 GiB".
std::string human_bytes(std::uint64_t bytes);

// Seconds elapsed since `t` on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace veil
