"""The run directory: the one module that knows what a run, a comparison and a sweep leave on disk.

A run directory (`pkd finetune`, `pkd distill`, and each run of a comparison or a sweep) holds:

    run.json                 the exact configuration (`--config run.json` re-runs it), library versions, and
                             once finished its "result"; `--resume` compares it with the new command's settings
    metrics.jsonl            one line per finished epoch
    predictions/dev-epochN.npy  epoch N's dev predictions, from which paired verdicts are recomputed
    checkpoints/step-N/      the newest checkpoints (resume), pruned when the run finishes
    result.json              the finished run's result (one schema, write_result); its presence marks it finished
    config.json, model.safetensors, tokenizer files: the best epoch's model

A comparison directory holds compare.json, compare.md and one run per method and seed, named `<method>-seed<N>`;
a sweep directory sweep.json (its settings), results.md, results.csv, results.json, best.json and one run per
trial, named after its grid values.

Why one owner: resume, compare, sweep, report and the bench tables all read this layout back, so a name or a
field changed here changes for all of them.

While a command writes to a directory it holds an exclusive lock on it (flock on the directory itself, so no file
is added, and the kernel drops it when the process ends, killed or not): a second pkd process pointed at the same
--out, say a `--resume` started while the first still runs, is refused instead of interleaving its epochs and
checkpoints with the first one's. Where flock does not exist (Windows) directories are not locked.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import numpy as np

from pkd.errors import DataError, UsageError
from pkd.io import append_jsonl, atomic_path, read_jsonl, write_json, write_text

RUN_FILE = "run.json"
RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"
COMPARE_FILE = "compare.json"
COMPARE_MARKDOWN = "compare.md"
SWEEP_FILE = "sweep.json"
EXPORT_FILE = "export.json"  # an export directory's record (pkd.deploy writes it)
CHECKPOINTS = "checkpoints"
CHECKPOINT_DONE = "state.json"  # the last file a checkpoint writes: a checkpoint without it is incomplete

_F = TypeVar("_F", bound=Callable[..., Any])
_HELD: dict[Path, int] = {}  # the directories this process writes to -> the descriptor holding each one's lock


# ---------------------------------------------------------------- naming

def run_name(method: str, seed: int) -> str:
    """The directory of one run of a comparison: `<method>-seed<N>`."""
    return f"{method}-seed{seed}"


def parse_run_name(name: str) -> tuple[str, int] | None:
    """(method, seed) of a directory named by run_name; None for any other name."""
    named = re.fullmatch(r"(.+)-seed(\d+)", name)
    return (named.group(1), int(named.group(2))) if named else None


# ---------------------------------------------------------------- reading and writing

def read_json(path: str | Path) -> dict:
    """A JSON record pkd wrote; unreadable is one DataError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None


def read_record(run_dir: str | Path) -> dict:
    """A run's run.json; {} for a directory that has none (a checkpoint that is not a pkd run)."""
    path = Path(run_dir) / RUN_FILE
    return read_json(path) if path.is_file() else {}


def model_record(model: str | Path | None) -> dict:
    """What a model directory records of how it was made: its run.json, or an export directory's export.json; {}
    when it has neither (a Hub name, a checkpoint made elsewhere)."""
    if model is None:
        return {}
    for name in (RUN_FILE, EXPORT_FILE):
        path = Path(model) / name
        if path.is_file():
            return read_json(path)
    return {}


def write_record(run_dir: str | Path, record: dict) -> None:
    write_json(Path(run_dir) / RUN_FILE, record)


