// The allocator policy must really reach glibc: a preprocessor slip once compiled it out
// without a sound (and doubled the first image's latency).
#include "veil/common/memory.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace veil {
namespace {

TEST(MemoryPolicy, AppliedWhereTheCLibraryIsGlibc) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's allocator replaces glibc's malloc, so mallopt does nothing here";
#elif defined(__GLIBC__)
  EXPECT_TRUE(configure_memory_for_he());
  EXPECT_TRUE(configure_memory_for_he());  // idempotent
#else
  EXPECT_FALSE(configure_memory_for_he());
#endif
}

}  // namespace
}  // namespace veil
