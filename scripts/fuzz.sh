#!/usr/bin/env bash
# Fuzzes the protocol's frame and message parser (and the CKKS loaders behind it) with
# libFuzzer for a bounded time: scripts/fuzz.sh [seconds, default 30].
# Builds in build-fuzz/ with clang (Debian's clang + libclang-rt-14-dev), seeds the corpus
# with one valid frame per message type, and fails on any crash or sanitizer report.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-30}"
dir="${VEIL_FUZZ_BUILD_DIR:-$here/build-fuzz}"
# shellcheck source=scripts/ccache.sh
. "$here/scripts/ccache.sh"
cmake -S "$here" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVEIL_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" >/dev/null
ninja -C "$dir" -j"$(nproc)" frame_fuzz make_corpus
"$dir/fuzz/make_corpus" "$dir/corpus"
# Found crashes land in $dir/artifacts; the run fails if there is one.
mkdir -p "$dir/artifacts"
"$dir/fuzz/frame_fuzz" "$dir/corpus" -max_total_time="$seconds" -max_len=262144 -rss_limit_mb=2048 \
  -artifact_prefix="$dir/artifacts/" -print_final_stats=1
echo "[fuzz] ${seconds} s without a crash"
