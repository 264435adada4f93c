// Run-time CPU feature detection for choosing SIMD kernels.
//
// Three kernel levels: portable scalar code, AVX2 + FMA, and AVX-512 with IFMA52 (the
// 52-bit integer multiply-add that Intel HEXL builds its NTT and element-wise kernels on).
// The default is the best level the CPU has. VEIL_SIMD=scalar|avx2|avx512 (read once;
// "off" and "0" mean scalar) or set_simd_level() caps it, so tests exercise every path on
// one machine and benchmarks compare them in one run. A cap above what the CPU has runs
// the best level it does have: AVX-512 code never runs on an AVX2-only CPU.
#pragma once

namespace veil::math {

struct CpuFeatures {
  bool avx2_fma = false;
  // AVX-512 F + DQ + VL + IFMA (vpmadd52luq/vpmadd52huq): what the AVX-512 kernels use.
  bool avx512_ifma = false;
};

enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

const CpuFeatures& cpu_features();
// The best level this CPU supports.
SimdLevel best_simd_level();
// The level the kernels use now: the best one, capped by VEIL_SIMD and set_simd_level.
SimdLevel simd_level();
// Caps the level (tests, benchmarks); a cap above best_simd_level() gives the best level.
void set_simd_level(SimdLevel level);
// "scalar", "avx2" or "avx512".
const char* simd_level_name(SimdLevel level);
// Older switch: false = set_simd_level(kScalar), true = the best level again.
void set_simd_enabled(bool enabled);
// Whether any SIMD kernel may run (simd_level() above scalar).
bool simd_enabled();

}  // namespace veil::math
