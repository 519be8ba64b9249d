"""Does one setting change the score? Two `pkd compare` directories of the same task, methods and seeds that
differ in one setting only (the training order, e.g. without and with --group-by-length; or the student's
init), compared method by method with pkd.stats' paired bootstrap over the dev examples, seeds pooled (each
seed pairs the two directories' runs of that seed): B - A with its 95% interval, and a verdict. "all" pools every
method's seeds. The name is from its first use, the data order.

    .venv/bin/python bench/order_effect.py bench/out/vs_textbrewer/pkd-compare \
        bench/out/vs_textbrewer/pkd-compare-grouped --task sst2 --data-dir ../shared/data/glue
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pkd.api import selected_predictions, selected_record
from pkd.data import load_split
from pkd.metrics import compute_metrics
from pkd.stats import paired_difference
from pkd.tasks import get_task


def compare_predictions(compare_dir: Path) -> dict[str, list[np.ndarray]]:
    """method -> the dev predictions of each seed's selected epoch (as compare.json selected it), in seed order:
    pkd.api.selected_predictions, given each run's selected epoch."""
    select = json.loads((compare_dir / "compare.json").read_text())["select"]
    runs = sorted(compare_dir.glob("*-seed*"), key=lambda p: int(p.name.rsplit("-seed", 1)[1]))
    epochs: dict[str, list[int]] = {}
    for run in runs:
        epochs.setdefault(run.name.rsplit("-seed", 1)[0], []).append(selected_record(run, select)["epoch"])
    first_seed = int(runs[0].name.rsplit("-seed", 1)[1])
    return selected_predictions(compare_dir, tuple(epochs), first_seed, epochs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="compare directory A, the baseline (e.g. --no-group-by-length)")
    p.add_argument("b", type=Path, help="compare directory B, the setting tested (e.g. --group-by-length)")
    p.add_argument("--task", required=True)
    p.add_argument("--data-dir", default="../shared/data/glue")
    args = p.parse_args()
    task = get_task(args.task)
    labels = np.array([e.label for e in load_split(task, "dev", args.data_dir)[0].examples])
    try:
        a, b = compare_predictions(args.a), compare_predictions(args.b)
    except (OSError, KeyError, ValueError, IndexError) as e:  # one line: not a compare directory, or unfinished
        raise SystemExit(f"order_effect.py: error: {e}") from None
    if a.keys() != b.keys() or any(len(a[m]) != len(b[m]) for m in a):
        raise SystemExit(f"{args.a} and {args.b}: not the same methods and seeds")
    a["all"], b["all"] = [x for m in list(a) for x in a[m]], [x for m in list(b) for x in b[m]]

    def score(predictions: np.ndarray, gold: np.ndarray) -> float:
        return compute_metrics(task, predictions, gold)["score"]

    print(f"| method | runs | {args.b.name} - {args.a.name} (95% CI) | verdict |")
    print("|---|---|---|---|")
    for method in a:
        r = paired_difference(score, labels, b[method], a[method])
        print(f"| {method} | {r['seeds']} + {r['seeds']} | {r['diff']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] "
              f"| {r['verdict']} |")


if __name__ == "__main__":
    main()
