#!/usr/bin/env bash
# Issue 16's diagnosis: why do pre-trained-initialised 3-layer students of all-MiniLM-L6-v2 learn slowly or not
# at all? Short single-seed runs, one lever at a time (docs/recipes.md has the table and the reading).
# Resumable (a finished step is skipped). Usage: bash bench/investigations/diagnose.sh [DATA_DIR]; outputs under bench/out/diag/.
set -euo pipefail
DATA=${1:-${PKD_DATA:-../shared/data/glue}}
OUT=bench/out/diag
PKD=${PKD:-.venv/bin/pkd}
# --no-group-by-length: these results were measured in the shuffled order, the default before issue 15.
mkdir -p "$OUT"
export PKD_CACHE=${PKD_CACHE:-bench/out/cache}
source "$(dirname "$0")/../steps.sh"

# SST-2, short budget: the first 4,000 examples, 1 epoch (125 steps), max_seq_len 64.
short=(--task sst2 --data-dir "$DATA" --max-train-examples 4000 --max-seq-len 64 --epochs 1 --quiet)
step sst2-4k-teacher $PKD finetune --no-group-by-length "${short[@]}" --out "$OUT/sst2-4k-teacher" --resume
student() {  # student NAME ARGS...: a 3-layer student of the short-budget teacher
  local name=$1; shift
  step "$name" $PKD distill --no-group-by-length --teacher "$OUT/sst2-4k-teacher" --student-layers 3 "${short[@]}" \
    --out "$OUT/$name" --resume "$@"
}
student sst2-4k-pkd-lr5e-5 --method pkd-skip --lr 5e-5 --init-layers 1,2,3
student sst2-4k-pkd-init126 --method pkd-skip --lr 5e-5 --init-layers 1,2,6
student sst2-4k-ft-init126 --method ft --lr 5e-5 --init-layers 1,2,6
student sst2-4k-pkd-lr2e-4 --method pkd-skip --lr 2e-4 --init-layers 1,2,3
student sst2-4k-pkd-init126-lr2e-4 --method pkd-skip --lr 2e-4 --init-layers 1,2,6
student sst2-4k-pkd-init126-warm0 --method pkd-skip --lr 5e-5 --warmup-ratio 0 --init-layers 1,2,6

# STS-B (regression, pairs): 2 epochs at max_seq_len 64 (3.4% of its training pairs are longer; 0% at 128).
sts=(--task stsb --data-dir "$DATA" --max-seq-len 64 --epochs 2 --quiet)
step stsb-teacher $PKD finetune --no-group-by-length "${sts[@]}" --out "$OUT/stsb-teacher" --resume
sts_student() {
  local name=$1; shift
  step "$name" $PKD distill --no-group-by-length --teacher "$OUT/stsb-teacher" --student-layers 3 "${sts[@]}" --out "$OUT/$name" \
    --resume "$@"
}
sts_student stsb-pkd-init123 --method pkd-skip --init-layers 1,2,3
sts_student stsb-pkd-init126 --method pkd-skip --init-layers 1,2,6
sts_student stsb-pkd-init126-lr2e-4 --method pkd-skip --init-layers 1,2,6 --lr 2e-4
sts_student stsb-pkd-init123-lr2e-4 --method pkd-skip --init-layers 1,2,3 --lr 2e-4
sts_student stsb-kd-init126-lr2e-4 --method kd --init-layers 1,2,6 --lr 2e-4
