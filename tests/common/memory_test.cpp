// The allocator policy must really reach glibc: a preprocessor slip once compiled it out
// without a sound (and doubled the first image's latency).
#include "veil/common/memory.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <unistd.h>

namespace veil {
namespace {

TEST(MemoryPolicy, AppliedWhereTheCLibraryIsGlibc) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's allocator replaces glibc's malloc, so mallopt does nothing here";
#elif defined(__GLIBC__)
  EXPECT_TRUE(configure_memory_for_he());
  EXPECT_TRUE(configure_memory_for_he());              // idempotent
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

// A cache's default budget: never above half the machine nor above the given share of
// what is free, and a larger share never gives less.
TEST(MemoryBudget, BoundedByHalfTheMachineAndTheShareOfWhatIsFree) {
#if !defined(__linux__)
  GTEST_SKIP() << "available_memory reads /proc/meminfo (Linux)";
#endif
  const std::size_t available = available_memory();
  ASSERT_GT(available, 0u);
  const std::size_t third = memory_budget(1.0 / 3), two_thirds = memory_budget(2.0 / 3);
  EXPECT_GT(third, 0u);
  // available_memory() moves between the calls: allow 64 MiB of drift.
  constexpr std::size_t kDrift = std::size_t{64} << 20;
  EXPECT_LE(third, available / 3 + kDrift);
  EXPECT_LE(two_thirds, available / 3 * 2 + kDrift);
  EXPECT_GE(two_thirds + kDrift, third);
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  ASSERT_GT(pages, 0);
  EXPECT_LE(memory_budget(1.0), static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 2);
}

// Handing freed heap back keeps every live allocation intact.
TEST(MemoryBudget, ReleasingFreeMemoryKeepsLiveBlocks) {
  auto live = std::make_unique<unsigned char[]>(1 << 20);
  for (std::size_t i = 0; i < (1u << 20); ++i) live[i] = static_cast<unsigned char>(i * 7);
  {
    std::vector<std::unique_ptr<unsigned char[]>> freed;
    for (int i = 0; i < 64; ++i) freed.push_back(std::make_unique<unsigned char[]>(256 << 10));
  }
  release_free_memory();
  for (std::size_t i = 0; i < (1u << 20); ++i) ASSERT_EQ(live[i], static_cast<unsigned char>(i * 7)) << i;
}

// Inside the scope a large block comes from the heap (glibc counts no new mapped block);
// after it, large blocks are mapped again.
TEST(MemoryPolicy, LargeBlocksComeFromTheHeapWhileReusing) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__GLIBC__)
  GTEST_SKIP() << "glibc's own allocator only";
#else
  constexpr std::size_t kBig = std::size_t{64} << 20;  // above any mmap threshold
  const auto mapped = [] { return mallinfo2().hblks; };
  {
    const ReuseLargeBlocks reuse;
    const std::size_t before = mapped();
    auto block = std::make_unique<unsigned char[]>(kBig);
    block[kBig - 1] = 1;
    EXPECT_EQ(mapped(), before);
  }
  const std::size_t before = mapped();
  auto block = std::make_unique<unsigned char[]>(kBig);
  block[kBig - 1] = 1;
  EXPECT_EQ(mapped(), before + 1);
#endif
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
