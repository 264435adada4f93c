#include "veil/rlwe/ciphertext.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "veil/common/error.hpp"
#include "veil/common/memory.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/rlwe/context.hpp"

namespace veil::rlwe {

namespace {

// Only blocks the C library would map afresh (and fault in again) on every allocation:
// smaller ones are reused from its never-trimmed heap (common/memory.hpp), where a block
// freed at one size can serve another. Caching those by exact size kept blocks of sizes
// an evaluation had moved past (cifar10-shallow's server with a session: 5.35 -> 4.61 GiB
// peak without them, as fast).
constexpr std::size_t kPooledMin = kHeapMmapThreshold;
constexpr std::size_t kPolyCacheBytes = std::size_t{1} << 30;

struct PolyCache {
  std::mutex m;
  std::unordered_multimap<std::size_t, void*> blocks;
  std::size_t bytes = 0;
};

// Never destroyed: polynomials in other static objects may be freed after it would be.
PolyCache& poly_cache() {
  static auto* c = new PolyCache;
  return *c;
}

}  // namespace

void* poly_alloc(std::size_t bytes) {
  if (bytes >= kPooledMin) {
    PolyCache& c = poly_cache();
    std::lock_guard<std::mutex> lock(c.m);
    auto it = c.blocks.find(bytes);
    if (it != c.blocks.end()) {
      void* p = it->second;
      c.blocks.erase(it);
      c.bytes -= bytes;
      return p;
    }
  }
  return ::operator new(bytes);
}

void poly_free(void* p, std::size_t bytes) noexcept {
  if (bytes >= kPooledMin) {
    PolyCache& c = poly_cache();
    std::lock_guard<std::mutex> lock(c.m);
    if (c.bytes + bytes <= kPolyCacheBytes) {
      c.blocks.emplace(bytes, p);
      c.bytes += bytes;
      return;
    }
  }
  ::operator delete(p);
}

void reserve_heap(std::size_t bytes) {
  // Blocks below the mmap threshold come from the heap, which is never trimmed once
  // configure_memory_for_he() (common/memory.hpp) has run.
  constexpr std::size_t kBlock = std::size_t{16} << 20, kMax = std::size_t{4} << 30;
  std::vector<void*> blocks;
  for (std::size_t done = 0; done < std::min(bytes, kMax); done += kBlock) {
    void* p = std::malloc(kBlock);
    if (!p) break;
    blocks.push_back(p);
  }
  // Faulted in on every thread: the kernel zeroes each page in the thread that touches it,
  // and on a virtual machine's first touch of a page the host backs it too, which on these
  // machines ran at 0.45 GB/s on one thread and twice that on two (a cold 2 GiB took 4.4 s
  // on one). Allocation by allocation, under the allocator's one lock, it ran on one.
  // A write per page through volatile: a memset of memory freed unread is a dead store
  // the compiler may drop.
  parallel_for(blocks.size(), [&](std::size_t i) {
    auto* b = static_cast<volatile unsigned char*>(blocks[i]);
    for (std::size_t off = 0; off < kBlock; off += 4096) b[off] = 0;
  });
  for (void* p : blocks) std::free(p);
}

Plaintext::Plaintext(const Context& ctx, int level)
    : n_(ctx.n()),
      level_(level),
      param_id_(ctx.param_id()),
      data_(static_cast<std::size_t>(level + 1) * ctx.n()) {
  VEIL_REQUIRE(level >= 0 && level <= ctx.max_level(),
               "level " << level << " outside 0.." << ctx.max_level());
}

Ciphertext::Ciphertext(const Context& ctx, std::size_t size, int level)
    : n_(ctx.n()),
      size_(size),
      level_(level),
      param_id_(ctx.param_id()),
      data_(size * static_cast<std::size_t>(level + 1) * ctx.n()) {
  VEIL_REQUIRE(level >= 0 && level <= ctx.max_level(),
               "level " << level << " outside 0.." << ctx.max_level());
}

void check_param_id(const Context& ctx, std::uint64_t id, const char* what) {
  VEIL_REQUIRE(id == ctx.param_id(), what << " belongs to other parameters (id " << id << "), expected "
                                          << ctx.param_id() << " (made under another context?)");
}

void Plaintext::drop_to_level(int level) {
  VEIL_REQUIRE(level >= 0 && level <= level_,
               "cannot move a plaintext from level " << level_ << " to " << level);
  level_ = level;
  data_.resize(num_limbs() * n_);
}

void Ciphertext::resize(std::size_t size, int level) {
  size_ = size;
  level_ = level;
  data_.assign(size * num_limbs() * n_, 0);
  seed_.reset();
}

void Ciphertext::drop_to_level(int level) {
  VEIL_REQUIRE(level >= 0 && level <= level_, "cannot move a ciphertext from level "
                                                  << level_ << " to " << level << " (levels only go down)");
  if (level == level_) return;
  const std::size_t old_limbs = num_limbs(), new_limbs = static_cast<std::size_t>(level) + 1;
  for (std::size_t c = 1; c < size_; ++c) {
    std::memmove(data_.data() + c * new_limbs * n_, data_.data() + c * old_limbs * n_,
                 new_limbs * n_ * sizeof(u64));
  }
  level_ = level;
  data_.resize(size_ * new_limbs * n_);
  // Dropping limbs keeps c1 expandable from its seed only limb-wise; stay simple.
  seed_.reset();
}

}  // namespace veil::rlwe
