"""Tasks (GLUE and RACE): what each one reads, how it is labelled and scored, and where its data comes from.

Local GLUE data uses the `glue_data` layout written by download_glue_data.py (one folder per task, TSV files
read with quoting off); RACE is read from gzipped JSON lines (pkd.race). Without a local directory the data
comes from the Hugging Face Hub.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pkd.errors import DataError, UsageError


@dataclass(frozen=True)
class Task:
    name: str
    folder: str  # directory name in glue_data
    text_columns: tuple[str, ...]  # header names (or positions as str digits for header-less files)
    label_column: str
    labels: tuple[str, ...] | None  # None means regression
    metrics: tuple[str, ...]
    header: bool = True
    test_text_columns: tuple[str, ...] | None = None  # when the test file names its columns differently
    hub_name: str = ""
    hub_text_columns: tuple[str, ...] = ()
    dev_files: tuple[str, ...] = ("dev",)  # MNLI scores matched and mismatched
    test_files: tuple[str, ...] = ("test",)
    extra: dict = field(default_factory=dict)
    choices: int = 0  # > 0: multiple choice, this many options per question (RACE)
    level: str | None = None  # RACE: keep only the passages of this level
    levels: tuple[str, ...] = ()  # RACE: levels whose accuracy is also reported on its own
    default_max_seq_len: int = 128  # when --max-seq-len is not given

    @property
    def is_multiple_choice(self) -> bool:
        return self.choices > 0

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def main_metric(self) -> str:
        """The number that picks the best epoch and is reported as "the" score."""
        return "score"


GLUE_TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        # CoLA train/dev have no header: source, label, original label, sentence.
        Task("cola", "CoLA", ("3",), "1", ("0", "1"), ("mcc",), header=False,
             test_text_columns=("sentence",), hub_name="cola", hub_text_columns=("sentence",)),
        Task("sst2", "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",),
             hub_name="sst2", hub_text_columns=("sentence",)),
        Task("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"), ("accuracy", "f1"),
             hub_name="mrpc", hub_text_columns=("sentence1", "sentence2")),
        Task("stsb", "STS-B", ("sentence1", "sentence2"), "score", None, ("pearson", "spearman"),
             hub_name="stsb", hub_text_columns=("sentence1", "sentence2")),
        Task("qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1"), ("accuracy", "f1"),
             hub_name="qqp", hub_text_columns=("question1", "question2")),
        Task("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label",
             ("contradiction", "entailment", "neutral"), ("accuracy",),
             hub_name="mnli", hub_text_columns=("premise", "hypothesis"),
             dev_files=("dev_matched", "dev_mismatched"), test_files=("test_matched", "test_mismatched")),
        Task("qnli", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"), ("accuracy",),
             hub_name="qnli", hub_text_columns=("question", "sentence")),
        Task("rte", "RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), ("accuracy",),
             hub_name="rte", hub_text_columns=("sentence1", "sentence2")),
        Task("wnli", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1"), ("accuracy",),
             hub_name="wnli", hub_text_columns=("sentence1", "sentence2")),
    ]
}

# RACE: 4-way multiple choice over a passage; labels are the answer letters. "race" reports accuracy on
# all questions and on the high- and middle-school ones; race-high and race-middle train on one level.
RACE_TASKS: dict[str, Task] = {
    name: Task(name, "race", ("article", "question", "options"), "answers", ("A", "B", "C", "D"), ("accuracy",),
               hub_name=config, choices=4, level=level, levels=("high", "middle") if level is None else (),
               default_max_seq_len=512)
    for name, level, config in (("race", None, "all"), ("race-high", "high", "high"),
                                ("race-middle", "middle", "middle"))
}

TASKS: dict[str, Task] = {**GLUE_TASKS, **RACE_TASKS}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli-mm": "mnli", "race-all": "race",
            "race_high": "race-high", "race_middle": "race-middle"}


def get_task(name: str) -> Task:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise UsageError(f"--task {name}: unknown task (choose from {', '.join(TASKS)})")
    return TASKS[key]


@dataclass
class Example:
    texts: tuple[str, ...]
    label: int | float | None  # None for unlabeled test data
    index: str  # the id to write in a prediction file
    level: str | None = None  # RACE: "high" or "middle"


@dataclass
class Split:
    """One split of one task, from one source, with a fingerprint of its contents for the teacher cache."""

    task: Task
    name: str  # train, dev, dev_mismatched, test, ...
    examples: list[Example]
    source: str
    fingerprint: str

    @property
    def labeled(self) -> bool:
        return all(e.label is not None for e in self.examples)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """--data-dir, else $PKD_DATA, else None (the Hub)."""
    value = data_dir if data_dir is not None else os.environ.get("PKD_DATA") or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UsageError(f"{'--data-dir' if data_dir is not None else '$PKD_DATA'} {path}: not a directory")
    return path


def split_files(task: Task, split: str) -> tuple[str, ...]:
    if split == "dev":
        return task.dev_files
    if split == "test":
        return task.test_files
    if split == "train" or split in task.dev_files or split in task.test_files:
        return (split,)
    raise UsageError(f"--split {split}: unknown split for {task.name} (train, dev, test)")


def load_split(task: Task, split: str, data_dir: str | Path | None = None, limit: int | None = None) -> list[Split]:
    """Read a split. "dev" and "test" give two parts for MNLI (matched, mismatched), one for the rest."""
    root = resolve_data_dir(data_dir)
    parts = []
    for part in split_files(task, split):
        if task.is_multiple_choice:
            from pkd import race

            parts.append(race.load_race_hub(task, part, limit) if root is None else
                         race.read_race(task, race.find_race_file(root, part), part, limit))
        elif root is None:
            parts.append(_load_hub(task, part, limit))
        else:
            parts.append(read_tsv(task, _find_file(task, root, part), part, limit))
    return parts


def _find_file(task: Task, root: Path, part: str) -> Path:
    for candidate in (root / task.folder / f"{part}.tsv", root / f"{part}.tsv"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{root / task.folder / f'{part}.tsv'}: file not found")


def read_lines(path: Path, gzipped: bool = False) -> tuple[bytes, list[bytes]]:
    """The file's bytes as stored (for its fingerprint) and its lines, without the final empty one."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    text = raw
    if gzipped:
        try:
            text = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a readable gzip file ({e})") from None
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return raw, lines


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


def load_hub_split(name: str, config: str, part: str, hub_split: str):
    """datasets.load_dataset, with any failure (no network, no such dataset) as one line naming our split."""
    import datasets

    try:
        return datasets.load_dataset(name, config, split=hub_split)
    except Exception as e:
        raise DataError(f"{name} {config} {part}: cannot load from the Hub "
                        f"({type(e).__name__}); pass --data-dir or set PKD_DATA") from None


def _load_hub(task: Task, part: str, limit: int | None) -> Split:
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
