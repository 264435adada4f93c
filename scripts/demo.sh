#!/usr/bin/env bash
# One command on a fresh Debian machine: install dependencies, build, run the main job.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
"$here/scripts/build.sh"
build_dir="${VEIL_BUILD_DIR:-$here/build}"
echo
echo "== veil: CKKS engine tour (128-bit parameters) =="
"$build_dir/examples/veil_ckks_demo"
