#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what scripts/gpu-device.sh needs on the GPU machine: the
# stripped program built with the `cuda` feature (no CUDA needed to build: the libraries load at
# run time), the DAGs of the benchmarked models (for the PyTorch peer) and the Fashion-MNIST
# files. Then, with the device tool:
#   run  command: scripts/gpu-device.sh $OUT   carry: [".gpu"]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
cargo build --release -q --features cuda --bin sparsenet
cp target/release/sparsenet .gpu/sparsenet
strip .gpu/sparsenet
for m in densenet-121 sparsenet-121-32; do   # batch-1 latency, the paper's 1000-class heads
  ./.gpu/sparsenet zoo --model $m --dag > .gpu/$m-latency.json
done
for m in sparsenet-40-24 densenet-40-12 sparsenet-bc-100-24 densenet-bc-100-12; do
  ./.gpu/sparsenet zoo --model $m --classes 10 --dag > .gpu/$m.json
done
src=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ -f "$src/train-images-idx3-ubyte.gz" ]; then
  mkdir -p .gpu/fashion-mnist
  cp "$src"/*-ubyte.gz .gpu/fashion-mnist/
else
  echo "gpu-prepare: no Fashion-MNIST at $src (apt-get install dataset-fashion-mnist, or set FASHION_MNIST); the training stage will fail" >&2
fi
du -sh .gpu
