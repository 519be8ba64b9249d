"""File I/O: atomic file and directory writes (a crash never leaves half a file, and files keep normal modes), and
the two ways data is read (a local file's bytes and lines, a Hub dataset). What goes into a run directory is
pkd.rundir's.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pkd.errors import DataError

if TYPE_CHECKING:
    import datasets

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


def normal_modes(tree: Path) -> None:
    """Give `tree` and everything in it the modes the umask gives new files (0644 and 0755 under umask 022).

    mkdtemp makes directories private, and safetensors' save_file (so save_pretrained too) writes 0600 files:
    a model another user or a serving process cannot read.
    """
    os.chmod(tree, 0o777 & ~_UMASK)
    for root, dirs, files in os.walk(tree):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~_UMASK)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~_UMASK)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        normal_modes(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_files(directory: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `directory`'s files; when the block succeeds, move each file written
    there into `directory` (each one atomically, with normal modes) and remove the temporary directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".files.", suffix=".tmp", dir=directory))
    try:
        yield tmp
        normal_modes(tmp)
        for f in tmp.iterdir():
            os.replace(f, directory / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def load_hub_split(name: str, config: str, part: str, hub_split: str) -> datasets.Dataset:
    """datasets.load_dataset, with any failure (no network, no such dataset) as one line naming our split."""
    import datasets

    try:
        return datasets.load_dataset(name, config, split=hub_split)
    except Exception as e:
        raise DataError(f"{name} {config} {part}: cannot load from the Hub "
                        f"({type(e).__name__}); pass --data-dir or set PKD_DATA") from None
