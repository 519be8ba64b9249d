"""Which task a command runs and where its data comes from: a registry task by name (--task) from --data-dir, else
$PKD_DATA, else the Hugging Face Hub, read by pkd.glue or pkd.race; or a task defined by its data (--train-file,
--dataset, or the run.json of the model a command starts from), read by pkd.files. Every reader gives Splits."""

from __future__ import annotations

import os
from pathlib import Path

from pkd import files, glue, race
from pkd.config import DataConfig
from pkd.errors import UsageError
from pkd.rundir import model_record
from pkd.tasks import Split, Task, get_task


def recorded_data_dir(model: str | Path) -> str | None:
    """The data directory a run of a registry task read its training file from (run.json's "data"), when neither
    --data-dir nor $PKD_DATA says otherwise and the file is still there; else None."""
    if os.environ.get("PKD_DATA"):
        return None
    record = model_record(model)
    source = record.get("data")
    if not source or record.get("file_task") or not Path(source).is_file():
        return None
    return str(Path(source).parent)  # <root>/<task folder>/train.tsv: the folder holds the dev file too


def resolve_task(task: str | None, data: DataConfig | None = None, model: str | Path | None = None) -> Task:
    """The task a command runs: --task names a registry task; data options (--train-file, --dataset) define one;
    otherwise it is the one that `model`'s run.json (or export.json) records, with any data options given here
    pointing its files elsewhere."""
    data = data or DataConfig()
    record = model_record(model)
    recorded = files.recorded_spec(record)
    if task is not None:
        if data.train_file is not None or data.dataset is not None:
            raise UsageError(f"--task {task}: names a built-in task; a task defined by --train-file or --dataset "
                             "takes no --task")
        return get_task(task)
    if data.train_file is not None or data.dataset is not None or recorded is not None:
        return files.file_task(data, recorded)
    if data.given:
        given = ", ".join(f"--{k.replace('_', '-')}" for k, v in vars(data).items() if v is not None)
        raise UsageError(f"{given}: needs --train-file or --dataset (or a model whose run.json records its data)")
    if record.get("task"):
        return get_task(record["task"])
    where = f"{model}: no run.json naming its task; " if model is not None else ""
    raise UsageError(f"{where}pass --task (a built-in task) or --train-file/--dataset (your own data)")


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
    if task.files is not None:
        return files.load_file_split(task, split, limit)
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
