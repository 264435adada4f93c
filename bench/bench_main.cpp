// The main() of every veil benchmark program: the memory policy of the `veil` command
// (common/memory.hpp: huge pages, no trimming, one arena), so that set-up and evaluation
// figures match what the command does, then Google Benchmark's usual run.
#include <benchmark/benchmark.h>

#include "veil/common/memory.hpp"

int main(int argc, char** argv) {
  veil::use_huge_pages(argv);  // re-executes once with glibc's huge-page tunable
  veil::configure_memory_for_he();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
