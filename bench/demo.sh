#!/usr/bin/env bash
# `make demo`: the main job on the default teacher (all-MiniLM-L6-v2, 6 layers) and SST-2, sized for ~10 minutes
# on 2 CPU cores: fine-tune the teacher on an 8,000-example subset of SST-2 train, distill a 3-layer PKD-Skip
# student from it, export the student to ONNX int8, and compare accuracy on the full SST-2 dev set, size and speed
# of teacher fp32 -> student fp32 -> student int8 (ONNX Runtime). Feeds `make demo`'s results (README, docs/results.md).
set -euo pipefail
PKD=${PKD:-.venv/bin/pkd}
OUT=${DEMO_OUT:-runs/demo}
N=${DEMO_EXAMPLES:-8000}
LEN=64  # trained and scored at 64 tokens; timed at 128 (the benchmark's length)
if [ -z "${PKD_DATA:-}" ] && [ -d ../shared/data/glue ]; then export PKD_DATA=../shared/data/glue; fi
echo "data: ${PKD_DATA:-the Hugging Face Hub (nyu-mll/glue)}; SST-2 train subset: first $N examples, max_seq_len $LEN"
export PKD_CACHE=${PKD_CACHE:-$OUT/cache}
SECONDS=0
echo "== 1/4 fine-tune the teacher (1 epoch)"
$PKD finetune --task sst2 --max-train-examples "$N" --max-seq-len "$LEN" --epochs 1 --out "$OUT/teacher" --overwrite
echo "== 2/4 distill a 3-layer PKD-Skip student (2 epochs, teacher outputs cached once)"
$PKD distill --teacher "$OUT/teacher" --task sst2 --student-layers 3 --method pkd-skip \
  --max-train-examples "$N" --max-seq-len "$LEN" --epochs 2 --out "$OUT/student" --overwrite
echo "== 3/4 score teacher and student on SST-2 dev (872 examples)"
teacher=$($PKD evaluate "$OUT/teacher" --task sst2 --json)
student=$($PKD evaluate "$OUT/student" --task sst2 --json)
echo "== 4/4 deploy: the student as ONNX int8 (ONNX Runtime), scored on the same dev set, timed beside the others"
$PKD export "$OUT/student" --out "$OUT/student-int8" --quantize int8 --evaluate --overwrite >/dev/null
$PKD bench "$OUT/teacher" "$OUT/student" "$OUT/student-int8" --seq-len 128 --batch-sizes 1,32 --repeats 5 \
  --threads "$(nproc)" --json > "$OUT/bench.json"
# The accuracies also go to $OUT/demo.json: the demo numbers of the README and docs/results.md are checked against
# the copy of it in docs/results/demo.json (tests/test_readme.py); copy a new run's file there when they take
# its numbers.
python3 - "$teacher" "$student" "$OUT/student-int8/export.json" "$OUT/bench.json" "$OUT/demo.json" "$LEN" <<'PY'
import json, sys
t, s = (json.loads(x)["accuracy"] for x in sys.argv[1:3])
q = json.load(open(sys.argv[3]))["dev"]["accuracy"]
rows = json.load(open(sys.argv[4]))["models"]
json.dump({"max_seq_len": int(sys.argv[6]), "bench_seq_len": 128,
           "accuracy": {"teacher": round(t, 2), "student": round(s, 2), "student_int8": round(q, 2)}},
          open(sys.argv[5], "w"), indent=1)
names = ["teacher fp32 (6 layers, PyTorch)", "PKD student fp32 (3 layers, PyTorch)",
         "PKD student int8 (3 layers, ONNX Runtime)"]
print("\n| model | SST-2 dev acc | size MB | latency ms (b=1, 128 tok) | speed-up | ex/s (b=32) | speed-up |")
print("|---|---|---|---|---|---|---|")
for name, acc, r in zip(names, (t, s, q), rows):
    print(f"| {name} | {acc:.2f} | {r['size_bytes'] / 1e6:.1f} | {r['latency_ms']:.1f} | {r['latency_speedup']:.2f}x "
          f"| {r['throughput']:.1f} | {r['throughput_speedup']:.2f}x |")
print(f"\nSST-2 dev accuracy: teacher (6 layers) {t:.2f}%, student (3 layers, PKD-Skip) {s:.2f}% "
      f"= {100 * s / t:.1f}% of the teacher; int8 in ONNX Runtime {q:.2f}% ({q - s:+.2f} points)")
PY
echo "demo finished in $((SECONDS / 60)) min $((SECONDS % 60)) s; runs in $OUT"