def read_history(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl: one record per finished epoch ([] before the first)."""
    return read_jsonl(Path(run_dir) / METRICS_FILE)


def append_history(run_dir: str | Path, record: dict) -> None:
    append_jsonl(Path(run_dir) / METRICS_FILE, record)


def write_history(run_dir: str | Path, history: list[dict]) -> None:
    write_text(Path(run_dir) / METRICS_FILE, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))


def predictions_file(run_dir: str | Path, epoch: int) -> Path:
    """Where a run keeps an epoch's dev predictions (of the first dev part, the one that gives "score"), for the
    paired statistics of `pkd compare` (pkd.stats)."""
    return Path(run_dir) / "predictions" / f"dev-epoch{epoch}.npy"


def save_predictions(run_dir: str | Path, epoch: int, predictions: np.ndarray) -> None:
    with atomic_path(predictions_file(run_dir, epoch)) as tmp, open(tmp, "wb") as f:
        np.save(f, predictions)


def write_result(run_dir: str | Path, result: dict, params: dict | None = None, seconds: float | None = None,
                 resumed: bool = False) -> dict:
    """Mark a run finished: result.json, the one schema for distill, compare and sweep runs.

    Fields: the best epoch's metrics ("epoch", "score", each metric, ...), "best_epoch", "last" (the last epoch's
    metrics), "epochs" and "train_seconds" (the epochs logged and their summed time), "params" (a sweep trial's
    grid values, {} otherwise), "seconds" (a sweep trial's wall time, start-up included; None when not timed) and
    "resumed" (whether that time covers only the part after a resume)."""
    history = read_history(run_dir)
    record = {**result, "epochs": len(history),
              "train_seconds": round(sum(h.get("epoch_seconds", 0.0) for h in history), 2),
              "params": params or {}, "seconds": None if seconds is None else round(seconds, 1), "resumed": resumed}
    write_json(Path(run_dir) / RESULT_FILE, record)
    return record


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / RESULT_FILE).is_file()


def read_result(run_dir: str | Path) -> dict:
    """A finished run's result.json; for a run from before pkd wrote one, run.json's "result" ({} if neither)."""
    path = Path(run_dir) / RESULT_FILE
    if path.is_file():
        return read_json(path)
    return read_record(run_dir).get("result") or {}


def selected_record(run_dir: str | Path, select: str) -> dict:
    """A finished run's dev metrics ("epoch", "score", ...) at its best epoch (the one picked on dev, whose model
    is kept) or its last. A result.json from before the last epoch was recorded there: the last line of
    metrics.jsonl."""
    result = read_result(run_dir)
    if select == "best":
        return result
    return result.get("last") or read_history(run_dir)[-1]


def best_record(run_dir: str | Path) -> dict:
    """A run's best dev epoch: its recorded result, or while it runs (or from before it recorded one) the best
    line of metrics.jsonl ({} for a checkpoint that is not a pkd run)."""
    history = read_history(run_dir)
    return read_result(run_dir) or max(history, key=lambda h: h.get("score", float("-inf")), default={})


# ---------------------------------------------------------------- checkpoints

def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The complete checkpoints of a run directory, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    done = [p for p in root.glob("step-*") if (p / CHECKPOINT_DONE).is_file()] if root.is_dir() else []
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def has_checkpoints(run_dir: str | Path) -> bool:
    """Whether a run was started and left checkpoints (complete or not): a run that will resume."""
    return (Path(run_dir) / CHECKPOINTS).is_dir()


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints; remove everything else under checkpoints/ (older ones, a
    killed write's temporary folder), and the folder itself when nothing is kept."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return
    kept = set(checkpoints(run_dir)[-keep:]) if keep > 0 else set()
    for entry in root.iterdir():
        if entry not in kept:
            shutil.rmtree(entry, ignore_errors=True)
    if not kept:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- resume and --out checks

# run.json entries that do not change what a run computes, so a resumed run may differ in them: bookkeeping, where
# the cache and data files lie (the data's content is data_fingerprint, an unlabelled file's its sha256), and
# checkpoint and evaluation batching.
RESUME_FREE = ("versions", "cache", "num_processes", "command", "teacher_score", "floor_score", "sweep", "result",
               "data", "train.keep_checkpoints", "train.save_every", "train.eval_batch_size", "pt_signal",
               "augment.unlabelled_file")
# Settings added after runs were already made: the value such an older run.json implies by leaving them out, so
# resuming it with another value is refused by name too.
RESUME_IMPLIED = {"loss.pt_pooling": "cls"}


def flatten(record: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-3}} -> {"train.lr": 1e-3}."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resume(out: str | Path, record: dict) -> dict | None:
    """The run.json in `out` (None if there is none), after checking that it was made with the settings in
    `record`: resuming a run with other settings would mix two configurations in one result, so a difference is
    one usage error naming the differing keys, before anything is written. Keys that only one side has (an older
    run.json, a partial record) and the RESUME_FREE ones are not compared."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read ({type(e).__name__}); use another --out or --overwrite") from None
    old, new = flatten(stored), flatten(json.loads(json.dumps(record, default=str)))
    old = {**{k: v for k, v in RESUME_IMPLIED.items() if k in new}, **old}
    free = [k for k in old.keys() & new.keys() if any(k == f or k.startswith(f"{f}.") for f in RESUME_FREE)]
    differ = sorted(k for k in old.keys() & new.keys() if old[k] != new[k] and k not in free)
    if differ:
        shown = ", ".join(f"{k} {old[k]!r} (now {new[k]!r})" for k in differ[:8])
        raise UsageError(f"--resume {out}: its run was made with other settings: {shown}"
                         f"{' and more' if len(differ) > 8 else ''}; resume with the same settings, or use another "
                         "--out (or --overwrite)")
    return stored


# The files by which pkd recognises a directory it wrote: a run, comparison, sweep, export or teacher cache entry.
PKD_MARKERS = (RUN_FILE, COMPARE_FILE, SWEEP_FILE, EXPORT_FILE, "meta.json")


