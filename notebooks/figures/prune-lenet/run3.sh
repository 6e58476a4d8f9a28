#!/bin/bash
# Dense control: the same trained LeNets trained on for the pruning's 24 retraining epochs at
# its learning rate (0.001, constant), unpruned.
set -e
while pgrep -f run2.sh > /dev/null; do sleep 10; done
for m in lenet-300-100 lenet-5; do
  nice /work/bin3/train --model $m --init-from /work/runs/prune-lenet/$m/last.safetensors --data installed --epochs 24 --lr 0.001 --momentum 0.9 --weight-decay 5e-4 --batch-size 64 --schedule constant --seed 1 --quiet --out /work/runs/prune-lenet/$m-dense24 2>&1 | tail -1
done
