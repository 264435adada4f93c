#include "veil/common/memory.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace veil {

void configure_memory_for_he() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, -1);
  mallopt(M_ARENA_MAX, 1);
#endif
}

}  // namespace veil
