#!/usr/bin/env bash
# Training images/s and peak memory, sparsenet against PyTorch on the same DAG, same machine,
# same run. Usage: benches/train_vs_pytorch.sh [STEPS] (PyTorch is skipped when not importable).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d)"
cargo build --release --bench train_step --bin zoo >/dev/null 2>&1
tmp=$(mktemp -d)
for model in densenet-40-12 sparsenet-40-24; do
  cargo bench --bench train_step -- "$model" 64 "$steps" 2 2>/dev/null | grep impl
  if python3 -c "import torch" 2>/dev/null; then
    ./target/release/zoo --model "$model" --classes 10 --dag > "$tmp/$model.json"
    python3 benches/torch_peer.py "$tmp/$model.json" --batch 64 --steps "$steps" --threads 2 --name "$model"
  else
    echo "torch not importable: PyTorch peer skipped (pip install torch)"
  fi
done
rm -rf "$tmp"
