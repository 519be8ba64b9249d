#!/usr/bin/env bash
# RACE benchmark (not yet run): the default teacher (all-MiniLM-L6-v2, 6 layers) fine-tuned on a CPU-sized
# subset, then 3-layer FT / KD / PKD-Skip students over 3 seeds. See docs/race.md.
#
# The subset: 5,000 training questions (--max-train-examples 5000 takes whole passages in a fixed random
# order, seed 0, so high- and middle-school questions keep their natural mix; the same subset for every
# method and seed), max_seq_len 256 (RACE's default is 512), and the full dev set (4,887 questions), scored
# as accuracy on all, high and middle. Each question is 4 sequences, so one epoch is 20,000 sequences of up
# to 256 tokens: expect hours on a CPU.
#
# Resumable: a finished step is skipped, an interrupted one continues from its last checkpoint.
# Usage: bash bench/race.sh [RACE_DIR]   (default ../shared/data/race); outputs under bench/out/.
set -euo pipefail
DATA=${1:-../shared/data/race}
OUT=bench/out
PKD=${PKD:-.venv/bin/pkd}
mkdir -p "$OUT"
export PKD_CACHE=${PKD_CACHE:-$OUT/cache}
SUBSET=(--data-dir "$DATA" --max-train-examples 5000 --max-seq-len 256 --eval-batch-size 32)
# Batch sizes count questions, 4 sequences each: eval batches of 32 questions are 128 sequences.

source "$(dirname "$0")/steps.sh"

# Teacher: the default MiniLM-L6 on the subset, 2 epochs.
step teacher-race $PKD finetune --task race "${SUBSET[@]}" --epochs 2 --batch-size 16 --lr 5e-5 \
  --save-every 100 --out "$OUT/teacher-race" --resume --quiet
# Its dev and test scores (RACE test is labelled), all / high / middle.
step eval-teacher-race-dev $PKD evaluate "$OUT/teacher-race" --task race --data-dir "$DATA" --batch-size 32 --json
step eval-teacher-race-test $PKD evaluate "$OUT/teacher-race" --task race --split test --data-dir "$DATA" --batch-size 32 \
  --json
# 3-layer students: FT, KD, PKD-Skip, 3 seeds, one teacher cache for all. beta 1.3 = the paper's 500 at
# the teacher's hidden size 384 (docs/method.md).
step compare-race-L3 $PKD compare --teacher "$OUT/teacher-race" --task race "${SUBSET[@]}" \
  --student-layers 3 --methods ft,kd,pkd-skip --seeds 3 --epochs 2 --batch-size 16 --lr 5e-5 \
  --alpha 0.7 --temperature 10 --beta 1.3 --out "$OUT/compare-race-L3" --resume --quiet
cat "$OUT/compare-race-L3/compare.md"
