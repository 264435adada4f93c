// Process-wide memory policy. Changing how malloc behaves affects every library in the
// process, so it is never done behind the program's back (no static initialisers): the
// program that wants it -- the `veil` command, the benchmarks -- calls this once at start.
#pragma once

#include <cstddef>

namespace veil {

// Tunes the C library's allocator for homomorphic-encryption workloads (glibc only; a
// no-op elsewhere):
//  - a fixed 32 MiB mmap threshold and no heap trimming: thousands of 0.1-1 MB
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

// This process's resident memory now and at its peak, in bytes (Linux: VmRSS and VmHWM
// of /proc/self/status); 0 where unknown. For the set-up reports of `veil serve`/`infer`.
struct ResidentMemory {
  std::size_t now = 0, peak = 0;
};
ResidentMemory resident_memory();

}  // namespace veil
