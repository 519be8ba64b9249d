#!/usr/bin/env bash
# Issue 35 item 9: how often a 2-process run aborts at exit ("terminate called without an active exception",
# SIGABRT) under load. Runs the resumed 2-process test (or -k EXPRESSION) N times in a row and counts the runs that failed and the runs
# whose output shows the abort. Load: run it beside CPU-bound work (docs/reliability.md says what ran beside it).
# Usage: bash bench/multiprocess_soak.sh [N] [PYTEST -k EXPRESSION]; PYTHONPATH picks the code under test.
set -uo pipefail
N=${1:-20}
K=${2:-killed_mid_epoch}
PYTEST=${PYTEST:-.venv/bin/pytest}
failed=0; aborted=0
for i in $(seq 1 "$N"); do
  log=$(mktemp)
  "$PYTEST" -q -p no:cacheprovider tests/test_multiprocess.py -k "$K" > "$log" 2>&1
  rc=$?
  grep -q "terminate called\|SIGABRT\|exit status -6\|returned -6" "$log" && aborted=$((aborted + 1))
  [ "$rc" -ne 0 ] && { failed=$((failed + 1)); tail -5 "$log" | sed "s/^/run $i: /"; }
  echo "run $i/$N: rc $rc; failed so far $failed, aborts so far $aborted"
  rm -f "$log"
done
echo "multiprocess soak: $N runs, $failed failed, $aborted aborted (-k '$K', PYTHONPATH=${PYTHONPATH:-})"
