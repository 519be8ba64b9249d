"""The RACE benchmark table: teacher and students, dev and test, all / high / middle questions.

Reads what bench/race.sh wrote: the teacher's `pkd evaluate --json` logs, and for each student of the
compare folder its dev result.json and its test evaluation log. Students are grouped by method, mean ± sample
std over seeds. A first row gives the floor: always answering the letter most frequent in the training
subset (the letters are not uniform, so this is above 25%). Prints Markdown: the tables of docs/race.md.

    .venv/bin/python bench/race_table.py [--out bench/out] [--teacher teacher-race-4k] [--compare compare-race-4k-L3]
        [--data-dir ../shared/data/race] [--max-train-examples 4000] [--max-eval-examples 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

from pkd.metrics import score_examples
from pkd.race import LETTERS, find_race_file, read_race
from pkd.rundir import is_finished, parse_run_name, read_record, read_result
from pkd.tasks import get_task

COLUMNS = ("accuracy", "accuracy_high", "accuracy_middle")
METHOD_NAMES = {"ft": "FT", "kd": "KD", "pkd-skip": "PKD-Skip", "pkd-last": "PKD-Last"}


def last_json(log: Path) -> dict:
    """The JSON line `pkd evaluate --json` printed last in a step's log (warnings may precede it)."""
    if not log.is_file():
        raise SystemExit(f"{log}: missing; run bench/race.sh first")
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"{log}: no JSON result line")
    return json.loads(lines[-1])


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def majority_row(data_dir: Path, train_n: int, eval_n: int) -> tuple[str, dict[str, list[dict]]]:
    """Scores of always answering the training subset's most frequent letter, on the same dev/test samples."""
    task = get_task("race")
    train = read_race(task, find_race_file(data_dir, "train"), "train", limit=train_n).examples
    letter = Counter(e.label for e in train).most_common(1)[0][0]
    row = {}
    for split in ("dev", "test"):
        examples = read_race(task, find_race_file(data_dir, split), split, limit=eval_n).examples
        row[split] = [score_examples(task, examples, np.full(len(examples), letter))]
    return f"always {LETTERS[letter]} (train majority)", row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--teacher", default="teacher-race-4k")
    ap.add_argument("--compare", default="compare-race-4k-L3")
    ap.add_argument("--data-dir", default="../shared/data/race")
    ap.add_argument("--max-train-examples", type=int, default=4000)
    ap.add_argument("--max-eval-examples", type=int, default=500)
    args = ap.parse_args()
    out = Path(args.out)
    floor_name, floor = majority_row(Path(args.data_dir), args.max_train_examples, args.max_eval_examples)
    rows: dict[str, dict[str, list[dict]]] = {floor_name: floor, "teacher (6 layers)": {
        "dev": [last_json(out / f"eval-{args.teacher}-dev.log")],
        "test": [last_json(out / f"eval-{args.teacher}-test.log")]}}
    for run in sorted(d for d in (out / args.compare).iterdir() if parse_run_name(d.name)):
        test_log = out / f"eval-{args.compare}-{run.name}-test.log"
        if not is_finished(run) or not test_log.is_file():
            continue  # a run still in progress
        info = read_record(run)
        name = f"{METHOD_NAMES.get(info['method'], info['method'])} ({info['student_layers']} layers, " \
               f"{info.get('student_init', 'pretrained')} init)"
        row = rows.setdefault(name, {"dev": [], "test": []})
        row["dev"].append(read_result(run))
        row["test"].append(last_json(test_log))
    head = [f"{split} {c.replace('accuracy_', '').replace('accuracy', 'all')}" for split in ("dev", "test")
            for c in COLUMNS]
    print("| model | runs | " + " | ".join(head) + " |")
    print("|---|---|" + "---|" * len(head))
    for name, row in rows.items():
        cells = [cell([r[c] for r in row[split]]) for split in ("dev", "test") for c in COLUMNS]
        runs = "–" if name == floor_name else len(row["dev"])
        print(f"| {name} | {runs} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
