#!/usr/bin/env bash
# Runs the Python checks (tests/python) with Debian's interpreter: activation fitting,
# PolyAct and the range penalty, the ONNX format and numpy interpreter, and a smoke run of
# every training preset (skipped, with a reason, where a data set is missing).
# Usage: scripts/test-python.sh [extra pytest args]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py=/usr/bin/python3
if ! "$py" -c "import torch, onnx, numpy, tqdm, pytest" 2>/dev/null; then
  echo "test-python: $py lacks torch/onnx/numpy/tqdm/pytest (run scripts/setup.sh)" >&2
  exit 2
fi
cd "$here"
export PYTHONDONTWRITEBYTECODE=1
export VEIL_TEST_THREADS="${VEIL_TEST_THREADS:-1}"
exec nice -n 10 "$py" -m pytest -p no:cacheprovider -rs "$@" tests/python