def written_by_pkd(directory: str | Path) -> bool:
    """Whether `directory` holds one of pkd's marker files (PKD_MARKERS): the only directories --overwrite
    replaces."""
    return any((Path(directory) / name).is_file() for name in PKD_MARKERS)


def check_out_location(out: str | Path, inputs: Sequence[tuple[str, str | Path | None]] = (),
                       nests: Sequence[tuple[str, str | Path | None]] = ()) -> None:
    """Refuse, whatever the flags, an --out that overlaps what the command reads, since writing there (and an
    --overwrite) would change or delete it: one that is or contains the working directory; one that is, contains
    or lies inside one of `inputs` ((option, path) pairs: the teacher, --student-base, a data file or directory);
    one that is or contains one of `nests` (directories pkd keeps that an --out may live inside: the teacher
    cache, and for an export the run it comes from, as `compare --export` writes RUN/export-int8). Names that
    are not local paths, such as Hub names, are skipped."""
    target = Path(out).resolve()
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        raise UsageError(f"--out {out}: is or contains the working directory ({cwd}); name a new directory "
                         "for pkd's output, such as runs/NAME")
    for group, inside in ((inputs, True), (nests, False)):
        for option, path in group:
            if not path or not Path(path).exists():
                continue
            kept = Path(path).resolve()
            where = ("is" if target == kept else "contains" if target in kept.parents else
                     "lies inside" if inside and kept in target.parents else None)
            if where:
                raise UsageError(f"--out {out}: {where} {option} ({path}); write pkd's output elsewhere, such as "
                                 "runs/NAME")


def check_out_dir(out: str | Path, overwrite: bool = False, resume: bool = False,
                  inputs: Sequence[tuple[str, str | Path | None]] = (),
                  nests: Sequence[tuple[str, str | Path | None]] = ()) -> Path:
    """Refuse a non-empty output directory unless asked to overwrite it or resume in it; an --overwrite of one pkd
    did not write (written_by_pkd); an --out that overlaps what the command reads (check_out_location); and one
    that another process is writing to. Call it early, on every rank: prepare_out_dir's lock is taken after it
    (pkd.dist's prepare_out_dir_once waits for every rank first)."""
    check_out_location(out, inputs, nests)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    filled = out.exists() and any(out.iterdir())
    if filled and not (resume or overwrite):
        raise UsageError(f"--out {out}: directory exists and is not empty (pass --overwrite to replace it)")
    if filled and overwrite and not resume and not written_by_pkd(out):
        raise UsageError(f"--out {out}: --overwrite replaces only a directory pkd wrote (one with "
                         f"{', '.join(PKD_MARKERS)}), and this one has none; nothing was touched: remove it "
                         "yourself or choose another --out")
    if out.is_dir() and fcntl is not None and out.resolve() not in _HELD:
        fd = os.open(out, os.O_RDONLY)
        try:  # a shared lock: probes do not conflict with each other, only with a writer's exclusive one
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(_held_elsewhere(out)) from None
        finally:
            os.close(fd)
    return out


def _held_elsewhere(out: Path) -> str:
    return (f"--out {out}: another process is writing to it (a pkd command still running there?); wait for it to "
            "end, or use another --out")


def prepare_out_dir(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create the output directory just before the first write, clearing it for --overwrite, and hold its lock
    (refused if another process holds it) until the command returns (releases_out_dirs)."""
    out = check_out_dir(out, overwrite, resume)
    if out.exists():
        hold_out_dir(out)  # before --overwrite deletes what another process may be writing
        if overwrite and not resume:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    hold_out_dir(out)
    return out


def hold_out_dir(out: Path) -> None:
    """Lock the directory `out` for this process; again for the same directory, nothing. A usage error if another
    process holds it."""
    if fcntl is None:
        return
    path = out.resolve()
    held = _HELD.get(path)
    if held is not None:
        now, then = os.stat(path), os.fstat(held)
        if (now.st_dev, now.st_ino) == (then.st_dev, then.st_ino):
            return
        os.close(_HELD.pop(path))  # deleted (--overwrite) and made again: lock the new one
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(_held_elsewhere(out)) from None
    _HELD[path] = fd


def releases_out_dirs(command: _F) -> _F:
    """Decorates a command: the directories it locked are unlocked when it returns or raises, so that the same
    process (a notebook, a test) or another one may use them next."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = set(_HELD)
        try:
            return command(*args, **kwargs)
        finally:
            for path in set(_HELD) - before:
                os.close(_HELD.pop(path))
    return wrapper  # type: ignore[return-value]


def library_versions() -> dict[str, str]:
    """What run.json and export.json record of the software that made them."""
    import accelerate
    import datasets
    import torch
    import transformers

    from pkd.version import __version__

    return {
        "pkd": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "datasets": datasets.__version__,
    }
