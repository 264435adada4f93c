// Storage for RNS polynomials: an allocator that reuses large blocks and leaves new
// elements uninitialised, and the heap pre-faulting a server does at set-up.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "veil/math/modarith.hpp"

namespace veil::rlwe {

using math::u64;

// Storage for polynomials of at least 1 MiB goes through a cache of freed blocks, reused
// by exact size (HE objects come in a few sizes, one per level), in the spirit of SEAL's
// memory pool. The C library maps blocks this large afresh on every allocation, so
// without it each operation at N = 2^16 page-faults and zero-fills hundreds of MB.
// At most 1 GiB stays cached; the rest goes back to the heap.
void* poly_alloc(std::size_t bytes);
void poly_free(void* p, std::size_t bytes) noexcept;
// Touches `bytes` of heap once and frees it, where the C library keeps it for the next
// allocations: a server calls it at set-up with its working-set size so the first request
// does not pay the page faults and zero-filling of fresh memory (costly in a virtual
// machine, where a page never touched before is also allocated by the host).
void reserve_heap(std::size_t bytes);

// Allocator that leaves new elements uninitialised: every producer of a polynomial
// writes all of it, so zero-filling megabytes per operation would be wasted bandwidth.
template <class T>
struct UninitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <class U>
  UninitAllocator(const UninitAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  T* allocate(std::size_t n) { return static_cast<T*>(poly_alloc(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { poly_free(p, n * sizeof(T)); }
};
using PolyData = std::vector<u64, UninitAllocator<u64>>;

}  // namespace veil::rlwe
