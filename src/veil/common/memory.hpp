// Process-wide memory policy. Changing how malloc behaves affects every library in the
// process, so it is never done behind the program's back (no static initialisers): the
// program that wants it -- the `veil` command, the benchmarks -- calls this once at start.
#pragma once

#include <cstddef>
#include <string>

namespace veil {

// The mmap threshold configure_memory_for_he() sets: smaller blocks come from a heap that
// is never trimmed, so freed ones are reused without page faults; larger ones are mapped
// and unmapped each time (rlwe's polynomial cache keeps those).
inline constexpr std::size_t kHeapMmapThreshold = std::size_t{32} << 20;

// Tunes the C library's allocator for homomorphic-encryption workloads (glibc only; a
// no-op elsewhere):
//  - a fixed mmap threshold (kHeapMmapThreshold) and no heap trimming: thousands of 0.1-1 MB
//    ciphertexts are made and dropped per layer, and glibc's moving threshold and trimming
//    would hand them back to the kernel and fault them in again on every batch (measured:
//    system time of a 10,000-image MNIST run 2.4 s -> 1.6 s). The process keeps its peak
//    heap in exchange.
//  - one arena: worker threads' own arenas live in 64 MiB heaps that are unmapped whenever
//    one empties, so blocks made by parallel tasks were faulted in afresh layer after
//    layer; and memory pre-faulted by rlwe::reserve_heap() sits in the main arena, where
//    every thread must find it.
// Call before starting threads. Idempotent. Returns whether the policy was applied
// (false where the C library is not glibc).
bool configure_memory_for_he();

// Hands the heap's free memory back to the kernel (glibc's malloc_trim; a no-op
// elsewhere). configure_memory_for_he() turns automatic trimming off, so a program that
// has just freed a set-up's working memory calls this once at that phase boundary: a
// PreAct-ResNet-18's hybrid set-up leaves about 9 GB of freed heap behind (the double
// network, its merging and the scale search), which the server's kernel blocks want.
void release_free_memory();

// While it lives, blocks of any size come from the heap instead of fresh mappings (glibc's
// M_MMAP_MAX = 0; a no-op elsewhere and under a sanitizer), so a phase that makes and drops
// the same large arrays again and again reuses their pages instead of faulting new ones
// in. The hybrid mode's scale search quantises a PreAct-ResNet-18's 482 M weights for each
// of 24 candidates: 46 s of system time and 390,000 page faults on this virtual machine,
// 15 s and 9,000 with the heap reused. Its end restores mappings for large blocks and
// hands the heap's free memory back (release_free_memory), so what the phase dropped is
// not kept from later budgets. Not nested; the process's allocator policy is global.
class ReuseLargeBlocks {
 public:
  ReuseLargeBlocks();
  ~ReuseLargeBlocks();
  ReuseLargeBlocks(const ReuseLargeBlocks&) = delete;
  ReuseLargeBlocks& operator=(const ReuseLargeBlocks&) = delete;
};

// Transparent huge pages (2 MiB) for the C library's heap, through glibc's tunable
// glibc.malloc.hugetlb=1 (glibc >= 2.35; it madvises the heap, so the kernel's default THP
// setting "madvise" suffices). Cached weight diagonals, keys and ciphertexts are gigabytes
// touched once at set-up, and in a virtual machine every 4 KiB page fault is expensive:
// on veil_he_bench's 36 x 36 map (1.4 GB of diagonals) the process's system time fell
// from 6-10 s to 1 s and its wall time from 25-28 s to 14 s, the evaluation itself
// unchanged. Tunables are read when a process starts, so this re-executes the program
// once, same arguments, with the tunable added to GLIBC_TUNABLES. It returns (changing
// nothing) when the tunable is already there, VEIL_HUGE_PAGES=0 is set, the C library is
// not glibc, or the exec fails. Call first thing in main, before any thread exists.
void use_huge_pages(char** argv);
// GLIBC_TUNABLES with the huge-page tunable added to `current` (null: unset), or empty
// when `current` already sets glibc.malloc.hugetlb (use_huge_pages' decision, testable).
std::string tunables_with_huge_pages(const char* current);

// This process's resident memory now and at its peak, in bytes (Linux: VmRSS and VmHWM
// of /proc/self/status); 0 where unknown. For the set-up reports of `veil serve`/`infer`.
struct ResidentMemory {
  std::size_t now = 0, peak = 0;
};
ResidentMemory resident_memory();

// A cache's default budget: half the machine's physical memory (4 GiB where unknown), and
// at most `of_available` of what is available now.
std::size_t memory_budget(double of_available);

// Bytes the kernel estimates can be allocated without swapping (MemAvailable in
// /proc/meminfo); 0 where that is not known.
std::size_t available_memory();

}  // namespace veil
