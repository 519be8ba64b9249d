#!/usr/bin/env bash
# Issue 28: does length-grouped batching (the default) cost accuracy on a pair regression task? STS-B, 3-layer
# students from one teacher (trained on all of STS-B in the shuffled order); the students on a CPU-sized budget,
# the first 2,000 training pairs (2 windows of 50 batches, so grouping reorders as it does on the full set), each
# task's recipe otherwise (PT on the paper's [CLS],
# as the earlier comparisons; docs/patient.md has the pooling's own comparison); the same seeds,
# initialisations and teacher cache in both orders, so the runs pair up by seed. Then the teacher itself, one seed
# per order. Feeds docs/performance.md and docs/recipes.md ("Length grouping on pairs").
# Resumable (bench/steps.sh; `compare --resume` keeps finished runs).
# Usage: bash bench/grouping.sh [DATA_DIR]; outputs under bench/out/grouping/. The paired table:
#   pkd report bench/out/grouping/stsb-shuffled --paired bench/out/grouping/stsb-grouped
set -euo pipefail
DATA=${1:-${PKD_DATA:-../shared/data/glue}}
OUT=${OUT:-bench/out/grouping}
PKD=${PKD:-.venv/bin/pkd}
mkdir -p "$OUT"
export PKD_CACHE=${PKD_CACHE:-bench/out/cache}
source "$(dirname "$0")/steps.sh"

step stsb-teacher-shuffled $PKD finetune --task stsb --data-dir "$DATA" --out "$OUT/stsb-teacher-shuffled" \
  --resume --quiet --no-group-by-length
teacher=$OUT/stsb-teacher-shuffled
for methods in pkd-skip pkd-skip,kd; do  # the second pass adds KD (finished runs are kept)
  step "stsb-${methods//,/+}-grouped" $PKD compare --teacher "$teacher" --task stsb --data-dir "$DATA" --student-layers 3 \
    --seeds 3 --methods "$methods" --out "$OUT/stsb-grouped" --resume --quiet --group-by-length --pt-pooling cls \
    --max-train-examples 2000
  step "stsb-${methods//,/+}-shuffled" $PKD compare --teacher "$teacher" --task stsb --data-dir "$DATA" --student-layers 3 \
    --seeds 3 --methods "$methods" --out "$OUT/stsb-shuffled" --resume --quiet --no-group-by-length \
    --pt-pooling cls --max-train-examples 2000
done
step stsb-teacher-grouped $PKD finetune --task stsb --data-dir "$DATA" --out "$OUT/stsb-teacher-grouped" \
  --resume --quiet --group-by-length
