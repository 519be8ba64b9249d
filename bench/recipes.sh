#!/usr/bin/env bash
# Issue 16, step 3: teachers and 3-layer student comparisons (FT, KD, PKD-Skip, PKD-Last x 3 seeds, paired
# verdicts) on STS-B, MRPC, RTE and the short-budget SST-2 subset, each with its task's recipe (pkd.tasks:
# nothing but data, teacher and student depth is given), then a loss-weight sweep on RTE.
# Resumable: a finished step is skipped (bench/steps.sh), and `compare --resume` keeps its finished runs.
# Usage: bash bench/recipes.sh [DATA_DIR]; outputs under bench/out/recipes/ (docs/recipes.md has the tables).
set -euo pipefail
DATA=${1:-${PKD_DATA:-../shared/data/glue}}
OUT=${OUT:-bench/out/recipes}
PKD=${PKD:-.venv/bin/pkd}
mkdir -p "$OUT"
export PKD_CACHE=${PKD_CACHE:-bench/out/cache}
source "$(dirname "$0")/steps.sh"

compare() {  # compare TASK TEACHER [ARGS...]: the four methods x 3 seeds, 3-layer students
  local task=$1 teacher=$2; shift 2
  step "$task-compare" $PKD compare --teacher "$teacher" --task "$task" --data-dir "$DATA" --student-layers 3 \
    --seeds 3 --out "$OUT/$task-compare" --resume --quiet "$@"
}

# Teachers of the pair tasks at twice the learning rate and 5 epochs (the best epoch is kept); the previous ones,
# lr 5e-5 for 3 epochs at batch 16 (bench/real_results.sh), reached MRPC 79.90 and RTE 57.04.
pair_teacher() {
  step "$1-teacher-lr1e-4" $PKD finetune --task "$1" --data-dir "$DATA" --lr 1e-4 --epochs 5 --quiet \
    --out "$OUT/$1-teacher-lr1e-4" --resume
}
pair_teacher mrpc
step stsb-teacher $PKD finetune --task stsb --data-dir "$DATA" --quiet --out "$OUT/stsb-teacher" --resume
compare stsb "$OUT/stsb-teacher"
compare mrpc "$OUT/mrpc-teacher-lr1e-4"
# SST-2, the issue's short budget: the first 4,000 examples, 1 epoch, max_seq_len 64 (teacher on the same budget).
short=(--task sst2 --data-dir "$DATA" --max-train-examples 4000 --max-seq-len 64 --epochs 1 --quiet)
step sst2-4k-teacher $PKD finetune "${short[@]}" --out "$OUT/sst2-4k-teacher" --resume
step sst2-4k-compare $PKD compare --teacher "$OUT/sst2-4k-teacher" "${short[@]}" --student-layers 3 --seeds 3 \
  --out "$OUT/sst2-4k-compare" --resume
pair_teacher rte
compare rte "$OUT/rte-teacher-lr1e-4"
