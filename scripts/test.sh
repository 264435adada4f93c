#!/usr/bin/env bash
# One command on a fresh Debian machine: install dependencies, build, run every test
# (C++ suites through CTest, then the Python model tools).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
"$here/scripts/build.sh"
build_dir="${VEIL_BUILD_DIR:-$here/build}"
status=0
(cd "$build_dir" && ctest --output-on-failure --parallel "$(nproc)") || status=1
# The protocol parser under libFuzzer for a bounded time (clang build in build-fuzz/).
"$here/scripts/fuzz.sh" "${VEIL_FUZZ_SECONDS:-30}" || status=1
if [ -x "$here/scripts/test-python.sh" ]; then
  "$here/scripts/test-python.sh" || status=1
fi
exit $status
