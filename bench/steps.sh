# Sourced by the benchmark scripts. step NAME CMD...: run CMD once, logging to $OUT/NAME.log; the marker
# $OUT/NAME.done records success and the wall time in seconds, so a rerun skips finished steps.
step() {
  local name=$1; shift
  [ -f "$OUT/$name.done" ] && { echo "== $name: done already"; return; }
  echo "== $name: $*"
  local t0=$SECONDS
  "$@" > "$OUT/$name.log" 2>&1
  echo "$((SECONDS - t0))" > "$OUT/$name.done"
  echo "== $name: $((SECONDS - t0)) s"
}
