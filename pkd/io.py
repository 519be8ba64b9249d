"""File I/O: atomic file and directory writes, run directories and run metadata, and the two ways data is read
(a local file's bytes and lines, a Hub dataset).
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pkd.errors import DataError, UsageError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the result should look like any other file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Rewrite the whole file atomically: metrics files are small, and a crash must never leave half a line."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text(path, old + json.dumps(obj, sort_keys=True, default=str) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        for f in tmp.rglob("*"):  # some writers (safetensors, onnx tools) make private files
            if f.is_file() and not f.is_symlink():
                os.chmod(f, 0o666 & ~_UMASK)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_out_dir(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Refuse a non-empty output directory unless asked to overwrite it or resume in it. Call it early."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise UsageError(f"--out {out}: directory exists and is not empty (pass --overwrite to replace it)")
    return out


def prepare_out_dir(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """Create the output directory just before the first write, clearing it for --overwrite."""
    out = check_out_dir(out, overwrite, resume)
    if out.exists() and overwrite and not resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def library_versions() -> dict[str, str]:
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


# ---------------------------------------------------------------- reading data


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


def load_hub_split(name: str, config: str, part: str, hub_split: str):
    """datasets.load_dataset, with any failure (no network, no such dataset) as one line naming our split."""
    import datasets

    try:
        return datasets.load_dataset(name, config, split=hub_split)
    except Exception as e:
        raise DataError(f"{name} {config} {part}: cannot load from the Hub "
                        f"({type(e).__name__}); pass --data-dir or set PKD_DATA") from None
