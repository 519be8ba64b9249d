#!/usr/bin/env bash
# pkd vs TextBrewer end to end (issue 15): a 3-layer PKD-Skip student distilled from the demo's teacher on the
# first N SST-2 training sentences (2 epochs, batch 32, max_seq_len 64, dynamic padding, lr 5e-5 with 10% linear
# warm-up, alpha 0.7, T 10, beta 1.3), the same student initialisation for both, dev accuracy on all of SST-2
# dev after every epoch. pkd and TextBrewer alternate ROUNDS times each; every pkd run builds its teacher cache
# anew (an empty --cache-dir), so its time includes the cache. Wall times are from start-up to the end of the
# process (pkd: model saved; TextBrewer: last dev score). Prints each run and the ratios TextBrewer / pkd.
#
# TextBrewer gets its own throw-away venv under $OUT (torch==2.13.0 first, then textbrewer and pkd's
# transformers version); remove $OUT to start from scratch. Long: about 4 x 2 minutes on 2 cores, plus the venv.
#   TEACHER=runs/demo/teacher PKD_DATA=../shared/data/glue bash bench/vs_textbrewer.sh
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

# The student exactly as `pkd distill` builds it (pre-trained first 3 layers, head seeded by --seed 42).
if [ ! -f "$OUT/student-init/config.json" ]; then
  $PY - "$TEACHER" "$OUT/student-init" <<'PY'
import sys
from pkd.api import prepare_distillation
from pkd.config import DistillConfig
d = prepare_distillation("sst2", DistillConfig(teacher=sys.argv[1], student_layers=3, method="pkd-skip"))
student, _ = d.build_student(42)
student.save_pretrained(sys.argv[2])
d.tokenizer.save_pretrained(sys.argv[2])
print(f"student init: {d.student_source}, layers {student.config.pkd_init['layers']}, map {d.layer_map}")
PY
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
results=$OUT/results.tsv
printf "round\ttool\tseconds\tdev_accuracy\n" > "$results"
for round in $(seq "$ROUNDS"); do
  rm -rf "$OUT/pkd-$round" "$OUT/cache-$round" "$OUT/textbrewer-$round"
  t0=$(now)
  $PKD distill --teacher "$TEACHER" --task sst2 --student-layers 3 --method pkd-skip --data-dir "$DATA" \
    --cache-dir "$OUT/cache-$round" "${TRAIN[@]}" "${LOSS[@]}" --out "$OUT/pkd-$round" --quiet > "$OUT/pkd-$round.json"
  t1=$(now)
  acc=$($PY -c 'import json, sys; print("%.2f" % json.load(open(sys.argv[1]))["best"]["accuracy"])' "$OUT/pkd-$round.json")
  printf "%s\tpkd\t%s\t%s\n" "$round" "$(elapsed "$t0" "$t1")" "$acc" | tee -a "$results"

  t0=$(now)
  "$TB/bin/python" bench/textbrewer_pkd.py --teacher "$TEACHER" --student-init "$OUT/student-init" \
    --data-dir "$DATA" --out "$OUT/textbrewer-$round" --max-train-examples "$N" > "$OUT/textbrewer-$round.json"
  t1=$(now)
  acc=$($PY -c 'import json, sys; print("%.2f" % json.load(open(sys.argv[1]))["dev_accuracy"])' \
    "$OUT/textbrewer-$round.json")
  printf "%s\ttextbrewer\t%s\t%s\n" "$round" "$(elapsed "$t0" "$t1")" "$acc" | tee -a "$results"
done

$PY - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
times = {tool: [float(r["seconds"]) for r in rows if r["tool"] == tool] for tool in ("pkd", "textbrewer")}
for p, t in zip(times["pkd"], times["textbrewer"], strict=True):
    print(f"round: pkd {p:.1f} s, TextBrewer {t:.1f} s, TextBrewer / pkd = {t / p:.2f}x")
mp, mt = statistics.mean(times["pkd"]), statistics.mean(times["textbrewer"])
print(f"mean: pkd {mp:.1f} s, TextBrewer {mt:.1f} s, TextBrewer / pkd = {mt / mp:.2f}x "
      f"(range {min(times['textbrewer']) / max(times['pkd']):.2f}-{max(times['textbrewer']) / min(times['pkd']):.2f}x)")
PY
