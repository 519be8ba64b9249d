"""One metric of a `pkd compare` directory, per method: mean ± std over seeds, each seed's value, and the mean's
retention of the teacher's value and of the teacher's gain over the majority-class floor, both in that metric.

`pkd compare` reports a task's score, the mean of its metrics (MRPC: accuracy and F1; STS-B: Pearson and
Spearman); issue 16's retention targets are in accuracy (Pearson for STS-B), hence this table. The runs' values
are read at the epoch `--select` names, as `pkd compare --select` picks it; the teacher's at its best epoch
(run.json), which is the model the comparison scored.

  .venv/bin/python bench/metric_table.py bench/out/recipes/mrpc-compare --metric accuracy --data-dir ../shared/data/glue
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pkd.api import seed_statistics, selected_record
from pkd.data import load_split
from pkd.errors import UsageError
from pkd.io import read_jsonl
from pkd.metrics import floor_score
from pkd.tasks import get_task

METHODS = ("ft", "kd", "pkd-skip", "pkd-last")
NAMES = {"ft": "FT", "kd": "KD", "pkd-skip": "PKD-Skip", "pkd-last": "PKD-Last"}


def metric_table(compare_dir: Path, metric: str, data_dir: str, select: str = "best") -> str:
    """The markdown table of one metric of a compare directory's finished runs."""
    runs = sorted(d for d in compare_dir.glob("*-seed*") if (d / "result.json").is_file())
    if not runs:
        raise UsageError(f"{compare_dir}: no finished runs (no */result.json)")
    info = json.loads((runs[0] / "run.json").read_text())
    task = get_task(info["task"])
    if metric not in task.metrics:
        raise UsageError(f"--metric {metric}: {task.name} has {', '.join(task.metrics)}")
    teacher_run = json.loads((Path(info["teacher"]) / "run.json").read_text())
    teacher = (teacher_run.get("result") or max(read_jsonl(Path(info["teacher"]) / "metrics.jsonl"),
                                                  key=lambda r: r["score"]))[metric]  # older runs: metrics only
    train = load_split(task, "train", data_dir, info["train"]["max_train_examples"])[0].examples
    dev = load_split(task, "dev", data_dir)[0].examples
    floor = floor_score(task, [e.label for e in train], dev, metric)
    values: dict[str, list[float]] = {}
    for run in runs:
        method, seed = run.name.rsplit("-seed", 1)
        values.setdefault(method, []).append(selected_record(run, select)[metric])
    rows = seed_statistics({m: values[m] for m in METHODS if m in values}, teacher, floor)
    lines = [f"{task.name}, {metric} at each run's {select} epoch: teacher {teacher:.2f}, majority-class floor "
             f"{floor:.2f}", "",
             f"| method | runs | {metric} (mean ± std) | per seed | retention | gain over floor retained |",
             "|---|---|---|---|---|---|"]
    for method, row in rows.items():
        gain = "-" if row["gain_retention"] is None else f"{row['gain_retention']:.1f}%"
        lines.append(f"| {NAMES[method]} | {len(row['scores'])} | {row['mean']:.2f} ± {row['std']:.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in row['scores'])} | {row['retention']:.1f}% | {gain} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("compare_dir", type=Path, help="a `pkd compare --out` directory")
    p.add_argument("--metric", required=True, help="one of the task's metrics (accuracy, f1, pearson, ...)")
    p.add_argument("--data-dir", default="../shared/data/glue", help="the glue_data directory (for the floor)")
    p.add_argument("--select", choices=("best", "last"), default="best", help="which epoch of each run")
    args = p.parse_args()
    try:
        print(metric_table(args.compare_dir, args.metric, args.data_dir, args.select))
    except (UsageError, OSError, KeyError) as e:  # one line, not a traceback: a wrong directory or metric
        raise SystemExit(f"metric_table.py: error: {e}") from None


if __name__ == "__main__":
    main()
