// Run-time CPU feature detection for choosing SIMD kernels. VEIL_SIMD=off forces the
// portable kernels (used by tests to exercise both paths on one machine).
#pragma once

namespace veil::math {

struct CpuFeatures {
  bool avx2_fma = false;
};

const CpuFeatures& cpu_features();
// Overrides detection (tests): false disables every SIMD kernel.
void set_simd_enabled(bool enabled);
bool simd_enabled();

}  // namespace veil::math
