#!/usr/bin/env bash
# The CPU schedule of cifar10-resnet18 (docs/models.md), for when no GPU is lent: about
# 16 minutes an epoch on two idle Zen 4 cores, 36 epochs, so it spans sessions. It runs
# at the lowest priority and picks up where the last session stopped:
#   - the full checkpoint (135 MB, with exact RNG and optimiser state) lives outside the
#     checkout, in $VEIL_R18_DIR (default ../r18 beside it), with the log and the export;
#   - a compact copy (float16 weights, bfloat16 momentum, gzip: 58 MB) is rewritten
#     with every checkpoint at train/cifar10-resnet18.resume.pt.gz, to be committed before
#     a session ends. A fresh machine starts from it.
# Usage (in the background, so that work goes on beside it):
#   setsid nohup scripts/train-resnet18-cpu.sh >> ../r18/train.log 2>&1 < /dev/null &
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${VEIL_R18_DIR:-$here/../r18}"
compact="$here/train/cifar10-resnet18.resume.pt.gz"
ck="$work/cifar10-resnet18.pt"
mkdir -p "$work"

resume=()
if [ -f "$ck" ]; then
  resume=(--resume)
elif [ -f "$compact" ]; then
  echo "[train-resnet18-cpu] no full checkpoint in $work: resuming from $compact"
  cp "$compact" "$ck"
  resume=(--resume)
fi

# nice alone does not yield: a process started with setsid has its own scheduling
# autogroup, and the kernel shares the cores between autogroups first.
echo 19 > /proc/self/autogroup 2>/dev/null || true
exec nice -n 15 /usr/bin/python3 "$here/python/train.py" --model cifar10-resnet18 --epochs 36 \
  --optimizer sgd --lr 0.08 --wd 5e-4 --warmup 1 --label-smoothing 0.1 --ema 0.999 \
  --mixup 0 --erasing 0 --no-trivialaugment --bf16 --threads 2 \
  --checkpoint "$ck" --checkpoint-minutes 10 --out "$work" --no-progress \
  --compact-checkpoint "$compact" "${resume[@]}"
