#!/usr/bin/env bash
# Builds gpu-data/cifar10-jpeg.npz (git-ignored; ~35 MiB: CIFAR-10 train + test as JPEG,
# quality 90, 4:4:4, shared header) for scripts/train-gpu.sh, and checks the round trip.
# Usage: scripts/prepare-gpu-data.sh [--src DIR] [--out FILE] [--quality Q]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec nice -n 5 /usr/bin/python3 "$here/python/prepare_gpu_data.py" "$@"
