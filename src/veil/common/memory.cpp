#include "veil/common/memory.hpp"

// A C library header first: __GLIBC__ is defined by glibc's own headers, so testing it
// before any of them is included silently compiles the policy out (it did, and the first
// image of mnist-delphi took twice as long: 2.3 s instead of 1.0-1.4 s).
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>

#include <unistd.h>

namespace veil {

bool configure_memory_for_he() {
#if defined(__GLIBC__)
  // mallopt returns 1 on success.
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(kHeapMmapThreshold)) == 1 &&
         mallopt(M_TRIM_THRESHOLD, -1) == 1 && mallopt(M_ARENA_MAX, 1) == 1;
#else
  return false;
#endif
}

std::size_t memory_budget(double of_available) {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  std::size_t budget = pages > 0 && page > 0
                           ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 2
                           : std::size_t{4} << 30;
  if (const std::size_t available = available_memory(); available > 0)
    budget = std::min(budget, static_cast<std::size_t>(static_cast<double>(available) * of_available));
  return budget;
}

void release_free_memory() {
  // Not under a sanitizer, whose allocator replaces glibc's: there is nothing to trim.
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  malloc_trim(0);
#endif
}

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
ReuseLargeBlocks::ReuseLargeBlocks() { mallopt(M_MMAP_MAX, 0); }
ReuseLargeBlocks::~ReuseLargeBlocks() {
  mallopt(M_MMAP_MAX, 65536);  // glibc's default
  release_free_memory();
}
#else
ReuseLargeBlocks::ReuseLargeBlocks() = default;
ReuseLargeBlocks::~ReuseLargeBlocks() = default;
#endif

std::string tunables_with_huge_pages(const char* current) {
  constexpr const char* kTunable = "glibc.malloc.hugetlb=1";
  if (current == nullptr || *current == '\0') return kTunable;
  if (std::strstr(current, "glibc.malloc.hugetlb=") != nullptr) return {};
  return std::string(current) + ":" + kTunable;
}

void use_huge_pages(char** argv) {
#if defined(__GLIBC__) && defined(__linux__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
  // (Sanitizers bring their own allocators, which ignore the tunable.)
  const char* opt = std::getenv("VEIL_HUGE_PAGES");
  if (opt != nullptr && std::strcmp(opt, "0") == 0) return;
  const char* current = std::getenv("GLIBC_TUNABLES");
  const std::string before = current != nullptr ? current : "";
  const std::string tunables = tunables_with_huge_pages(current);
  if (tunables.empty() || setenv("GLIBC_TUNABLES", tunables.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the exec failed; run on with ordinary pages and the environment as it was.
  if (current != nullptr)
    setenv("GLIBC_TUNABLES", before.c_str(), 1);
  else
    unsetenv("GLIBC_TUNABLES");
#else
  (void)argv;
#endif
}

ResidentMemory resident_memory() {
  ResidentMemory m;
  std::ifstream status("/proc/self/status");
  std::string key;
  std::size_t kib = 0;
  // Lines "VmHWM:   123 kB"; other lines are skipped whole.
  while (status >> key) {
    if (key == "VmRSS:" && status >> kib) m.now = kib << 10;
    if (key == "VmHWM:" && status >> kib) m.peak = kib << 10;
    status.ignore(1 << 12, '\n');
  }
  return m;
}

std::size_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::size_t kib = 0;
  // Lines "MemAvailable:   123 kB".
  while (meminfo >> key) {
    if (key == "MemAvailable:" && meminfo >> kib) return kib << 10;
    meminfo.ignore(1 << 12, '\n');
  }
  return 0;
}

}  // namespace veil
