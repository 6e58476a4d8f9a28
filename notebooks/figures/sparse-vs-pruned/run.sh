#!/bin/bash
# Sparse by design against sparse by pruning at the same parameter count, on the embedded
# Fashion-MNIST subset (2000 training / 500 test images), default recipe (SGD 0.1, Nesterov,
# step schedule, batch 64), 14 epochs in all for each network: DenseNet-22-12 (270 K) trained
# 10 epochs, then pruned to SparseNet-22-12's count in 2 iterations of 2 retraining epochs at
# lr 0.01; SparseNet-22-12 (79 K) trained 14 epochs. Seeds 1, 2, 3.
set -e
for s in 1 2 3; do
  nice /work/bin2/train --family dense --depth 22 --growth 12 --data embedded --epochs 10 --seed $s --quiet --out dense-s$s 2>&1 | tail -1
  nice /work/bin2/study prune --checkpoint dense-s$s/last.safetensors --match "--family sparse --depth 22 --growth 12" --iterations 2 --retrain-epochs 2 --out dense-s$s/prune 2>&1 | grep -v wrote
  nice /work/bin2/train --family sparse --depth 22 --growth 12 --data embedded --epochs 14 --seed $s --quiet --out sparse-s$s 2>&1 | tail -1
done
