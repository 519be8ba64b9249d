"""Where a task's data comes from: --data-dir, else $PKD_DATA, else the Hugging Face Hub; and which reader
(pkd.glue or pkd.race) reads it."""

from __future__ import annotations

import os
from pathlib import Path

from pkd import glue, race
from pkd.errors import UsageError
from pkd.tasks import Split, Task


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
    """The parts a split name stands for: "dev" and "test" are two parts for MNLI (matched, mismatched)."""
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
            parts.append(race.load_race_hub(task, part, limit) if root is None else
                         race.read_race(task, race.find_race_file(root, part), part, limit))
        else:
            parts.append(glue.load_glue_hub(task, part, limit) if root is None else
                         glue.read_tsv(task, glue.find_glue_file(task, root, part), part, limit))
    return parts
