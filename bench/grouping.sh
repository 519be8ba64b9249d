#!/usr/bin/env bash
# Issue 28: does length-grouped batching cost accuracy on pair tasks? STS-B (regression) and MRPC
# (classification), 3-layer KD and PKD-Skip students (PT on the paper's [CLS], as the earlier comparisons) from one
# teacher per task trained in the shuffled order, each task's recipe otherwise; the same seeds, initialisations and
# teacher cache in both orders, so the runs pair up by seed. Then MRPC's teacher in the grouped order (one seed).
# STS-B's shuffled KD comes with bench/patient.sh. Feeds docs/performance.md and docs/recipes.md ("Length
# grouping on pairs").
# Resumable (bench/steps.sh; `compare --resume` keeps finished runs).
# Usage: bash bench/grouping.sh [DATA_DIR]; outputs under bench/out/grouping/. The paired table:
#   pkd report bench/out/grouping/TASK-shuffled --paired bench/out/grouping/TASK-grouped --data-dir DATA_DIR
set -euo pipefail
DATA=${1:-${PKD_DATA:-../shared/data/glue}}
OUT=${OUT:-bench/out/grouping}
PKD=${PKD:-.venv/bin/pkd}
mkdir -p "$OUT"
export PKD_CACHE=${PKD_CACHE:-bench/out/cache}
source "$(dirname "$0")/steps.sh"

step stsb-teacher-shuffled $PKD finetune --task stsb --data-dir "$DATA" --out "$OUT/stsb-teacher-shuffled" \
  --resume --quiet --no-group-by-length
for order in grouped shuffled; do
  flag=$([ "$order" = grouped ] && echo --group-by-length || echo --no-group-by-length)
  step "stsb-pkd-skip-$order" $PKD compare --teacher "$OUT/stsb-teacher-shuffled" --task stsb --data-dir "$DATA" \
    --student-layers 3 --seeds 3 --methods pkd-skip --pt-pooling cls --out "$OUT/stsb-$order" --resume --quiet "$flag"
done
# MRPC: its recipe's teacher (3 epochs at 5e-5) and students (the teacher's layers, 2 epochs).
step mrpc-teacher-shuffled $PKD finetune --task mrpc --data-dir "$DATA" --out "$OUT/mrpc-teacher-shuffled" \
  --resume --quiet --no-group-by-length
for order in shuffled grouped; do
  flag=$([ "$order" = grouped ] && echo --group-by-length || echo --no-group-by-length)
  step "mrpc-$order" $PKD compare --teacher "$OUT/mrpc-teacher-shuffled" --task mrpc --data-dir "$DATA" \
    --student-layers 3 --seeds 3 --methods kd,pkd-skip --pt-pooling cls --out "$OUT/mrpc-$order" --resume --quiet \
    "$flag"
done
# STS-B's KD in the grouped order (its shuffled runs: bench/patient.sh's stsb-mean, copied beside PKD-Skip's).
step stsb-kd-grouped $PKD compare --teacher "$OUT/stsb-teacher-shuffled" --task stsb --data-dir "$DATA" \
  --student-layers 3 --seeds 3 --methods kd,pkd-skip --pt-pooling cls --out "$OUT/stsb-grouped" --resume --quiet \
  --group-by-length
step mrpc-teacher-grouped $PKD finetune --task mrpc --data-dir "$DATA" --out "$OUT/mrpc-teacher-grouped" \
  --resume --quiet --group-by-length
