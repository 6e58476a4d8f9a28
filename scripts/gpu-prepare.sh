#!/usr/bin/env bash
# Fill .gpu/ (ignored by git) with what scripts/gpu-device.sh needs on the GPU machine: the
# stripped CUDA binaries (scripts/build-cuda.sh builds them), the DAGs of the benchmarked models
# (for the PyTorch peer) and the Fashion-MNIST files. Then, with the device tool:
#   run  command: scripts/gpu-device.sh $OUT   carry: [".gpu"]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu
for b in gpu-check train; do
  cp target/cuda/release/$b .gpu/$b
  strip .gpu/$b
done
cargo build --release -q --bin zoo
for m in sparsenet-40-24 densenet-40-12; do
  ./target/release/zoo --model $m --classes 10 --dag > .gpu/$m.json
done
src=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ -f "$src/train-images-idx3-ubyte.gz" ]; then
  mkdir -p .gpu/fashion-mnist
  cp "$src"/*-ubyte.gz .gpu/fashion-mnist/
else
  echo "gpu-prepare: no Fashion-MNIST at $src (apt-get install dataset-fashion-mnist, or set FASHION_MNIST); the training stage will fail" >&2
fi
du -sh .gpu
