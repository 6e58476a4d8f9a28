#!/bin/bash
# The same trained LeNets, 12x in 3 prune-retrain iterations of 8 epochs each at lr 0.001.
set -e
for m in lenet-300-100 lenet-5; do
  nice /work/bin3/study prune --checkpoint /work/runs/prune-lenet/$m/last.safetensors --rate 12 --iterations 3 --retrain-epochs 8 --out /work/runs/prune-lenet/$m/prune-r8 2>&1 | grep -v wrote
done
