#!/usr/bin/env bash
# The GPU check, run ON the GPU machine (which has the NVIDIA driver, Python with PyTorch and
# CUDA 13 wheels, but no Rust). Everything it needs travels in .gpu/ (see scripts/gpu-prepare.sh):
# the `sparsenet` program (`gpu-check`, `train`, `study`) built with the `cuda` feature (they load cuBLAS,
# NVRTC, cuDNN and NCCL at run time from PyTorch's wheels), the DAG exports of the benchmarked
# models, and the Fashion-MNIST files.
#
#   scripts/gpu-device.sh OUT_DIR
#
# Stages (each with its own time limit, each logged to OUT_DIR, all run even if one fails):
#   libs     which CUDA libraries load (gpu-check --libs).
#   check    CPU/GPU agreement with our convolutions and with cuDNN's: every op, then SparseNet,
#            DenseNet, ResNet (+ DenseNet-121 at 64×64).
#   bench    SparseNet-40-24 and DenseNet-40-12 training images/s at 32×32×3, batch 64 and the
#            largest power-of-two batch that fits, TF32 off and on, convolutions by $CONV;
#   pytorch  then PyTorch on the same DAGs in the same run.
#   latency  batch-1 inference of DenseNet-121 and SparseNet-121-32 at 224×224 (the paper's Time
#            column), ours (gpu-check --latency) then PyTorch's, TF32 off and on.
#   resume   a GPU run stopped after epoch 1 and resumed on the GPU, against the same run
#            uninterrupted; and the GPU checkpoint of epoch 1 resumed on the CPU.
#   adam     two epochs with Adam on the GPU.
#   study    `study efficiency` with 3 jobs sharing the card.
#   dp       data-parallel training over NCCL on every GPU of the machine (--gpus N), and as
#            world size 1 against the plain single-GPU run; with 2 GPUs or more, also as 2
#            processes with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
#            MASTER_PORT set by hand), whose checkpoint is compared with --gpus 2's.
#   train    a short training run on the full Fashion-MNIST with --device cuda.
#   (profile: milliseconds per op of our training step, synchronised per op; not by default.)
#
# Environment: STAGES (default "libs check bench pytorch latency resume adam study dp train"; also
# "profile"), SPARSE_BATCHES and DENSE_BATCHES (default "64,max"), PT_SPARSE_BATCHES and
# PT_DENSE_BATCHES for PyTorch (default: the same), TF32 (default "off on"), CONV (default
# "cudnn"; "own", "both"), BENCH_MODELS (default "sparsenet-40-24 densenet-40-12"; the DAGs of
# the BC-100 models travel too), EPOCHS (default 3).
set -uo pipefail
STAGES=${STAGES:-libs check bench pytorch latency resume adam study dp train}
CONV=${CONV:-cudnn}
TF32=${TF32:-off on}
want() { [[ " $STAGES " == *" $1 "* ]]; }
OUT=${1:?usage: scripts/gpu-device.sh OUT_DIR}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
G=.gpu
status=0

