#!/usr/bin/env bash
# Batch-1 inference latency at 224×224 of the paper's ImageNet rows (its Time column), and the
# SparseNet-121-32 / DenseNet-121 ratio beside the paper's 13.5 / 19.5 = 0.69.
# PyTorch's latency on the same DAG (benches/torch_peer.py --latency) beside each of ours, when
# $PYTHON (default python3) imports torch.
# Usage: [PYTHON=/opt/torchpeer/bin/python] benches/infer_latency.sh [RUNS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
threads=${2:-2}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o 'avx[0-9a-z_]*\|fma\|amx[a-z_]*' | sort -u | xargs), $(date -u +%Y-%m-%d)"
py=${PYTHON:-python3}
cargo build --release --bench infer_latency --bin sparsenet >/dev/null 2>&1
bin=$(ls -t target/release/deps/infer_latency-* | grep -v '\.d$' | head -1)
out=$(mktemp)
for m in densenet-121 sparsenet-121-32 densenet-169 sparsenet-169-32 densenet-201 sparsenet-201-32; do
  "$bin" "$m" "$runs" "$threads" | tee -a "$out"
  if "$py" -c "import torch" 2>/dev/null; then
    ./target/release/sparsenet zoo --model "$m" --dag > "$out.dag"
    "$py" benches/torch_peer.py "$out.dag" --latency "$runs" --threads "$threads" --name "$m" | tee -a "$out"
  fi
done
python3 - "$out" <<'PY'
import json, sys
rows = list(map(json.loads, open(sys.argv[1])))
r = {j["model"]: j["median_ms"] for j in rows if "peer" not in j}
peer = {j["model"]: j["median_ms"] for j in rows if "peer" in j}
for m, ms in r.items():
    if m in peer:
        print(f"{m}: ours {ms:.1f} ms, PyTorch {peer[m]:.1f} ms, PyTorch/ours {peer[m] / ms:.2f} (>= 1: ours faster)")
print(f"SparseNet-121-32 / DenseNet-121: {r['sparsenet-121-32'] / r['densenet-121']:.2f} (paper: 13.5 / 19.5 = 0.69)")
for d, s in [("densenet-169", "sparsenet-169-32"), ("densenet-201", "sparsenet-201-32")]:
    print(f"{s} / {d}: {r[s] / r[d]:.2f}")
PY
rm -f "$out" "$out.dag"
