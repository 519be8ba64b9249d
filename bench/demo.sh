#!/usr/bin/env bash
# `make demo`: the main job on the default teacher (all-MiniLM-L6-v2, 6 layers) and SST-2, sized for ~10 minutes
# on 2 CPU cores: fine-tune the teacher on an 8,000-example subset of SST-2 train, distill a 3-layer PKD-Skip
# student from it, and compare accuracy on the full SST-2 dev set, parameters and speed.
set -euo pipefail
PKD=${PKD:-.venv/bin/pkd}
OUT=${DEMO_OUT:-runs/demo}
N=${DEMO_EXAMPLES:-8000}
if [ -z "${PKD_DATA:-}" ] && [ -d ../shared/data/glue ]; then export PKD_DATA=../shared/data/glue; fi
echo "data: ${PKD_DATA:-the Hugging Face Hub (nyu-mll/glue)}; SST-2 train subset: first $N examples, max_seq_len 64"
export PKD_CACHE=${PKD_CACHE:-$OUT/cache}
SECONDS=0
echo "== 1/3 fine-tune the teacher (1 epoch)"
$PKD finetune --task sst2 --max-train-examples "$N" --max-seq-len 64 --epochs 1 --out "$OUT/teacher" --overwrite
echo "== 2/3 distill a 3-layer PKD-Skip student (2 epochs, teacher outputs cached once)"
$PKD distill --teacher "$OUT/teacher" --task sst2 --student-layers 3 --method pkd-skip \
  --max-train-examples "$N" --max-seq-len 64 --epochs 2 --out "$OUT/student" --overwrite
echo "== 3/3 compare on SST-2 dev (872 examples) and measure speed"
teacher=$($PKD evaluate "$OUT/teacher" --task sst2 --json)
student=$($PKD evaluate "$OUT/student" --task sst2 --json)
$PKD bench "$OUT/teacher" "$OUT/student" --seq-len 64 --batch-sizes 1,32 --repeats 5 --threads "$(nproc)"
python3 - "$teacher" "$student" <<'PY'
import json, sys
t, s = (json.loads(x)["accuracy"] for x in sys.argv[1:3])
print(f"\nSST-2 dev accuracy: teacher (6 layers) {t:.2f}%, student (3 layers, PKD-Skip) {s:.2f}% "
      f"= {100 * s / t:.1f}% of the teacher")
PY
echo "demo finished in $((SECONDS / 60)) min $((SECONDS % 60)) s; runs in $OUT"
