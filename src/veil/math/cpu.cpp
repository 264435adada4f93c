#include "veil/math/cpu.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace veil::math {

namespace {
std::atomic<bool> g_simd{true};
bool env_allows_simd() {
  const char* v = std::getenv("VEIL_SIMD");
  return !(v && (std::strcmp(v, "off") == 0 || std::strcmp(v, "0") == 0));
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__)
    __builtin_cpu_init();
    c.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return c;
  }();
  return f;
}

void set_simd_enabled(bool enabled) { g_simd = enabled; }
bool simd_enabled() {
  static const bool env = env_allows_simd();
  return env && g_simd.load();
}

}  // namespace veil::math