# cuBLAS, NVRTC, cuDNN and NCCL from the machine's Python CUDA wheels (PyTorch's); libcuda from
# the driver. NCCL's libnccl.so.2 gets the libnccl.so link cudarc looks for.
libs=$(python3 -c '
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for d in glob.glob(os.path.join(sp, "nvidia", "*", "lib")):
        dirs.add(d)
print(":".join(sorted(dirs)))')
links=$(scripts/gpu-libs.sh --link-only $(echo "$libs" | tr : ' '))
export LD_LIBRARY_PATH="$libs${links:+:$links}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
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
want libs && stage libs 20 "$G/sparsenet" gpu-check --libs
want check && stage check 150 "$G/sparsenet" gpu-check --conv both --json "$OUT/check.json"
want profile && SPARSENET_PROFILE=1 stage profile 60 "$G/sparsenet" gpu-check --skip-ops --skip-networks \
  --bench sparsenet-40-24,densenet-40-12 --batch 64 --tf32 off --steps 5
# Batches per model: a list of numbers or `max`. Batch 64 is timed over 10 steps after 3
# warm-up steps; larger ones over 3 after 1 (each step takes seconds).
export SPARSE_BATCHES=${SPARSE_BATCHES:-64,max} DENSE_BATCHES=${DENSE_BATCHES:-64,max} TF32 tf32_flag CONV
# The issue's BC models double the time: BENCH_MODELS="sparsenet-40-24 densenet-40-12
# sparsenet-bc-100-24 densenet-bc-100-12" when the device time allows.
export BENCH_MODELS=${BENCH_MODELS:-sparsenet-40-24 densenet-40-12}
export PT_SPARSE_BATCHES PT_DENSE_BATCHES
bench_ours() {
  for model in $BENCH_MODELS; do
    bs=$DENSE_BATCHES; [[ $model == sparse* ]] && bs=$SPARSE_BATCHES
    for b in $(echo "$bs" | tr , ' '); do
      steps=10; warm=3; [ "$b" = 64 ] || { steps=3; warm=1; }
      .gpu/sparsenet gpu-check --skip-ops --skip-networks --bench "$model" --batch "$b" --tf32 "$tf32_flag" \
        --conv "$CONV" --steps $steps --warmup $warm || return 1
    done
  done
}
bench_peer() {
  for model in $BENCH_MODELS; do
    bs=${PT_DENSE_BATCHES:-$DENSE_BATCHES}
    [[ $model == sparse* ]] && bs=${PT_SPARSE_BATCHES:-$SPARSE_BATCHES}
    for b in $(echo "$bs" | tr , ' '); do
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
latency_both() {
  .gpu/sparsenet gpu-check --skip-ops --skip-networks --latency densenet-121,sparsenet-121-32 --steps 20 \
    --tf32 "$tf32_flag" --conv "$CONV" || return 1
  for m in densenet-121 sparsenet-121-32; do
    for tf32 in $TF32; do
      python3 benches/torch_peer.py ".gpu/$m-latency.json" --device cuda --latency 20 \
        --tf32 "$tf32" --name "$m" || return 1
    done
  done
}
export -f latency_both
want latency && stage latency 120 bash -c latency_both
# The embedded Fashion-MNIST subset (2 000 + 500 images) travels with the working tree.
SUB=src/data/fashion-mnist-subset
export SMALL="--data-dir $SUB --model sparsenet-40-24 --batch-size 64 --lr 0.1 --quiet" G
small=($SMALL)
resume_check() { # dir: the same 2-epoch run whole, stopped and resumed on the GPU, and on the CPU
  set -e
  "$G/sparsenet" train --device cuda $SMALL --epochs 2 --out "$1/whole"
  "$G/sparsenet" train --device cuda $SMALL --epochs 2 --stop-after 1 --out "$1/gpu"
  cp -r "$1/gpu" "$1/cpu"
  "$G/sparsenet" train --device cuda $SMALL --epochs 2 --resume --out "$1/gpu"
  "$G/sparsenet" train --device cpu $SMALL --epochs 2 --resume --out "$1/cpu"
  for d in whole gpu cpu; do echo "$d: $(tail -n 1 "$1/$d/metrics.jsonl")"; done
}
export -f resume_check
want resume && stage resume 240 bash -c 'resume_check "$0"' "$(mktemp -d)"
want adam && stage adam 120 "$G/sparsenet" train --device cuda "${small[@]}" --optimizer adam --lr 0.001 \
  --epochs 2 --out "$(mktemp -d)/adam"
want study && stage study 240 "$G/sparsenet" study efficiency --preset quick --seeds 1 --epochs 2 \
  --data-dir "$SUB" --device cuda --jobs 3 --out "$(mktemp -d)/study"
if want dp; then
  gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
  d=$(mktemp -d)
  stage dp-one 120 "$G/sparsenet" train --device cuda --gpus 1 "${small[@]}" --epochs 1 --out "$d/dp1"
  stage dp-ref 120 "$G/sparsenet" train --device cuda "${small[@]}" --epochs 1 --out "$d/ref"
  echo "dp world size 1: $(tail -n 1 "$d/dp1/metrics.jsonl")" | tee -a "$OUT/summary.txt"
  echo "single GPU:      $(tail -n 1 "$d/ref/metrics.jsonl")" | tee -a "$OUT/summary.txt"
  [ "$gpus" -gt 1 ] && stage dp-all 180 "$G/sparsenet" train --device cuda --gpus "$gpus" "${small[@]}" \
    --epochs 1 --out "$d/dpN"
  if [ "$gpus" -gt 1 ]; then
    stage dp-two 120 "$G/sparsenet" train --device cuda --gpus 2 "${small[@]}" --epochs 1 --out "$d/dp2"
    ranks() {
      # The group's secret (the store authenticates every rank with it).
      local token
      token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
      for r in 0 1; do
        SPARSENET_DIST_TOKEN=$token RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=29517 \
          "$G/sparsenet" train --device cuda "${small[@]}" --epochs 1 --dist-timeout 60 --out "$d/ranks" &
      done
      wait -n && wait -n && cmp "$d/ranks/last.safetensors" "$d/dp2/last.safetensors" \
        && echo "2 processes = --gpus 2, bit for bit"
    }
    export -f ranks; export G d
    stage ranks 150 bash -c "$(declare -p small); ranks"
  fi
fi
if want train; then
  run=$(mktemp -d)
  stage train 120 "$G/sparsenet" train --device cuda --data-dir "$G/fashion-mnist" --model sparsenet-40-24 \
    --epochs "${EPOCHS:-3}" --batch-size 128 --lr 0.1 --schedule cosine --quiet --out "$run"
  cp "$run/metrics.jsonl" "$OUT/" 2>/dev/null
fi
exit $status
