#!/usr/bin/env bash
# The deploy benchmark (issue 14, docs/deploy.md), on this machine:
#  1. the `make demo` teacher (6 layers) and PKD-Skip student (3 layers) in each variant a user chooses between -
#     PyTorch fp32 and int8, ONNX Runtime fp32 and int8, and int8 after ONNX Runtime's transformer fusions - each
#     written by `pkd export --evaluate`, so scored on the full SST-2 dev set by the code that scores runs, then all
#     timed interleaved in one `pkd bench` run ($THREADS threads, 128 tokens);
#  2. random-weight BERT-base shapes (`--shape bert-base --layers 12,6,3`), the same variants, one run.
# Without the demo models (runs/demo/{teacher,student}: `make demo`) part 1 is skipped. Writes $OUT/*.json and the
# tables to $OUT/deploy.md (bench/deploy_table.py), which docs/deploy.md quotes.
set -euo pipefail
PKD=${PKD:-.venv/bin/pkd}
PY=${PY:-.venv/bin/python}
DEMO=${DEMO_OUT:-runs/demo}
OUT=${DEPLOY_OUT:-runs/deploy}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-5}
SEQ=${SEQ:-128}
SHAPE=${SHAPE-bert-base}  # SHAPE= skips part 2
read -r -a EXPORTS <<< "${EXPORTS:-torch-int8 ort ort-int8 ort-opt-int8}"  # variants besides PyTorch fp32
if [ -z "${PKD_DATA:-}" ] && [ -d ../shared/data/glue ]; then export PKD_DATA=../shared/data/glue; fi
mkdir -p "$OUT"
SECONDS=0

export_variant() {  # MODEL VARIANT: $OUT/exports/MODEL-VARIANT, scored on dev
  local options=()
  case $2 in
    torch-int8) options=(--format torch --quantize int8) ;;
    ort) options=() ;;
    ort-int8) options=(--quantize int8) ;;
    ort-opt-int8) options=(--quantize int8 --optimize) ;;
  esac
  $PKD export "$DEMO/$1" --out "$OUT/exports/$1-$2" "${options[@]}" --evaluate --overwrite > /dev/null
}

if [ -f "$DEMO/teacher/config.json" ] && [ -f "$DEMO/student/config.json" ]; then
  echo "== 1/2 demo models: export each variant and score it on SST-2 dev"
  models=()
  for m in teacher student; do
    $PKD evaluate "$DEMO/$m" --task sst2 --json > "$OUT/$m-torch.dev.json"
    models+=("$DEMO/$m")
    for v in "${EXPORTS[@]}"; do
      export_variant "$m" "$v"
      models+=("$OUT/exports/$m-$v")
    done
  done
  echo "== 1/2 demo models: all variants timed, interleaved ($THREADS threads, $SEQ tokens, $REPEATS rounds)"
  $PKD bench "${models[@]}" --seq-len "$SEQ" --batch-sizes 1,32 --repeats "$REPEATS" --threads "$THREADS" --json \
    > "$OUT/demo-bench.json"
else
  echo "== 1/2 skipped: no demo models in $DEMO (make demo trains them)"
fi
if [ -n "$SHAPE" ]; then
  echo "== 2/2 $SHAPE shapes, random weights, 12/6/3 layers, all variants timed interleaved"
  $PKD bench --shape "$SHAPE" --layers 12,6,3 --variants torch,"$(IFS=,; echo "${EXPORTS[*]}")" --seq-len "$SEQ" \
    --batch-sizes 1,32 --repeats "$REPEATS" --threads "$THREADS" --json > "$OUT/bert-base-bench.json"
fi
$PY bench/deploy_table.py "$OUT" > "$OUT/deploy.md"
cat "$OUT/deploy.md"
echo "deploy benchmark finished in $((SECONDS / 60)) min $((SECONDS % 60)) s; results in $OUT"
