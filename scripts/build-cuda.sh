#!/usr/bin/env bash
# Build the `cuda` feature on a machine without a GPU or CUDA toolkit (the recipe of
# shared/notes/gpu-build.md, cut to what cudarc needs: no nvcc, since our kernels are compiled by
# NVRTC when the program starts).
#
#   scripts/build-cuda.sh            # → target/cuda/release/{train,gpu-check}
#
# It fetches the CUDA 13.0 runtime, NVRTC and cuBLAS wheels from PyPI (pinned: the lent GPUs run
# driver 580 = CUDA 13.0) into target/cuda-sdk, makes a CUDA root there with a `libcuda` stub for
# linking only (the driver's real libcuda.so.1 is used at run time), and builds. Needs python3
# with pip, unzip and a C compiler. Nothing outside target/ is written.
set -euo pipefail
cd "$(dirname "$0")/.."
SDK="$PWD/target/cuda-sdk"
ROOT="$SDK/root"
mkdir -p "$SDK/wheels" "$ROOT/lib64" "$ROOT/include"

if [ ! -f "$ROOT/lib64/libnvrtc-builtins.so.13.0" ]; then
  echo "build-cuda: fetching CUDA 13.0 wheels from PyPI" >&2
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$SDK/wheels" \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 nvidia-cublas==13.1.0.3
  rm -rf "$SDK/unpacked"
  for w in "$SDK"/wheels/*.whl; do unzip -q -o "$w" -d "$SDK/unpacked"; done
  cp -r "$SDK"/unpacked/nvidia/cu13/include/. "$ROOT/include/"
  for lib in cudart cublas cublasLt nvrtc; do
    cp "$SDK/unpacked/nvidia/cu13/lib/lib$lib.so.13" "$ROOT/lib64/"
    ln -sf "lib$lib.so.13" "$ROOT/lib64/lib$lib.so"
  done
  # NVRTC loads its builtins at run time (kernels_compile_with_nvrtc runs here, without a GPU).
  cp "$SDK/unpacked/nvidia/cu13/lib/libnvrtc-builtins.so.13.0" "$ROOT/lib64/"
  ln -sfn lib64 "$ROOT/lib"
fi

if [ ! -f "$ROOT/lib64/libcuda.so" ]; then
  # A stub exporting every driver function cudarc declares, so that the link resolves; it is
  # never loaded on a GPU machine (SONAME libcuda.so.1 = the driver's library).
  sys=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -path '*cudarc-0.9.*/src/driver/sys.rs' | head -1)
  if [ -z "$sys" ]; then cargo fetch -q; sys=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -path '*cudarc-0.9.*/src/driver/sys.rs' | head -1); fi
  grep -oE 'pub fn cu[A-Za-z0-9_]+' "$sys" | sed 's/pub fn //' | sort -u |
    awk '{print "int " $1 "(void) { return 999; }"}' > "$SDK/libcuda_stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/lib64/libcuda.so" "$SDK/libcuda_stub.c"
fi

export CUDA_ROOT="$ROOT" CUDA_PATH="$ROOT"
export LIBRARY_PATH="$ROOT/lib64${LIBRARY_PATH:+:$LIBRARY_PATH}"
cargo build --release --features cuda --target-dir target/cuda --bin train --bin gpu-check "$@"
echo "build-cuda: built target/cuda/release/train and target/cuda/release/gpu-check" >&2
