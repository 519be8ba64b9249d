#!/usr/bin/env bash
# One short check on a GPU machine (about 3-5 minutes, each step under its own timeout), printing everything:
#   1. the CUDA tests (tests/test_gpu.py: tiny fine-tune + distillation in bf16 and fp16 against fp32 on cuda),
#   2. one bf16 distillation of a tiny model through the CLI (teacher fine-tuned first, cache built on the GPU),
#      and, on a machine with 2+ GPUs, the same fine-tune under `accelerate launch` with 2 processes (nccl),
#   3. `pkd bench --shape bert-base --layers 12,6,3 --device cuda` (random weights: speed and memory only),
#   4. the int8 question of docs/deploy.md on the machine's own CPU: its int8/bf16 flags, and the demo's shapes
#      (6-layer fp32 PyTorch against 3-layer ONNX Runtime int8, 2 threads, random weights). The project's
#      machine has AVX2 without VNNI and measured 2.8-3.1x; if a VNNI CPU gives about 6x, the host explains
#      the issue's probe.
# Needs a CUDA build of torch in .venv (or PY=... / PKD=...). Nothing here downloads anything.
# Feeds docs/scaling.md (GPU runs) and docs/deploy.md (the int8 question).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PKD=${PKD:-.venv/bin/pkd}
OUT=${GPU_CHECK_OUT:-$(mktemp -d /tmp/pkd-gpu-check.XXXXXX)}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PKD_CACHE="$OUT/cache"
SECONDS=0
status=0
step() { echo; echo "== $1 (t=${SECONDS}s)"; }
run() { "$@" || { echo "!! failed (exit $?): $*"; status=1; }; }

step "0/4 machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
$PY - <<'PY'
import torch
ok = torch.cuda.is_available()
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available {ok}, GPUs {torch.cuda.device_count()}, "
      f"bf16 {ok and torch.cuda.is_bf16_supported()}")
if not ok:
    raise SystemExit("no CUDA device: this torch build or machine cannot run the GPU checks")
PY
[ $? -eq 0 ] || exit 1

step "1/4 CUDA tests"
run timeout 180 $PY -m pytest -q -rs tests/test_gpu.py

step "2/4 bf16 distillation of a tiny model"
$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import make_tiny_model, write_glue
out = Path(sys.argv[1])
model = make_tiny_model(out / "tiny-bert", layers=4, hidden=64)
write_glue(out / "glue", n_train=2048, n_dev=200)
print(f"tiny model and data in {out}")
PY
COMMON=(--task sst2 --data-dir "$OUT/glue" --max-seq-len 32 --batch-size 32 --lr 2e-3 --quiet)
run timeout 120 $PKD finetune --model "$OUT/tiny-bert" "${COMMON[@]}" --epochs 2 --precision bf16 --out "$OUT/teacher"
run timeout 120 $PKD distill --teacher "$OUT/teacher" --student-layers 2 --method pkd-skip "${COMMON[@]}" \
  --epochs 2 --precision bf16 --out "$OUT/student-bf16"
run timeout 120 $PKD distill --teacher "$OUT/teacher" --student-layers 2 --method pkd-skip "${COMMON[@]}" \
  --epochs 2 --precision fp32 --out "$OUT/student-fp32"
for run_dir in teacher student-bf16 student-fp32; do
  [ -f "$OUT/$run_dir/metrics.jsonl" ] && echo "$run_dir: $(tail -n 1 "$OUT/$run_dir/metrics.jsonl")"
done
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
  run timeout 180 $PY -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 \
    --mixed_precision no --dynamo_backend no -m pkd.cli finetune --model "$OUT/tiny-bert" "${COMMON[@]}" \
    --epochs 2 --precision bf16 --out "$OUT/teacher-2gpu"
  [ -f "$OUT/teacher-2gpu/metrics.jsonl" ] && echo "teacher-2gpu: $(tail -n 1 "$OUT/teacher-2gpu/metrics.jsonl")"
else
  echo "(one GPU: the 2-process launch is checked on the CPU by tests/test_multiprocess.py)"
fi

step "3/4 pkd bench on cuda"
run timeout 150 $PKD bench --shape bert-base --layers 12,6,3 --device cuda --seq-len 128 --batch-sizes 1,32 \
  --repeats 5

step "4/4 int8 on this machine's CPU, 2 threads"
$PY -c "from pkd.bench import cpu_features, environment; print(environment('cpu')['machine'], '|', cpu_features())"
run timeout 240 $PKD bench --shape minilm-l6-h384 --layers 6,3 --variants torch,ort-int8 --threads 2 \
  --seq-len 128 --batch-sizes 1,32 --repeats 3

echo
echo "gpu_check finished in ${SECONDS}s, status $status; outputs in $OUT"
exit $status
