#!/usr/bin/env bash
# docs/own-data.md's worked example on examples/tickets.csv (400 made-up support tickets, 4 string
# labels, no dev file: 10% held out, stratified): fine-tune the default teacher (all-MiniLM-L6-v2), distill a
# 3-layer student, compare FT/KD/PKD-Skip/PKD-Last, evaluate, predict, export to ONNX int8, bench and report.
# No --task and no data flag after `pkd finetune`: every later command reads the data from the teacher's run.json.
set -euo pipefail
PKD=${PKD:-.venv/bin/pkd}
OUT=${OWN_DATA_OUT:-runs/tickets}
SEEDS=${OWN_DATA_SEEDS:-1}
export PKD_CACHE=${PKD_CACHE:-$OUT/cache}
SECONDS=0
step() { echo "== $1 (${SECONDS}s)"; }
step "finetune"
$PKD finetune --train-file examples/tickets.csv --out "$OUT/teacher" --overwrite --quiet
step "distill"
$PKD distill --teacher "$OUT/teacher" --student-layers 3 --out "$OUT/pkd3" --overwrite --quiet
step "compare ($SEEDS seed(s))"
$PKD compare --teacher "$OUT/teacher" --student-layers 3 --seeds "$SEEDS" --out "$OUT/cmp3" --overwrite --quiet
step "evaluate"
$PKD evaluate "$OUT/teacher"
$PKD evaluate "$OUT/pkd3"
step "predict"
printf 'ticket_id,text\nN1,"I was charged twice, please refund"\nN2,the app crashes when I open reports\n' \
  > "$OUT/new.csv"
$PKD predict "$OUT/pkd3" --test-file "$OUT/new.csv" --id-column ticket_id --probabilities --out "$OUT/new.tsv"
cat "$OUT/new.tsv"
step "export"
$PKD export "$OUT/pkd3" --out "$OUT/pkd3-int8" --quantize int8 --evaluate --overwrite
step "bench"
$PKD bench "$OUT/teacher" "$OUT/pkd3" "$OUT/pkd3-int8" --seq-len 64 --batch-sizes 1,32 --repeats 3 --threads 2
step "report"
$PKD report "$OUT/cmp3" "$OUT/pkd3" --out "$OUT/report" >/dev/null
step "done"
