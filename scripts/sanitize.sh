#!/usr/bin/env bash
# Sanitizer runs (part of CI):
#   1. ASan + UBSan: the unit tests labelled "fast", built in build-asan/.
#   2. TSan: the thread pool and job admission, the channels (TCP and in memory), the
#      two-party share protocols and the hybrid mode (both roles on threads, concurrent
#      sessions, the parallel linear layers), built in build-tsan/ (the code that runs on
#      several threads at once). HybridConvForm is left out: single-threaded, and 26 of
#      the hybrid tests' 55 s under TSan.
# Any sanitizer report fails the run. Usage: scripts/sanitize.sh [asan|tsan|all]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
what="${1:-all}"
jobs="${VEIL_JOBS:-$(nproc)}"
# shellcheck source=scripts/ccache.sh
. "$here/scripts/ccache.sh"

configure() {  # dir, extra cmake args...
  local dir="$1"; shift
  cmake -S "$here" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVEIL_BUILD_BENCH=OFF \
    "${launcher[@]}" "$@" >/dev/null
}

status=0
if [ "$what" = asan ] || [ "$what" = all ]; then
  dir="${VEIL_ASAN_BUILD_DIR:-$here/build-asan}"
  echo "[sanitize] ASan + UBSan build of the unit tests in $dir"
  configure "$dir" -DVEIL_SANITIZE=ON
  cmake --build "$dir" --parallel "$jobs"
  # halt_on_error: the first report fails the test that produced it.
  (cd "$dir" && ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     ctest -L fast --output-on-failure --parallel "$jobs") || status=1
fi
if [ "$what" = tsan ] || [ "$what" = all ]; then
  dir="${VEIL_TSAN_BUILD_DIR:-$here/build-tsan}"
  echo "[sanitize] TSan build of the threaded tests in $dir"
  configure "$dir" -DVEIL_SANITIZE_THREAD=ON
  cmake --build "$dir" --parallel "$jobs" --target veil_tests veil_net_tests veil_mpc_tests \
    veil_hybrid_tests veil_protocol_tests
  (cd "$dir" && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
     ctest -R 'ThreadPool|Jobs|Channel|MpcExchange|MpcActivation|Hybrid' -E 'HybridConvForm' -L fast \
       --output-on-failure) || status=1
fi
exit $status
