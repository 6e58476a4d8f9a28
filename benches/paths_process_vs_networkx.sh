#!/usr/bin/env bash
# The whole `paths --depth N` command against a whole networkx process doing the same path
# counts and all-pairs gradient statistics, same machine, same run (issue 13: ≥ 100× at
# N = 1000), and the peak memory of `paths --depth 100000` (issue 13: under 1 GB).
# Usage: benches/paths_process_vs_networkx.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
runs=${2:-5}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
cargo build --release --bin paths >/dev/null 2>&1
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ours=$(for _ in $(seq "$runs"); do /usr/bin/time -f %e ./target/release/paths --depth "$n" --format csv 2>&1 >/dev/null | tail -1; done | median)
echo "sparsenet paths --depth $n (whole process, median of $runs): ${ours}s"
if python3 -c "import networkx" 2>/dev/null; then
  peer=$(for _ in $(seq 2); do /usr/bin/time -f %e python3 benches/networkx_peer.py --once "$n" 2>&1 >/dev/null | tail -1; done | median)
  echo "networkx $(python3 -c 'import networkx; print(networkx.__version__)') (whole process, median of 2): ${peer}s"
  python3 -c "print(f'ratio: {$peer / $ours:.0f}x')"
else
  echo "networkx not importable: peer skipped (pip install networkx)"
fi
/usr/bin/time -f "paths --depth 100000: %e s, peak %M KB" ./target/release/paths --depth 100000 --format csv >/dev/null
