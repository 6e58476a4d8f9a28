#!/usr/bin/env bash
# Times the full four-topology analysis (criterion) and the networkx peer in the same run.
# Usage: benches/paths_vs_networkx.sh   (the peer is skipped when networkx is not importable)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(date -u +%Y-%m-%d)"
cargo bench -p sparsenet-analysis --bench analysis -- --noplot 2>&1 | grep -E "^four_topologies|time:"
if python3 -c "import networkx" 2>/dev/null; then
  python3 benches/networkx_peer.py 3
else
  echo "networkx not importable: peer skipped (pip install networkx)"
fi
