#!/usr/bin/env bash
# Regenerates docs/results/ (report.md and its plots: accuracy vs speed-up, one training-curve figure per task
# and depth) from the runs of bench/real_results.sh, with a speed/size table of the SST-2 teacher and one student
# of each depth measured in the same process (kept from the last run unless REBENCH=1 or it is missing: the
# timings need a quiet machine). report.html is written beside it for reading, not committed.
set -euo pipefail
OUT=bench/out
PKD=${PKD:-.venv/bin/pkd}
RESULTS=docs/results
models=("$OUT/teacher-sst2")
for layers in 3 2; do
  [ -f "$OUT/compare-sst2-L$layers/pkd-skip-seed42/result.json" ] && models+=("$OUT/compare-sst2-L$layers/pkd-skip-seed42")
done
mkdir -p "$RESULTS"
if [ "${REBENCH:-0}" = 1 ] || [ ! -f "$RESULTS/bench.json" ]; then
  $PKD bench "${models[@]}" --seq-len 64 --batch-sizes 1,32 --repeats 5 --threads "${THREADS:-1}" --json \
    > "$OUT/bench-sst2.json.tmp"
  mv "$OUT/bench-sst2.json.tmp" "$RESULTS/bench.json"
fi
runs=()
for d in "$OUT"/compare-*; do [ -f "$d/compare.json" ] && runs+=("$d"); done  # finished comparisons only
$PKD report "${runs[@]}" --bench "$RESULTS/bench.json" --out "$RESULTS"
