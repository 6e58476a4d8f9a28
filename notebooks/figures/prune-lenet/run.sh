#!/bin/bash
# The seed's pruning table rerun on full Fashion-MNIST: Caffe's LeNet recipe (SGD lr 0.01,
# momentum 0.9, weight decay 5e-4, batch 64; constant lr in place of Caffe's "inv" decay), 10
# epochs, then 12x magnitude pruning in 3 prune-retrain iterations of 3 epochs at lr 0.001.
set -e
for m in lenet-300-100 lenet-5; do
  nice /work/bin/sparsenet train --model $m --data installed --epochs 10 --lr 0.01 --momentum 0.9 --weight-decay 5e-4 --batch-size 64 --schedule constant --seed 1 --quiet --out /work/runs/prune-lenet/$m 2>&1 | tail -2
  nice /work/bin/study prune --checkpoint /work/runs/prune-lenet/$m/last.safetensors --rate 12 --iterations 3 --retrain-epochs 3 --out /work/runs/prune-lenet/$m/prune 2>&1
done
