#!/usr/bin/env bash
# Regenerates docs/results.md (and its plots) from the runs of bench/real_results.sh, with a speed/size
# table of the SST-2 teacher and one student of each depth measured in the same process (kept from the
# last run unless REBENCH=1 or it is missing: the timings need a quiet machine).
set -euo pipefail
OUT=bench/out
PKD=${PKD:-.venv/bin/pkd}
models=("$OUT/teacher-sst2")
for layers in 3 2; do
  [ -f "$OUT/compare-sst2-L$layers/pkd-skip-seed42/result.json" ] && models+=("$OUT/compare-sst2-L$layers/pkd-skip-seed42")
done
if [ "${REBENCH:-0}" = 1 ] || [ ! -f docs/results-bench.json ]; then
  $PKD bench "${models[@]}" --seq-len 64 --batch-sizes 1,32 --repeats 5 --threads "${THREADS:-1}" --json \
    > "$OUT/bench-sst2.json.tmp"
  mv "$OUT/bench-sst2.json.tmp" docs/results-bench.json
fi
runs=()
for d in "$OUT"/compare-*; do [ -f "$d/compare.json" ] && runs+=("$d"); done  # finished comparisons only
$PKD report "${runs[@]}" --bench docs/results-bench.json --out docs --name results
