#include "veil/math/cpu.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace veil::math {

namespace {

// The cap set by set_simd_level (tests and benchmarks); the best level by default.
std::atomic<int> g_cap{static_cast<int>(SimdLevel::kAvx512)};

SimdLevel env_cap() {
  const char* v = std::getenv("VEIL_SIMD");
  if (!v || !*v) return SimdLevel::kAvx512;
  if (!std::strcmp(v, "off") || !std::strcmp(v, "0") || !std::strcmp(v, "scalar")) return SimdLevel::kScalar;
  if (!std::strcmp(v, "avx2")) return SimdLevel::kAvx2;
  if (!std::strcmp(v, "avx512")) return SimdLevel::kAvx512;
  // Not an error: a typo must not stop a server, but it must not pass silently either.
  std::fprintf(stderr, "veil: ignoring VEIL_SIMD=%s (expected scalar, avx2 or avx512)\n", v);
  return SimdLevel::kAvx512;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__)
    __builtin_cpu_init();
    c.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c.avx512_ifma = c.avx2_fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512ifma");
#endif
    return c;
  }();
  return f;
}

SimdLevel best_simd_level() {
  const CpuFeatures& f = cpu_features();
  return f.avx512_ifma ? SimdLevel::kAvx512 : f.avx2_fma ? SimdLevel::kAvx2 : SimdLevel::kScalar;
}

SimdLevel simd_level() {
  static const int best = std::min(static_cast<int>(best_simd_level()), static_cast<int>(env_cap()));
  return static_cast<SimdLevel>(std::min(best, g_cap.load(std::memory_order_relaxed)));
}

void set_simd_level(SimdLevel level) { g_cap = static_cast<int>(level); }

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "?";
}

void set_simd_enabled(bool enabled) { set_simd_level(enabled ? SimdLevel::kAvx512 : SimdLevel::kScalar); }
bool simd_enabled() { return simd_level() != SimdLevel::kScalar; }

}  // namespace veil::math
