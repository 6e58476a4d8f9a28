#!/usr/bin/env bash
# Installs CUDA 13 libraries from PyPI's NVIDIA wheels into a folder, for the `cuda` build, which
# loads them at run time (no CUDA toolkit needed), and prints the LD_LIBRARY_PATH to use:
#
#   export LD_LIBRARY_PATH=$(scripts/gpu-libs.sh)                 # nvrtc, cublas, cudnn, nccl
#   LIBS="nvrtc" scripts/gpu-libs.sh target/cuda-libs             # NVRTC only (what CI needs)
#   scripts/gpu-libs.sh --link-only DIR...                        # only the NCCL link (below)
#
# The NVIDIA driver (libcuda.so.1) is not among them: it comes with the driver. NCCL's library
# is libnccl.so.2, a name cudarc does not try, so a `libnccl.so` link is made beside it (also for
# folders given after --link-only, e.g. PyTorch's own nvidia/nccl/lib when it is read-only: the
# link then goes to DIR/../nccl-link, printed as part of the path).
set -euo pipefail
cd "$(dirname "$0")/.."
link_nccl() { # lib dir → a dir holding libnccl.so (printed)
  local d=$1
  [ -e "$d/libnccl.so.2" ] || return 0
  if [ -e "$d/libnccl.so" ]; then echo "$d"; return 0; fi
  if ln -s libnccl.so.2 "$d/libnccl.so" 2>/dev/null; then echo "$d"; return 0; fi
  local alt; alt=$(mktemp -d); ln -s "$d/libnccl.so.2" "$alt/libnccl.so"; echo "$alt"
}
if [ "${1:-}" = "--link-only" ]; then
  shift
  out=""
  for d in "$@"; do l=$(link_nccl "$d"); [ -n "$l" ] && out="$out${out:+:}$l"; done
  echo "$out"
  exit 0
fi
dir=${1:-target/cuda-libs}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
declare -A wheel=(
  [nvrtc]="nvidia-cuda-nvrtc==13.0.88"
  [cublas]="nvidia-cublas==13.1.0.3"
  [cudnn]="nvidia-cudnn-cu13"
  [nccl]="nvidia-nccl-cu13"
)
for lib in ${LIBS:-nvrtc cublas cudnn nccl}; do
  [ -n "${wheel[$lib]:-}" ] || { echo "gpu-libs: unknown library '$lib' (accepted: ${!wheel[*]})" >&2; exit 2; }
  if ! ls "$dir"/nvidia/*/lib/lib"$lib"*.so* >/dev/null 2>&1; then
    echo "gpu-libs: installing ${wheel[$lib]} into $dir" >&2
    python3 -m pip install --quiet --no-deps --target "$dir" "${wheel[$lib]}" >&2
  fi
done
paths=""
for d in "$dir"/nvidia/*/lib; do
  [ -d "$d" ] && paths="$paths${paths:+:}$d"
  link_nccl "$d" >/dev/null
done
echo "$paths"
