#!/usr/bin/env bash
# Time-boxed GPU training of cifar10-resnet18 (PRISM's PreAct-ResNet-18 with the degree-4
# polynomial): one command that ends within ~9 minutes on an H200, see
# python/veil_tools/train_gpu.py. Needs gpu-data/cifar10-jpeg.npz (scripts/prepare-gpu-data.sh).
# Writes model.pt.partNN (weights, < 16 MiB each), cifar10-resnet18.json (card) and
# train-gpu.log to the --out folder; check the result here with python/check_gpu_run.py.
# Usage: scripts/train-gpu.sh --out DIR [--minutes 7.25] [--smoke] [...]
#   CPU rehearsal: scripts/train-gpu.sh --out /tmp/gpu-smoke --smoke
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py=python3
if ! "$py" -c "import torch" 2>/dev/null; then py=/usr/bin/python3; fi
out=""
prev=""
for a in "$@"; do
  [[ "$prev" == "--out" ]] && out="$a"
  [[ "$a" == --out=* ]] && out="${a#--out=}"
  prev="$a"
done
[[ -n "$out" ]] || { echo "train-gpu.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
cd "$here"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
"$py" -c "import sys; sys.path.insert(0, 'python'); from veil_tools import train_gpu; train_gpu.main()" \
  "$@" 2>&1 | tee "$out/train-gpu.log"
