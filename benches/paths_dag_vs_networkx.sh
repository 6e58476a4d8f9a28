#!/usr/bin/env bash
# `paths --dag-file` on a random DAG block of N nodes and about E edges against networkx doing
# the same path count and all-pairs gradient statistics (benches/dag_networkx_peer.py), same
# machine, same run; both results are compared number for number (issue 12: 10 000 nodes and
# 100 000 edges in seconds).
# Usage: benches/paths_dag_vs_networkx.sh [NODES] [EDGES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
e=${2:-100000}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
cargo build --release --bin paths >/dev/null 2>&1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
p=$(python3 -c "print(2 * $e / ($n * ($n - 1)))")
./target/release/paths --random "er:p=$p" --nodes "$n" --seed 1 --format csv > "$dir/block.edges"
echo "block: $(grep -vc '^#' "$dir/block.edges") edges, random er:p=$p, $n nodes + input and output"
/usr/bin/time -f "sparsenet paths --dag-file (whole process): %e s, peak %M KB" \
  ./target/release/paths --dag-file "$dir/block.edges" --format json > "$dir/ours.json"
python3 - "$dir/ours.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["analysis"]
print(f"  paths {a['paths'][:20]}… ({len(a['paths'])} digits), gradient max {a['gradient']['max']}, mean {a['gradient']['mean']:.6f}, unreachable {a['gradient']['unreachable']}, histogram {'skipped: ' + a['histogram_skipped'] if a['histogram_skipped'] else 'computed'}")
PY
if python3 -c "import networkx" 2>/dev/null; then
  /usr/bin/time -f "networkx $(python3 -c 'import networkx; print(networkx.__version__)') (whole process): %e s, peak %M KB" \
    python3 benches/dag_networkx_peer.py "$dir/block.edges" > "$dir/peer.json"
  python3 - "$dir/ours.json" "$dir/peer.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["analysis"]
p = json.load(open(sys.argv[2]))
same = (a["paths"] == p["paths"] and a["gradient"]["max"] == p["gradient_max"]
        and abs(a["gradient"]["mean"] - p["gradient_mean"]) < 1e-9
        and a["gradient"]["unreachable"] == p["unreachable"])
print("  same numbers as networkx:", same)
sys.exit(0 if same else 1)
PY
else
  echo "networkx not importable: peer skipped (pip install networkx)"
fi
