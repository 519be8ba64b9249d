# Sourced by bench/vs_textbrewer.sh with MODE=compare (its variables and helpers set): issue 15's second target,
# `pkd compare` (4 methods x 3 seeds) against TextBrewer running the same 12 trainings. Results in
# $OUT/compare-results.tsv, one line per timed unit: pkd's two compares as a whole, TextBrewer per training.
# Feeds docs/performance.md and the `pkd compare` against TextBrewer rows of docs/results.md and the README.
results=$OUT/compare-results.tsv
printf "tool\tmethod\tseed\tseconds\tdev_accuracy\n" > "$results"
# ORDERS: which data orders pkd runs ("shuffled grouped", or one of them to save its ~40 min on this machine):
# --no-group-by-length (pkd's default until this benchmark) into pkd-compare, --group-by-length (the default now)
# into pkd-compare-grouped.
for order in ${ORDERS:-shuffled grouped}; do
  case $order in shuffled) flag=--no-group-by-length name=pkd-compare ;;
    grouped) flag=--group-by-length name=pkd-compare-grouped ;;
    *) echo "ORDERS: $order is not shuffled or grouped" >&2; exit 2 ;; esac
  rm -rf "$OUT/$name" "$OUT/cache-$name"
  t0=$(now)
  $PKD compare --teacher "$TEACHER" --task sst2 --student-layers 3 --data-dir "$DATA" --seeds 3 \
    --methods ft,kd,pkd-skip,pkd-last --cache-dir "$OUT/cache-$name" "${TRAIN[@]}" "${LOSS[@]}" $flag \
    --out "$OUT/$name" --quiet > "$OUT/$name.log" 2>&1
  t1=$(now)
  for run in "$OUT/$name"/*-seed*/; do  # each run's best-epoch dev accuracy, from its metrics
    run=$(basename "$run")
    acc=$($PY -c 'import json, sys; print("%.2f" % max(json.loads(l)["accuracy"] for l in open(sys.argv[1])))' \
      "$OUT/$name/$run/metrics.jsonl")
    printf "%s\t%s\t%s\t-\t%s\n" "$name" "${run%-seed*}" "${run##*-seed}" "$acc" >> "$results"
  done
  printf "%s\tall\t-\t%s\t-\n" "$name" "$(elapsed "$t0" "$t1")" | tee -a "$results"
done
for seed in 42 43 44; do
  student_init "$seed" "$OUT/student-init-$seed"
  for method in ft kd pkd-skip pkd-last; do
    case $method in
      pkd-skip) tb=(--method pkd --layer-map 2,4) ;;
      pkd-last) tb=(--method pkd --layer-map 4,5) ;;
      *) tb=(--method "$method") ;;
    esac
    rm -rf "$OUT/tb-$method-$seed"
    t0=$(now)
    "$TB/bin/python" bench/textbrewer_pkd.py --teacher "$TEACHER" --student-init "$OUT/student-init-$seed" \
      --data-dir "$DATA" --out "$OUT/tb-$method-$seed" --max-train-examples "$N" --seed "$seed" "${tb[@]}" \
      > "$OUT/tb-$method-$seed.json"
    t1=$(now)
    acc=$(tb_accuracy "$OUT/tb-$method-$seed.json")
    printf "textbrewer\t%s\t%s\t%s\t%s\n" "$method" "$seed" "$(elapsed "$t0" "$t1")" "$acc" | tee -a "$results"
  done
done
$PY - "$results" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tools = list(dict.fromkeys(r["tool"] for r in rows))  # the pkd orders that ran, then textbrewer
total = {t: sum(float(r["seconds"]) for r in rows if r["tool"] == t and r["seconds"] != "-") for t in tools}
print("| tool | wall s, 12 trainings | TextBrewer / it | FT | KD | PKD-Skip | PKD-Last |")
print("|---|---|---|---|---|---|---|")
for tool, seconds in total.items():
    cells = []
    for m in ("ft", "kd", "pkd-skip", "pkd-last"):  # dev accuracy over the seeds: mean ± std (each seed)
        accs = [float(r["dev_accuracy"]) for r in rows if r["tool"] == tool and r["method"] == m]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        cells.append(f"{statistics.mean(accs):.2f} ± {spread:.2f} ({', '.join(f'{a:.2f}' for a in accs)})")
    print(f"| {tool} | {seconds:.1f} | {total['textbrewer'] / seconds:.2f}x | " + " | ".join(cells) + " |")
PY
# Length grouping's effect on accuracy, method by method (paired over seeds and dev examples).
if [ -f "$OUT/pkd-compare/compare.json" ] && [ -f "$OUT/pkd-compare-grouped/compare.json" ]; then
  $PKD report "$OUT/pkd-compare" --paired "$OUT/pkd-compare-grouped" --data-dir "$DATA"
fi
