# Sourced by the benchmark scripts. step NAME CMD...: run CMD once, logging to $OUT/NAME.log; the marker
# $OUT/NAME.done records success and the wall time in seconds, so a rerun skips finished steps.
# STEPS=REGEX (an extended regular expression over step names) runs only the steps it matches, e.g.
# STEPS='^mrpc-' bash bench/grouping.sh: a part of a queue, rerun without the rest; `wanted NAME` tells the scripts'
# own glue (copies between steps) whether its step will run.
wanted() { [ -z "${STEPS:-}" ] || [[ $1 =~ $STEPS ]]; }
step() {
  local name=$1; shift
  [ -f "$OUT/$name.done" ] && { echo "== $name: done already"; return; }
  wanted "$name" || { echo "== $name: not in STEPS=$STEPS"; return; }
  echo "== $name: $*"
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  echo "$((SECONDS - t0))" > "$OUT/$name.done"
  echo "== $name: $((SECONDS - t0)) s"
}
