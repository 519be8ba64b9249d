#!/usr/bin/env bash
# pkd vs TextBrewer end to end (issue 15): a 3-layer PKD-Skip student distilled from the demo's teacher on the
# first N SST-2 training sentences (2 epochs, batch 32, max_seq_len 64, dynamic padding, lr 5e-5 with 10% linear
# warm-up, alpha 0.7, T 10, beta 1.3), the same student initialisation for both, dev accuracy on all of SST-2
# dev after every epoch. Each round runs pkd in the shuffled order (--no-group-by-length), TextBrewer, pkd with
# --group-by-length (the default since) and pkd's FT student in the shuffled order (the
# floor: no teacher at all), ROUNDS times; every pkd run builds its teacher cache anew (an empty --cache-dir), so
# its time includes the cache. Wall times are from start-up to the end of the process (pkd: model saved;
# TextBrewer: last dev score). Prints each run and the ratios TextBrewer / pkd and pkd / pkd FT.
# Feeds docs/performance.md and the TextBrewer rows of docs/results.md and the README.
#
# TextBrewer gets its own throw-away venv under $OUT (torch==2.13.0 first, then textbrewer and pkd's
# transformers version); remove $OUT to start from scratch. Long: about 8 x 2 minutes on 2 cores, plus the venv.
#   TEACHER=runs/demo/teacher PKD_DATA=../shared/data/glue bash bench/vs_textbrewer.sh
#
# MODE=compare: the issue's second target instead. `pkd compare` (FT, KD, PKD-Skip, PKD-Last x seeds 42-44, one
# cache built from empty) with --no-group-by-length, then with --group-by-length, then TextBrewer running the
# same 12 trainings one process each (its FT runs a plain loop with no teacher; each seed starts from pkd's student for that seed).
# Prints the totals, the ratios and each method's mean dev accuracy per tool. About 100 minutes on 2 cores;
# ORDERS=grouped (or shuffled) runs one of pkd's two compares.
set -euo pipefail
PY=${PY:-.venv/bin/python}
PKD=${PKD:-.venv/bin/pkd}
OUT=${OUT:-bench/out/vs_textbrewer}
TEACHER=${TEACHER:-runs/demo/teacher}
DATA=${PKD_DATA:-../shared/data/glue}
N=${N:-4000}
ROUNDS=${ROUNDS:-2}
TRAIN=(--max-train-examples "$N" --epochs 2 --batch-size 32 --max-seq-len 64 --lr 5e-5 --seed 42)
LOSS=(--alpha 0.7 --temperature 10 --beta 1.3)
[ -f "$TEACHER/config.json" ] || { echo "no teacher at $TEACHER (run make demo, or set TEACHER=)" >&2; exit 2; }
[ -f "$DATA/SST-2/train.tsv" ] || { echo "no SST-2 under $DATA (set PKD_DATA=)" >&2; exit 2; }
mkdir -p "$OUT"

TB=$OUT/textbrewer-venv
if [ ! -x "$TB/bin/python" ]; then
  python3 -m venv "$TB"
  "$TB/bin/pip" install -q torch==2.13.0  # first, pinned: a bare torch requirement would pull a CUDA build
  "$TB/bin/pip" install -q textbrewer "transformers==$($PY -c 'import transformers; print(transformers.__version__)')"
fi

# The student exactly as `pkd distill --seed S` builds it (pre-trained layers 1, 2, 6, head seeded by S), for
# TextBrewer to start from: student-init/ for seed 42, student-init-S/ for the others.
student_init() {  # student_init SEED DIR
  [ -f "$2/config.json" ] && return
  $PY - "$TEACHER" "$2" "$1" <<'PY'
import sys
from pkd.api import prepare_distillation
from pkd.config import DistillConfig
d = prepare_distillation("sst2", DistillConfig(teacher=sys.argv[1], student_layers=3, method="pkd-skip"))
student, _ = d.build_student(int(sys.argv[3]))
student.save_pretrained(sys.argv[2])
d.tokenizer.save_pretrained(sys.argv[2])
print(f"student init: {d.student_source}, layers {student.config.pkd_init['layers']}, map {d.layer_map}")
PY
}
student_init 42 "$OUT/student-init"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
tb_accuracy() {  # tb_accuracy JSON: the best dev accuracy bench/textbrewer_pkd.py printed
  $PY -c 'import json, sys; print("%.2f" % json.load(open(sys.argv[1]))["dev_accuracy"])' "$1"
}
[ "${MODE:-distill}" = compare ] && { source "$(dirname "$0")/vs_textbrewer_compare.sh"; exit; }
results=$OUT/results.tsv
printf "round\ttool\tseconds\tdev_accuracy\n" > "$results"
pkd_run() {  # pkd_run ROUND NAME ARGS...: one pkd distill, from a fresh cache, timed
  local round=$1 name=$2; shift 2
  rm -rf "$OUT/$name-$round" "$OUT/cache-$round"
  local t0 t1 acc
  t0=$(now)
  $PKD distill --teacher "$TEACHER" --task sst2 --student-layers 3 --data-dir "$DATA" \
    --cache-dir "$OUT/cache-$round" "${TRAIN[@]}" "${LOSS[@]}" --out "$OUT/$name-$round" --quiet "$@" \
    > "$OUT/$name-$round.json"
  t1=$(now)
  acc=$($PY -c 'import json, sys; print("%.2f" % json.load(open(sys.argv[1]))["best"]["accuracy"])' \
    "$OUT/$name-$round.json")
  printf "%s\t%s\t%s\t%s\n" "$round" "$name" "$(elapsed "$t0" "$t1")" "$acc" | tee -a "$results"
}
for round in $(seq "$ROUNDS"); do
  pkd_run "$round" pkd --method pkd-skip --no-group-by-length  # the shuffled order, pkd's default until issue 15
  rm -rf "$OUT/textbrewer-$round"
  t0=$(now)
  "$TB/bin/python" bench/textbrewer_pkd.py --teacher "$TEACHER" --student-init "$OUT/student-init" \
    --data-dir "$DATA" --out "$OUT/textbrewer-$round" --max-train-examples "$N" > "$OUT/textbrewer-$round.json"
  t1=$(now)
  acc=$(tb_accuracy "$OUT/textbrewer-$round.json")
  printf "%s\ttextbrewer\t%s\t%s\n" "$round" "$(elapsed "$t0" "$t1")" "$acc" | tee -a "$results"
  pkd_run "$round" pkd-grouped --method pkd-skip --group-by-length
  pkd_run "$round" pkd-ft --method ft --no-group-by-length  # the floor of a run's time: a student that learns from labels alone
done

$PY - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tools = list(dict.fromkeys(r["tool"] for r in rows))
times = {t: [float(r["seconds"]) for r in rows if r["tool"] == t] for t in tools}
accs = {t: [float(r["dev_accuracy"]) for r in rows if r["tool"] == t] for t in tools}
tb = statistics.mean(times["textbrewer"])
print("| run | wall s (each round) | mean | TextBrewer / it | dev acc. (each round) |")
print("|---|---|---|---|---|")
for t in tools:
    m = statistics.mean(times[t])
    print(f"| {t} | {', '.join(f'{x:.1f}' for x in times[t])} | {m:.1f} | {tb / m:.2f}x "
          f"| {', '.join(f'{a:.2f}' for a in accs[t])} |")
ft = statistics.mean(times["pkd-ft"])
for t in ("pkd", "pkd-grouped"):
    print(f"{t} / pkd-ft wall time: {statistics.mean(times[t]) / ft:.2f}x (target <= 1.2x)")
PY
