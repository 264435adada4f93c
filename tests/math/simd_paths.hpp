// Runs a test body once per SIMD kernel level this CPU has (scalar, AVX2, AVX-512 IFMA),
// capping math::simd_level() for each and restoring the default afterwards, and records
// which levels ran (printed, and as the test property "simd_paths") and which could not.
#pragma once

#include <gtest/gtest.h>

#include <iostream>
#include <string>

#include "veil/math/cpu.hpp"

namespace veil::math::testing_paths {

template <class F>
void for_each_simd_level(F&& f) {
  std::string ran, missing;
  for (int l = 0; l <= static_cast<int>(SimdLevel::kAvx512); ++l) {
    const auto level = static_cast<SimdLevel>(l);
    set_simd_level(level);
    if (simd_level() != level) {  // not on this CPU, or capped lower by VEIL_SIMD
      missing += missing.empty() ? "" : ",";
      missing += simd_level_name(level);
      continue;
    }
    f(level);
    ran += ran.empty() ? "" : ",";
    ran += simd_level_name(level);
  }
  set_simd_level(SimdLevel::kAvx512);
  ::testing::Test::RecordProperty("simd_paths", ran);
  // Once per test, not once per call.
  static std::string reported;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "";
  if (name == reported) return;
  reported = name;
  std::cout << "[ simd     ] paths exercised: " << ran
            << " (best on this CPU: " << simd_level_name(best_simd_level()) << ")"
            << (missing.empty() ? "" : "; not exercised here (CPU or VEIL_SIMD): " + missing) << "\n";
}

}  // namespace veil::math::testing_paths
