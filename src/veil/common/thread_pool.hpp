// The process's one thread pool. Data-parallel loops over RNS limbs and key-switching
// digits run on its persistent workers (a multiply-relinearise at N=2^13 takes about a
// millisecond, where spawning threads per call would cost a visible fraction). Coarse
// jobs (one encrypted evaluation each, started by server sessions) are admitted a few at
// a time; their loops use the same workers, so however many sessions a server has, the
// process has one set of worker threads and one knob for each kind of concurrency.
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

// Coarse jobs: at most max_jobs() run at once (default 2), admitted in arrival order; a job
// runs on its caller's thread, which waits for its turn (no hand-off to another thread, so
// nothing to copy and exceptions propagate as usual). Bounds how many large working sets
// (an evaluation's ciphertexts) are in memory at once.
void set_max_jobs(int n);
int max_jobs();
// Runs fn once a job slot is free; returns the seconds spent waiting for the slot.
double run_job(const std::function<void()>& fn);
// Jobs waiting for a slot now (a server's queue length).
int waiting_jobs();

}  // namespace veil
