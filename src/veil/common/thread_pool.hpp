// A small persistent thread pool for data-parallel loops over RNS limbs and key-switching
// digits. Persistent workers matter: a multiply-relinearise at N=2^13 takes about a
// millisecond, where spawning threads per call would cost a visible fraction.
#pragma once

#include <cstddef>
#include <functional>

namespace veil {

// Number of threads used by parallel_for (including the caller). Defaults to the
// VEIL_THREADS environment variable, else the number of hardware threads.
void set_num_threads(int n);
int num_threads();

// Calls fn(i) for i in [0, n), spread over the pool. Nested calls run serially on the
// calling thread, so library code may call parallel_for freely.
void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn);

}  // namespace veil
