#!/usr/bin/env bash
# The GPU check, run ON the GPU machine (which has the NVIDIA driver, Python with PyTorch and
# CUDA 13 wheels, but no Rust). Everything it needs travels in .gpu/ (see scripts/gpu-prepare.sh):
# the `gpu-check` and `train` binaries built by scripts/build-cuda.sh, the DAG exports of the
# benchmarked models, and the Fashion-MNIST files.
#
#   scripts/gpu-device.sh OUT_DIR
#
# Stages (each with its own time limit, each logged to OUT_DIR, all run even if one fails):
#   1. CPU/GPU agreement: every op, then SparseNet, DenseNet, ResNet (+ DenseNet-121 at 64×64).
#   2. Benchmark: SparseNet-40-24 and DenseNet-40-12 training images/s at 32×32×3, batch 64 and
#      the largest power-of-two batch that fits, TF32 off and on — ours, then PyTorch on the
#      same DAG in the same run.
#   3. A short training run on the full Fashion-MNIST with --device cuda.
#   (profile: milliseconds per op of our training step, synchronised per op; not by default.)
#
# Environment: STAGES (default "check bench pytorch train"; also "profile"), SPARSE_BATCHES and
# DENSE_BATCHES (default "64,max"), PT_SPARSE_BATCHES and PT_DENSE_BATCHES for PyTorch (default:
# the same), TF32 (default "off on"), EPOCHS (default 3).
set -uo pipefail
STAGES=${STAGES:-check bench pytorch train}
TF32=${TF32:-off on}
want() { [[ " $STAGES " == *" $1 "* ]]; }
OUT=${1:?usage: scripts/gpu-device.sh OUT_DIR}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
G=.gpu
status=0

# cuBLAS 13 and NVRTC 13 from the machine's Python CUDA wheels (PyTorch's); libcuda from the driver.
libs=$(python3 -c '
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for d in glob.glob(os.path.join(sp, "nvidia", "*", "lib")):
        dirs.add(d)
print(":".join(sorted(dirs)))')
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  ldd "$G/gpu-check" | grep -E 'cublas|nvrtc|libcuda'
} 2>&1 | tee "$OUT/summary.txt"

stage() { # name limit command...
  local name=$1 limit=$2; shift 2
  echo "== $name" | tee -a "$OUT/summary.txt"
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 40 "$OUT/$name.log"
  echo "== $name: exit $rc after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.txt"
  [ $rc -eq 0 ] || status=1
}

tf32_flag=both; [ "$TF32" = "off" ] && tf32_flag=off; [ "$TF32" = "on" ] && tf32_flag=on
want check && stage check 120 "$G/gpu-check" --json "$OUT/check.json"
want profile && SPARSENET_PROFILE=1 stage profile 60 "$G/gpu-check" --skip-ops --skip-networks \
  --bench sparsenet-40-24,densenet-40-12 --batch 64 --tf32 off --steps 5
# Batches per model: a list of numbers or `max`. Batch 64 is timed over 10 steps after 3
# warm-up steps; larger ones over 3 after 1 (each step takes seconds).
export SPARSE_BATCHES=${SPARSE_BATCHES:-64,max} DENSE_BATCHES=${DENSE_BATCHES:-64,max} TF32 tf32_flag
export PT_SPARSE_BATCHES PT_DENSE_BATCHES
bench_ours() {
  for spec in "sparsenet-40-24:$SPARSE_BATCHES" "densenet-40-12:$DENSE_BATCHES"; do
    model=${spec%%:*}
    for b in $(echo "${spec#*:}" | tr , ' '); do
      steps=10; warm=3; [ "$b" = 64 ] || { steps=3; warm=1; }
      .gpu/gpu-check --skip-ops --skip-networks --bench "$model" --batch "$b" --tf32 "$tf32_flag" \
        --steps $steps --warmup $warm || return 1
    done
  done
}
bench_peer() {
  for spec in "sparsenet-40-24:${PT_SPARSE_BATCHES:-$SPARSE_BATCHES}" \
      "densenet-40-12:${PT_DENSE_BATCHES:-$DENSE_BATCHES}"; do
    model=${spec%%:*}
    for b in $(echo "${spec#*:}" | tr , ' '); do
      steps=10; warm=3; [ "$b" = 64 ] || { steps=3; warm=1; }
      for tf32 in $TF32; do
        python3 benches/torch_peer.py ".gpu/$model.json" --device cuda --batch "$b" --steps $steps \
          --warmup $warm --tf32 "$tf32" --name "$model" || return 1
      done
    done
  done
}
export -f bench_ours bench_peer
want bench && stage bench 150 bash -c bench_ours
want pytorch && stage pytorch 150 bash -c bench_peer
if want train; then
  run=$(mktemp -d)
  stage train 120 "$G/train" --device cuda --data-dir "$G/fashion-mnist" --model sparsenet-40-24 \
    --epochs "${EPOCHS:-3}" --batch-size 128 --lr 0.1 --schedule cosine --quiet --out "$run"
  cp "$run/metrics.jsonl" "$OUT/" 2>/dev/null
fi
exit $status
