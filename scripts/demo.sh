#!/usr/bin/env bash
# One command on a fresh Debian machine: install dependencies, build, and run the main
# job: encrypted inference with the default MNIST model on its shipped sample images.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
"$here/scripts/build.sh"
build_dir="${VEIL_BUILD_DIR:-$here/build}"
cd "$here"
echo
echo "== veil infer: mnist-cryptonets, every layer encrypted (128-bit CKKS) =="
"$build_dir/veil" infer --model models/mnist-cryptonets.onnx --stages \
  --input models/samples/mnist-0-label7.png models/samples/mnist-1-label2.png \
          models/samples/mnist-2-label1.png models/samples/mnist-3-label0.png
