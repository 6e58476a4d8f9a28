#!/usr/bin/env bash
# Issue 42's converged runs on full Fashion-MNIST, in the order the conclusions need them. Each
# line is an ordinary resumable `study efficiency`: run this script again after any stop and
# finished runs are read back, an interrupted one resumes from its last checkpoint.
# Recipe: SGD + Nesterov 0.9, lr 0.1, cosine to 0 over 15 epochs, batch 64, weight decay as train's
# default, standard augmentation (train's defaults). Seeds outer so that each study is one seed of
# every network: a stop costs at most one run.
set -euo pipefail
# CONVERGED: this folder, where the script runs from a copy (a running bash script must not be
# edited in place); SPARSENET: the program (default: the release build).
here=${CONVERGED:-$(cd "$(dirname "$0")" && pwd)}
top=$(cd "$here/../../.." && pwd)
sparsenet=${SPARSENET:-$top/target/release/sparsenet}
out=${OUT:-$top/runs/converged}
common=(--epochs 15 --schedule cosine --data installed)
# The runs a session finished are kept in the repository (save.sh): start from them, so a new
# machine resumes where the last session stopped instead of training them again.
if [ -d "$here/study" ]; then
  mkdir -p "$out"
  cp -rn "$here/study/." "$out/"
fi
for s in 1 2 3; do
  "$sparsenet" study efficiency --grid "$here/grid-77k.txt" --seeds "$s" "${common[@]}" --out "$out/c77-s$s"
done
for s in 4 5; do
  "$sparsenet" study efficiency --grid "$here/grid-77k-pairs.txt" --seeds "$s" "${common[@]}" --out "$out/c77-pairs-s$s"
done
"$sparsenet" study efficiency --grid "$here/grid-20k.txt" --seeds 1,2,3 "${common[@]}" --out "$out/c20"
