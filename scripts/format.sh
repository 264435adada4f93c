#!/usr/bin/env bash
# Formats veil's C++ sources with .clang-format; `--check` only reports files that differ
# (CI runs it that way).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
if ! command -v clang-format >/dev/null 2>&1; then
  echo "format: clang-format is missing (scripts/setup.sh installs it)" >&2
  exit 2
fi
mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/*.cpp' 'tests/*.hpp' \
                                  'bench/*.cpp' 'examples/*.cpp' 'fuzz/*.cpp')
if [ "${1:-}" = "--check" ]; then
  clang-format --dry-run --Werror "${files[@]}" 2>&1 | grep -o '^[^:]*:[0-9]*' | cut -d: -f1 | sort -u > /tmp/veil-format.$$ || true
  if [ -s /tmp/veil-format.$$ ]; then
    echo "format: these files differ from .clang-format (run scripts/format.sh):" >&2
    cat /tmp/veil-format.$$ >&2
    rm -f /tmp/veil-format.$$
    exit 1
  fi
  rm -f /tmp/veil-format.$$
  echo "[format] ${#files[@]} files match .clang-format"
else
  clang-format -i "${files[@]}"
  echo "[format] formatted ${#files[@]} files"
fi
