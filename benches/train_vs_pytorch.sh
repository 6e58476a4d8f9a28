#!/usr/bin/env bash
# Training images/s and peak memory, sparsenet against PyTorch on the same DAG, same machine,
# same run. Usage: [PYTHON=/opt/torchpeer/bin/python] benches/train_vs_pytorch.sh [STEPS] (PyTorch
# is skipped when $PYTHON, default python3, does not import torch; MODELS="a b" picks the models).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
py=${PYTHON:-python3}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx[0-9a-z_]*\|fma\|amx[a-z_]*' | sort -u | xargs), $(date -u +%Y-%m-%d)"
models=${MODELS:-densenet-40-12 sparsenet-40-24 densenet-bc-100-12 sparsenet-bc-100-24 wrn-16-8}
cargo build --release --bench train_step --bin sparsenet >/dev/null 2>&1
tmp=$(mktemp -d)
for model in $models; do
  cargo bench --bench train_step -- "$model" 64 "$steps" 2 2>/dev/null | grep impl
  if "$py" -c "import torch" 2>/dev/null; then
    ./target/release/sparsenet zoo --model "$model" --classes 10 --dag > "$tmp/$model.json"
    "$py" benches/torch_peer.py "$tmp/$model.json" --batch 64 --steps "$steps" --threads 2 --name "$model"
  else
    echo "torch not importable: PyTorch peer skipped (pip install torch)"
  fi
done
rm -rf "$tmp"
