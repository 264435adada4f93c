// The allocator policy must really reach glibc: a preprocessor slip once compiled it out
// without a sound (and doubled the first image's latency).
#include "veil/common/memory.hpp"

#include <gtest/gtest.h>

#include <memory>

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

// 64 MiB touched page by page (above every malloc's mmap threshold, so fresh pages) show
// up in the resident size, and the peak is never below the current size.
TEST(ResidentMemory, CountsTouchedPages) {
#if !defined(__linux__)
  GTEST_SKIP() << "resident_memory reads /proc/self/status (Linux)";
#endif
  const ResidentMemory before = resident_memory();
  ASSERT_GT(before.now, 0u);
  constexpr std::size_t kBytes = std::size_t{64} << 20;
  auto block = std::make_unique<unsigned char[]>(kBytes);  // value-initialised: every page written
  volatile unsigned char sink = block[kBytes - 1];
  (void)sink;
  const ResidentMemory after = resident_memory();
  EXPECT_GE(after.now, before.now + kBytes * 3 / 4);
  EXPECT_GE(after.peak, after.now);
  EXPECT_GE(after.peak, before.peak);
}

TEST(HugePages, TunableIsAddedOnceAndKeepsTheUsersOwn) {
  EXPECT_EQ(tunables_with_huge_pages(nullptr), "glibc.malloc.hugetlb=1");
  EXPECT_EQ(tunables_with_huge_pages(""), "glibc.malloc.hugetlb=1");
  EXPECT_EQ(tunables_with_huge_pages("glibc.malloc.arena_max=2"),
            "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1");
  // Already decided (by the re-executed process, or by the user either way): no change.
  EXPECT_EQ(tunables_with_huge_pages("glibc.malloc.hugetlb=1"), "");
  EXPECT_EQ(tunables_with_huge_pages("glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=0"), "");
}

}  // namespace
}  // namespace veil
