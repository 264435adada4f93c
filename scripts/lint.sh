#!/usr/bin/env bash
# clang-tidy with .clang-tidy over the given files (default: every source under src/),
# using build/compile_commands.json (run scripts/build.sh first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${VEIL_BUILD_DIR:-$here/build}"
cd "$here"
[ -f "$build_dir/compile_commands.json" ] || { echo "lint: no $build_dir/compile_commands.json (run scripts/build.sh)" >&2; exit 2; }
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(git ls-files 'src/*.cpp'); fi
clang-tidy -p "$build_dir" --quiet "${files[@]}"
