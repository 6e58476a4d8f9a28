#!/usr/bin/env bash
# Copy the finished runs of run.sh's studies (runs/converged) into this folder's study/, which is
# committed, so that the next session (perhaps on a fresh machine) resumes from them: every file
# a finished run needs to be read back (result.json, metrics, checkpoints, records), none of the
# figures a run redraws, and no run still in progress (it would resume from a half-trained state
# that the next session's run cannot take over mid-epoch anyway).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
out=${OUT:-$top/runs/converged}
for study in "$out"/*/; do
  s=$(basename "$study")
  [ -f "$study/study.json" ] || continue
  mkdir -p "$here/study/$s"
  cp "$study/study.json" "$here/study/$s/"
  for f in results.jsonl summary.json summary.txt; do
    [ -f "$study/$f" ] && cp "$study/$f" "$here/study/$s/"
  done
  for run in "$study"/runs/*/; do
    [ -f "$run/result.json" ] || continue
    r=$(basename "$run")
    mkdir -p "$here/study/$s/runs/$r"
    for f in result.json study-run.json metrics.jsonl metrics.csv train.log last.safetensors last.json best.safetensors best.json; do
      [ -f "$run/$f" ] && cp "$run/$f" "$here/study/$s/runs/$r/"
    done
  done
done
find "$here/study" -name result.json | wc -l | xargs echo "finished runs kept:"
