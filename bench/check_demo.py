"""Does a `make demo` run give the front page's accuracies? Compares the demo.json it wrote (runs/demo/demo.json)
with the recorded one behind the README (docs/results/demo.json), each accuracy within --tolerance points; prints
one line per accuracy and exits 1 on any difference beyond it. `.ci/run` calls it after the demo.

Usage: .venv/bin/python bench/check_demo.py NEW.json RECORDED.json [--tolerance 0.35]
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new", help="the demo.json of the run to check")
    parser.add_argument("recorded", help="the demo.json the README's numbers come from")
    parser.add_argument("--tolerance", type=float, default=0.35, help="points of accuracy allowed either way")
    args = parser.parse_args()
    new, recorded = (json.load(open(path))["accuracy"] for path in (args.new, args.recorded))
    bad = 0
    for name, want in recorded.items():
        got = new.get(name)
        ok = got is not None and abs(got - want) <= args.tolerance
        bad += not ok
        print(f"demo {name}: {got} (recorded {want}, tolerance {args.tolerance}): {'ok' if ok else 'DIFFERS'}")
    if bad:
        print(f"check_demo: {bad} accuracy(ies) differ from {args.recorded}: regenerate the demo's numbers "
              "(README, docs/results.md) from this run, or find what changed", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
