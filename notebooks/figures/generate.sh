#!/usr/bin/env bash
# Regenerates the figures the README shows: the block DAGs (Graphviz) and the analysis and zoo
# plots. Needs Graphviz for the drawings (apt-get install graphviz).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=notebooks/figures
cargo build --release --bin paths --bin sparsenet
./target/release/paths --depth 12 --format dot > "$out/blocks-12.dot"
dot -Tsvg "$out/blocks-12.dot" > "$out/blocks-12.svg"
dot -Tpng -Gdpi=90 "$out/blocks-12.dot" > "$out/blocks-12.png"
./target/release/paths --depth 100 --plot "$out" > /dev/null
./target/release/sparsenet zoo --plot "$out" > /dev/null
echo "figures written to $out"
