#!/usr/bin/env bash
# Configures and builds veil (Release) into build/. Uses both cores by default.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${VEIL_BUILD_DIR:-$here/build}"
generator=()
# shellcheck source=scripts/ccache.sh
. "$here/scripts/ccache.sh"
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
# VEIL_WERROR=1 (CI) turns warnings into errors.
werror=OFF
[ -n "${VEIL_WERROR:-}" ] && [ "${VEIL_WERROR}" != 0 ] && werror=ON
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DVEIL_WERROR=$werror \
    "${launcher[@]}"
else
  cmake "$build_dir" -DVEIL_WERROR=$werror >/dev/null
fi
cmake --build "$build_dir" --parallel "${VEIL_JOBS:-$(nproc)}"
