#!/usr/bin/env bash
# Capture what the layering rebuild (issue 41) must leave byte-identical: `paths` and `zoo`
# outputs (text, JSON, CSV, DOT, DAGs), and, for the record of one machine, a short training
# run's checkpoint and metrics. Writes DIR (default tests/baseline). `tests/baseline.rs`
# compares the text outputs with a fresh run in CI; the training hashes are compared by hand
# (`scripts/capture-outputs.sh /tmp/now && diff -r tests/baseline /tmp/now`), since their bits
# follow the CPU's instruction set.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-tests/baseline}
mkdir -p "$dir"
# BIN: a folder with the binaries (tests/baseline.rs passes its own); else they are built.
if [ -z "${BIN:-}" ]; then
  cargo build --release --bins >/dev/null 2>&1 || cargo build --release --bins
fi
bin=${BIN:-target/release}
"$bin/paths" --depth 16 > "$dir/paths-16.txt"
"$bin/paths" --depth 100 --format json > "$dir/paths-100.json"
"$bin/paths" --depth 40 --base 3 --offsets 1,2,3,5,8 --format csv > "$dir/paths-40-custom.csv"
"$bin/paths" --depth 12 --format dot > "$dir/paths-12.dot"
"$bin/paths" --random ws:k=4,p=0.25 --nodes 40 --seed 3 --format json > "$dir/paths-ws.json"
"$bin/sparsenet" zoo > "$dir/zoo.txt"
"$bin/sparsenet" zoo --format json > "$dir/zoo.json"
for m in sparsenet-40-24 densenet-bc-100-12 resnet-50 fractalnet-21 wrn-16-8; do
  "$bin/sparsenet" zoo --model "$m" --dag > "$dir/zoo-dag-$m.txt"
done
"$bin/sparsenet" zoo --random ba:m=2 --nodes 12 --seed 3 --dag > "$dir/zoo-dag-ba.txt"
"$bin/sparsenet" zoo --family sparse --depth 22 --aggregate mixed --mix 6,6 --dag > "$dir/zoo-dag-mixed.txt"
# Study identities, which a study folder written before a change must keep to resume after it:
# each study's grid hash and each run's id (the training itself is 2 steps; its bits are not kept).
for recipe in "" "--optimizer adam --schedule cosine --lr 0.05 --batch-size 32 --weight-decay 0.0002"; do
  st=$(mktemp -d)
  printf '%s\n' "--family sparse --depth 10 --growth 4" "--family dense --depth 10 --growth 3 --bc" \
    "--random ws:k=4,p=0.5 --nodes 6 --dag-seed 2 --growth 4" > "$st/grid.txt"
  # shellcheck disable=SC2086 # the recipe is words
  "$bin/sparsenet" study efficiency --grid "$st/grid.txt" --seeds 3 --epochs 1 --max-steps 2 --max-test 20 \
    --data embedded --threads 1 $recipe --out "$st/s" >/dev/null
  {
    echo "# study efficiency $recipe"
    grep -o '"grid_hash": *"[0-9a-f]*"' "$st/s/study.json"
    for m in "$st"/s/runs/*/metrics.jsonl; do
      echo "$(basename "$(dirname "$m")") $(grep -o '"run":"[0-9a-f]*"' "$m" | head -1)"
    done
  }
  rm -rf "$st"
done > "$dir/study-ids.txt"
# One machine's training bits: 1 epoch of 20 steps on the embedded subset, 2 threads.
[ -n "${SKIP_TRAINING:-}" ] && { echo "captured into $dir (no training)"; exit 0; }
run=$(mktemp -d)
"$bin/sparsenet" train --family sparse --depth 10 --growth 4 --epochs 1 --max-steps 20 --max-test 200 \
  --data embedded --threads 2 --seed 7 --quiet --out "$run" >/dev/null
{
  echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F), $(git rev-parse --short HEAD)"
  (cd "$run" && sha256sum last.safetensors best.safetensors)
  sed 's/"seconds":[0-9.e+-]*//; s/"images_per_sec":[0-9.e+-]*//' "$run/metrics.jsonl"
} > "$dir/training.machine.txt"
rm -rf "$run"
echo "captured into $dir"
