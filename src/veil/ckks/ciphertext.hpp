// Plaintexts and ciphertexts: RNS polynomials in NTT form, limb-major (limb i of poly c
// starts at (c * (level+1) + i) * N), with the CKKS metadata that travels with them.
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <vector>

#include "veil/common/rng.hpp"
#include "veil/math/modarith.hpp"

namespace veil::ckks {

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

class Plaintext {
 public:
  Plaintext() = default;
  Plaintext(std::size_t n, int level, double scale, std::size_t slots)
      : n_(n), level_(level), scale_(scale), slots_(slots), data_((level + 1) * n) {}

  std::size_t n() const { return n_; }
  int level() const { return level_; }
  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  std::size_t slots() const { return slots_; }
  std::size_t num_limbs() const { return static_cast<std::size_t>(level_) + 1; }
  u64* limb(std::size_t i) { return data_.data() + i * n_; }
  const u64* limb(std::size_t i) const { return data_.data() + i * n_; }
  PolyData& data() { return data_; }
  const PolyData& data() const { return data_; }
  // Keeps the first level+1 limbs.
  void drop_to_level(int level);

 private:
  std::size_t n_ = 0;
  int level_ = -1;
  double scale_ = 1.0;
  std::size_t slots_ = 0;
  PolyData data_;
};

class Ciphertext {
 public:
  Ciphertext() = default;
  // Contents are uninitialised: the creator must write every coefficient.
  Ciphertext(std::size_t n, std::size_t size, int level, double scale, std::size_t slots)
      : n_(n), size_(size), level_(level), scale_(scale), slots_(slots), data_(size * (level + 1) * n) {}

  std::size_t n() const { return n_; }
  // Number of polynomials: 2 after relinearisation, 3 after a multiplication.
  std::size_t size() const { return size_; }
  int level() const { return level_; }
  double scale() const { return scale_; }
  void set_scale(double s) { scale_ = s; }
  std::size_t slots() const { return slots_; }
  std::size_t num_limbs() const { return static_cast<std::size_t>(level_) + 1; }
  bool empty() const { return size_ == 0; }

  u64* poly(std::size_t c) { return data_.data() + c * num_limbs() * n_; }
  const u64* poly(std::size_t c) const { return data_.data() + c * num_limbs() * n_; }
  u64* limb(std::size_t c, std::size_t i) { return poly(c) + i * n_; }
  const u64* limb(std::size_t c, std::size_t i) const { return poly(c) + i * n_; }
  PolyData& data() { return data_; }
  const PolyData& data() const { return data_; }

  // Fresh symmetric encryptions remember the seed of their uniform part c1, so they can
  // be saved seed-compressed. Any operation that changes c1 clears it.
  const std::optional<Seed>& seed() const { return seed_; }
  void set_seed(std::optional<Seed> s) { seed_ = s; }

  void resize(std::size_t size, int level);
  // Keeps the first level+1 limbs of each polynomial.
  void drop_to_level(int level);

 private:
  std::size_t n_ = 0;
  std::size_t size_ = 0;
  int level_ = -1;
  double scale_ = 1.0;
  std::size_t slots_ = 0;
  PolyData data_;
  std::optional<Seed> seed_;
};

}  // namespace veil::ckks
