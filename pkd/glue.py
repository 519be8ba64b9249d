"""GLUE readers: the glue_data TSV files and the Hub's nyu-mll/glue.

Local data uses the `glue_data` layout written by download_glue_data.py: one folder per task, TSV files read
with quoting off (GLUE's sentences contain unbalanced quotes), every row checked, errors naming the file and
line. Without a local directory the data comes from the Hugging Face Hub, with the Hub's label order mapped
onto the TSVs' (they differ for MNLI).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from pkd.errors import DataError
from pkd.io import load_hub_split, read_lines
from pkd.tasks import Example, Split, Task


def find_glue_file(task: Task, root: Path, part: str) -> Path:
    """<root>/<task folder>/<part>.tsv, else <root>/<part>.tsv (a folder that holds one task)."""
    for candidate in (root / task.folder / f"{part}.tsv", root / f"{part}.tsv"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root / task.folder / f'{part}.tsv'}: file not found")


def read_tsv(task: Task, path: str | Path, part: str = "train", limit: int | None = None) -> Split:
    """Parse a glue_data TSV with quoting off, checking every row; errors name the file and line."""
    path = Path(path)
    raw, lines = read_lines(path)
    if not lines:
        raise DataError(f"{path}: empty file")

    def decode(lineno: int, line: bytes) -> list[str]:
        try:
            text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte {e.start})") from None
        return text.rstrip("\r").split("\t")

    is_test = part.startswith("test")
    has_header = task.header or is_test
    text_cols = task.test_text_columns if (is_test and task.test_text_columns) else task.text_columns
    if has_header:
        header = decode(1, lines[0])
        missing = [c for c in text_cols if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing header or column(s) {', '.join(missing)} for task {task.name}")
        text_idx = [header.index(c) for c in text_cols]
        # MNLI train has one label column fewer than dev; the gold label is always named.
        label_idx = header.index(task.label_column) if task.label_column in header else None
        id_idx = header.index("index") if "index" in header else (header.index("id") if "id" in header else None)
        width, body, first = len(header), lines[1:], 2
    else:
        width = 4
        text_idx, label_idx, id_idx = [int(c) for c in text_cols], int(task.label_column), None
        body, first = lines, 1
    if label_idx is None and not is_test:
        raise DataError(f"{path}:1: missing label column {task.label_column} for task {task.name}")
    if not body:
        raise DataError(f"{path}: no data rows")

    examples = []
    for n, line in enumerate(body):
        lineno = first + n
        if limit is not None and len(examples) >= limit:
            break
        row = decode(lineno, line)
        if len(row) != width:
            raise DataError(f"{path}:{lineno}: expected {width} tab-separated fields, found {len(row)}")
        label = None
        if label_idx is not None:
            label = _parse_label(task, row[label_idx], f"{path}:{lineno}")
        index = row[id_idx] if id_idx is not None else str(n)
        examples.append(Example(tuple(row[i] for i in text_idx), label, index))
    fingerprint = hashlib.sha256(raw).hexdigest()
    if limit is not None:
        fingerprint = hashlib.sha256(f"{fingerprint}:limit={limit}".encode()).hexdigest()
    return Split(task, part, examples, str(path), fingerprint)


def _parse_label(task: Task, value: str, where: str) -> int | float:
    if task.labels is None:
        try:
            number = float(value)
        except ValueError:
            raise DataError(f"{where}: label {value!r} is not a number") from None
        if not math.isfinite(number):
            raise DataError(f"{where}: label {value!r} is not a finite number")
        return number
    if value not in task.labels:
        raise DataError(f"{where}: unknown label {value!r} (expected one of {', '.join(task.labels)})")
    return task.labels.index(value)


_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test", "dev_matched": "validation_matched",
               "dev_mismatched": "validation_mismatched", "test_matched": "test_matched",
               "test_mismatched": "test_mismatched"}


def load_glue_hub(task: Task, part: str, limit: int | None) -> Split:
    """nyu-mll/glue from the Hub; unlabeled test rows (label -1) get no label."""
    ds = load_hub_split("nyu-mll/glue", task.hub_name, part, _HUB_SPLITS[part])
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    names = ds.features["label"].names if hasattr(ds.features["label"], "names") else None
    examples = []
    for row in ds:
        label = row["label"]
        if label is None or label == -1:  # the Hub marks unlabeled test rows with -1
            label = None
        elif names is not None and task.labels is not None:
            # The Hub's label order can differ from the TSV's (MNLI); map through the names.
            label = task.labels.index(_hub_label_name(task, names[label]))
        examples.append(Example(tuple(row[c] for c in task.hub_text_columns), label, str(row["idx"])))
    return Split(task, part, examples, f"hub:nyu-mll/glue/{task.hub_name}/{part}", ds._fingerprint)


def _hub_label_name(task: Task, name: str) -> str:
    if task.labels == ("0", "1"):
        return {"unacceptable": "0", "acceptable": "1", "negative": "0", "positive": "1",
                "not_equivalent": "0", "equivalent": "1", "not_duplicate": "0", "duplicate": "1",
                "not_entailment": "0", "entailment": "1"}.get(name, name)
    return name
