#!/usr/bin/env bash
# Issue 34: does distilling on more text than there are labels for help? 3-layer KD and PKD-Skip students of the
# default teacher (all-MiniLM-L6-v2), 3 seeds, paired per seed (pkd.stats), each task's recipe:
#   - MRPC, STS-B and RTE with --augment N for N in $NS (default 4 10 20) against N = 0, the teacher's embedding
#     neighbours (pkd.augment's default replacer), p 0.4, k 15, augmentation seed 0 (one augmented set and one
#     teacher cache per N, shared by both methods and every seed);
#   - SST-2's short budget (the first 4,000 training sentences, 1 epoch, 64 tokens; teacher on the same, as in
#     bench/patient.sh) with --unlabelled-file: 20,000 further SST-2 training sentences (rows 4,001-24,000, labels
#     dropped, any dev or test sentence left out), written to $OUT/sst2-unlabelled.jsonl, never into the repository;
#   - the memory target: one MRPC PKD-Skip run at --augment 10, its teacher cache built from scratch, under
#     /usr/bin/time -v ($OUT/mrpc-memory.log: "Maximum resident set size"), and the generation speed
#     (bench/augment_speed.py, $OUT/speed.json).
# Feeds docs/augment.md's Results (`pkd report DIR` and `pkd report A --paired B` print the tables). Expensive: a
# run trains on (1 + N) times the training split, so RTE and STS-B at N = 20 take hours a run on 2 cores; set NS or
# TASKS to do less. Resumable: a finished step is skipped (bench/steps.sh's marker), and `compare --resume` keeps
# every finished run (its result.json) of an unfinished step.
# Usage: bash bench/augment.sh [DATA_DIR]; outputs under bench/out/augment/.
set -euo pipefail
DATA=${1:-${PKD_DATA:-../shared/data/glue}}
OUT=${OUT:-bench/out/augment}
PKD=${PKD:-.venv/bin/pkd}
PY=${PY:-.venv/bin/python}
NS=${NS:-4 10 20}
TASKS=${TASKS:-mrpc stsb rte}
mkdir -p "$OUT"
export PKD_CACHE=${PKD_CACHE:-bench/out/cache}
source "$(dirname "$0")/steps.sh"

step speed "$PY" bench/augment_speed.py --data-dir "$DATA" --task mrpc --copies 10 --out "$OUT/speed.json"

# SST-2, short budget, with and without 20,000 unlabelled sentences
short=(--task sst2 --data-dir "$DATA" --max-train-examples 4000 --max-seq-len 64 --epochs 1 --quiet)
step sst2-4k-teacher $PKD finetune "${short[@]}" --out "$OUT/sst2-4k-teacher" --resume
# rows 4,001-24,000 of SST-2's training file, labels dropped, without any dev or test sentence (pkd would refuse them)
unlabelled='
import json, sys
from pkd.augment import normalise
from pkd.data import load_split
from pkd.io import write_text
from pkd.tasks import get_task
task = get_task("sst2")
held = {normalise(e.texts) for split in ("dev", "test") for part in load_split(task, split, sys.argv[1])
        for e in part.examples}
rows = [e.texts[0] for e in load_split(task, "train", sys.argv[1])[0].examples[4000:24000]
        if normalise(e.texts) not in held]
write_text(sys.argv[2], "".join(json.dumps({"sentence": r}) + "\n" for r in rows))
print(f"{len(rows)} unlabelled sentences")
'
step sst2-unlabelled-file "$PY" -c "$unlabelled" "$DATA" "$OUT/sst2-unlabelled.jsonl"
students=(--teacher "$OUT/sst2-4k-teacher" "${short[@]}" --student-layers 3 --seeds 3 --methods kd,pkd-skip --resume)
step sst2-4k-labelled $PKD compare "${students[@]}" --out "$OUT/sst2-4k-labelled"
step sst2-4k-unlabelled $PKD compare "${students[@]}" --unlabelled-file "$OUT/sst2-unlabelled.jsonl" \
  --out "$OUT/sst2-4k-unlabelled"

# The memory target: a fresh cache of MRPC's 3,668 pairs and 36,680 copies, and one student on them
step mrpc-teacher $PKD finetune --task mrpc --data-dir "$DATA" --out "$OUT/mrpc-teacher" --resume --quiet
step mrpc-memory env PKD_CACHE="$OUT/memory-cache" /usr/bin/time -v $PKD distill --teacher "$OUT/mrpc-teacher" \
  --task mrpc --data-dir "$DATA" --student-layers 3 --method pkd-skip --augment 10 --out "$OUT/mrpc-memory" \
  --resume --quiet

# MRPC, STS-B, RTE: N = 0, then each N of $NS
for task in $TASKS; do
  step "$task-teacher" $PKD finetune --task "$task" --data-dir "$DATA" --out "$OUT/$task-teacher" --resume --quiet
  students=(--teacher "$OUT/$task-teacher" --task "$task" --data-dir "$DATA" --student-layers 3 --seeds 3
            --methods kd,pkd-skip --resume --quiet)
  step "$task-aug0" $PKD compare "${students[@]}" --out "$OUT/$task-aug0"
  for n in $NS; do
    step "$task-aug$n" $PKD compare "${students[@]}" --augment "$n" --out "$OUT/$task-aug$n"
  done
done
echo "== done: pkd report $OUT/mrpc-aug0 --paired $OUT/mrpc-aug10 (and the others) for the tables"
