#!/usr/bin/env bash
# Issue 28: does length-grouped batching (the default) cost accuracy on a pair regression task? STS-B, 3-layer
# PKD-Skip students (PT on the paper's [CLS], as the earlier comparisons) from one teacher trained on all of STS-B
# in the shuffled order, each task's recipe otherwise; the same seeds, initialisations and teacher cache in both
# orders, so the runs pair up by seed. KD in the order chosen comes with bench/patient.sh. Feeds
# docs/performance.md and docs/recipes.md ("Length grouping on pairs").
# Resumable (bench/steps.sh; `compare --resume` keeps finished runs).
# Usage: bash bench/grouping.sh [DATA_DIR]; outputs under bench/out/grouping/. The paired table:
#   pkd report bench/out/grouping/stsb-shuffled --paired bench/out/grouping/stsb-grouped --data-dir DATA_DIR
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
