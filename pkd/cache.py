"""The teacher-output cache: one no-grad pass of the teacher over the training split.

It stores the teacher's logits and the PT targets of only the mapped layers (the [CLS] vector, or with
pooling "mean" the attention-masked mean of the tokens; pkd.patient), in fp16, as memory-mapped
.npy arrays indexed by example: logits [n, C] and cls [n, L, H], or for multiple choice (RACE) logits
[n, choices] and cls [n, choices, L, H], one [CLS] vector per choice. An array whose values do not fit in fp16
(|x| > 65504) is stored in float32 instead: fp16 would make them inf, and the only symptom would be a
non-finite loss later. Its directory name is a fingerprint
of everything that determines its contents (teacher weights, tokenizer, data file, max_seq_len, pooling, layers), so
a change of any of them gives a new cache instead of a stale one; a cache that holds more layers than asked for
serves the request. A cache of logits only (KD, or a PT weight beta of 0) is keyed without pooling, and any cache of
the same inputs serves a logits-only request whatever its pooling. It is built under a temporary name and renamed
into place when complete: a killed build is never used. Its files' sizes are checked when it is opened, and their
SHA-256 checksums on demand (`pkd cache --verify`). Its meta.json also records how much each stored layer's targets
vary across the training examples (pkd.patient), the number a run checks before it trains. The training split it
covers may end in rows only the teacher labels (--unlabelled-file, --augment: pkd.augment), whose settings and
texts are in the split's fingerprint: the teacher labels each of them once, here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from filelock import FileLock

from pkd import dist
from pkd.encoding import EncodedSplit, longest_first_loader, make_collator, model_inputs
from pkd.errors import DataError
from pkd.io import atomic_dir, write_json
from pkd.models import model_fingerprint, pooled_states, tokenizer_fingerprint
from pkd.patient import Spread
from pkd.progress import show_progress

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

FORMAT_VERSION = 3  # 2: an array may be float32 where fp16 overflows; 3: pooled targets, their spread in meta
FP16_MAX = float(np.finfo(np.float16).max)


def default_cache_root() -> Path:
    return Path(os.environ.get("PKD_CACHE", Path.home() / ".cache" / "pkd" / "teacher"))


def _key_inputs(teacher: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, data_fingerprint: str,
                max_seq_len: int, pooling: str | None) -> dict:
    return {"version": FORMAT_VERSION, "teacher": model_fingerprint(teacher),
            "tokenizer": tokenizer_fingerprint(tokenizer), "data": data_fingerprint, "max_seq_len": max_seq_len,
            "pooling": pooling}


def _key(inputs: dict, layers: list[int]) -> str:
    blob = json.dumps({**inputs, "layers": sorted(layers)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _wider_cache(root: Path, inputs: dict, layers: list[int]) -> Path | None:
    """A complete cache of the same teacher, tokenizer, data and max_seq_len that stores more layers.

    Its name is recomputed from those inputs and its own layer list, so only a true superset matches; KD
    (logits only) and PKD-Skip then share PKD-Last's or a full-depth cache instead of running the teacher again.
    """
    if not root.is_dir():
        return None
    for meta_file in sorted(root.glob("*/meta.json")):
        try:
            meta = json.loads(meta_file.read_text())
            stored = meta["layers"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        # Without PT layers only the logits are read, and no pooling changes them: any pooling's cache serves.
        candidate = inputs if layers else {**inputs, "pooling": meta.get("pooling")}
        if set(layers) <= set(stored) and meta_file.parent.name == _key(candidate, stored):
            return meta_file.parent
    return None


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class RowFile:
    """One .npy array [n, *row] read and written by rows with positioned reads and writes (os.pread, os.pwrite).

    Why not a memory map: every page of a map that the process writes or reads stays in its resident set (RssFile)
    until the map is closed, so building a cache through np.memmap grew the build's peak RSS by the whole cache
    (2,870 MB for 900,000 rows of a 2-layer teacher, issue 35), and an epoch of random batches maps all of it again.
    Positioned I/O leaves those pages in the kernel's page cache, which is not the process's and which the kernel
    writes back and frees under pressure; a batch's rows cost one small read each. (os.pread and os.pwrite are
    POSIX calls: Linux and macOS, which pkd runs on.)
    """

    def __init__(self, path: str | Path, mode: str = "r"):
        self.path, self.fd = Path(path), -1
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            self.shape, fortran, self.dtype = read_header(f)
            self.offset = f.tell()
        if fortran:
            raise ValueError(f"{self.path}: a Fortran-ordered array")
        self.row_shape = self.shape[1:]
        self.row_bytes = self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))
        self.fd = os.open(self.path, os.O_RDWR if mode == "w" else os.O_RDONLY)

    @classmethod
    def create(cls, path: str | Path, shape: tuple[int, ...], dtype: np.dtype | type) -> RowFile:
        """A new file of `shape`, zero-filled (sparse) until its rows are written."""
        # open_memmap writes the header numpy's loaders expect and sizes the file; nothing else is touched
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        del header
        return cls(path, mode="w")

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()

    def write(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Row rows[i] := values[i]."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        for r, v in zip(rows.tolist(), values, strict=True):
            os.pwrite(self.fd, v.tobytes(), self.offset + r * self.row_bytes)

    def write_block(self, start: int, values: np.ndarray) -> None:
        """Rows start, start + 1, ... := values, in one write."""
        data = np.ascontiguousarray(values, dtype=self.dtype).tobytes()
        os.pwrite(self.fd, data, self.offset + start * self.row_bytes)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows [len(rows), *row], in the order asked."""
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        for i, r in enumerate(np.asarray(rows).tolist()):
            flat[i] = np.frombuffer(os.pread(self.fd, self.row_bytes, self.offset + r * self.row_bytes), np.uint8)
        return out

    def chunks(self, size: int = 4096) -> Iterator[np.ndarray]:
        """Every row in order, `size` rows at a time."""
        for start in range(0, len(self), size):
            stop = min(start + size, len(self))
            data = os.pread(self.fd, (stop - start) * self.row_bytes, self.offset + start * self.row_bytes)
            yield np.frombuffer(data, dtype=self.dtype).reshape(stop - start, *self.row_shape)


def stored_spreads(file: RowFile, layers: list[int], columns: list[int] | None = None) -> dict[int, float]:
    """Teacher layer -> c of its stored targets (pkd.patient), read from `file` ([n, L, H], multiple choice
    [n, choices, L, H]) in chunks; columns: each layer's position along L (default: layers' order)."""
    columns = list(range(len(layers))) if columns is None else columns
    spreads = {k: Spread() for k in layers}
    for chunk in file.chunks():
        for k, i in zip(layers, columns, strict=True):
            spreads[k].add(chunk[..., i, :])
    return {k: s.value for k, s in spreads.items()}


class TeacherCache:
    """Cached teacher outputs for one split; `outputs` has the same signature as LiveTeacher's."""

    def __init__(self, path: str | Path, verify: bool = False):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise DataError(f"{self.path}: not a complete teacher cache (no meta.json)")
        try:
            self.meta = json.loads(meta_file.read_text())
            for name in ("logits", "cls"):
                file, digest = self.path / f"{name}.npy", self.meta["sha256"][name]
                # Every open checks each file's size against the build's; hashing every byte costs a read of the
                # whole cache (docs/performance.md), so it is done on demand (verify: `pkd cache --verify`), when
                # the size is off, and for a cache built before sizes were recorded.
                size = self.meta.get("bytes", {}).get(name)
                if (verify or size is None or file.stat().st_size != size) and sha256_of(file) != digest:
                    raise DataError(f"{file}: checksum mismatch, the cache is corrupted; delete {self.path}")
            self.logit_rows, self.cls_rows = RowFile(self.path / "logits.npy"), RowFile(self.path / "cls.npy")
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{self.path}: corrupted teacher cache ({type(e).__name__}); delete it") from None
        self.layers: list[int] = self.meta["layers"]
        self.pooling: str | None = self.meta.get("pooling", "cls")  # None: logits only
        if len(self.logit_rows) != self.meta["num_examples"] or len(self.cls_rows) != self.meta["num_examples"]:
            raise DataError(f"{self.path}: cache holds {len(self.logit_rows)} examples, "
                            f"meta says {self.meta['num_examples']}; delete it")

    def __len__(self) -> int:
        return self.meta["num_examples"]

    @property
    def logits(self) -> np.ndarray:
        """The whole logits array, memory-mapped, to inspect (batches read their rows through RowFile, no map)."""
        return np.load(self.path / "logits.npy", mmap_mode="r")

    @property
    def cls(self) -> np.ndarray:
        """The whole PT-target array, memory-mapped, to inspect."""
        return np.load(self.path / "cls.npy", mmap_mode="r")

    def spreads(self, layers: list[int]) -> dict[int, float]:
        """Teacher layer -> mean pairwise cosine of its stored targets over the training examples (pkd.patient)."""
        stored = self.meta.get("spread") or {}
        missing = [k for k in layers if str(k) not in stored]  # a cache built before the spread was recorded
        measured = stored_spreads(self.cls_rows, missing, [self.layers.index(k) for k in missing]) if missing else {}
        return {k: stored[str(k)] if str(k) in stored else measured[k] for k in layers}

    def outputs(self, batch: dict, layers: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = batch["idx"].cpu().numpy()
        device = batch["input_ids"].device
        logits = torch.from_numpy(self.logit_rows.read(idx).astype(np.float32)).to(device)
        if not layers:
            return logits, None
        cols = [self.layers.index(k) for k in layers]
        cls = torch.from_numpy(self.cls_rows.read(idx)[..., cols, :].astype(np.float32)).to(device)
        return logits, cls


class LiveTeacher:
    """Runs the teacher on every batch (`--live-teacher`): what the cache replaces, kept to measure what the cache
    saves and to check that both train the same student (up to the cache's fp16 rounding)."""

    def __init__(self, teacher: torch.nn.Module, pooling: str = "cls", inputs: EncodedSplit | None = None,
                 tokenizer: PreTrainedTokenizerBase | None = None):
        """inputs, tokenizer: the training split as the teacher reads it, for a student with a vocabulary of its
        own (its batches' input ids mean nothing to the teacher); the teacher's batch is made from it by `idx`."""
        self.teacher, self.pooling = teacher.eval(), pooling
        self.inputs, self.collate = inputs, (make_collator(tokenizer) if inputs is not None else None)

    @torch.no_grad()
    def outputs(self, batch: dict, layers: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = batch["input_ids"].device
        if next(self.teacher.parameters()).device != device:  # the training loop put the batches on its device
            self.teacher.to(device)
        if self.inputs is not None:
            rows = self.collate([self.inputs[i] for i in batch["idx"].tolist()])
            batch = {k: v.to(device) for k, v in rows.items()}
        return teacher_forward(self.teacher, batch, layers, self.pooling)


def teacher_forward(teacher: torch.nn.Module, batch: dict, layers: list[int],
                    pooling: str | None = "cls") -> tuple[torch.Tensor, torch.Tensor | None]:
    """The teacher's logits [B, C] and its PT targets of `layers` [B, L, H] (None without layers)."""
    out = teacher(**model_inputs(batch), output_hidden_states=bool(layers))
    if not layers:
        return out.logits.float(), None
    return out.logits.float(), pooled_states(out.hidden_states, layers, batch["input_ids"],
                                             batch.get("attention_mask"), pooling).float()


def build_lock(root: str | Path) -> Path:
    """The lock file of a cache root: in the system's temporary directory, named by the root's absolute path, so
    that it leaves nothing in the root."""
    name = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"pkd-cache-{name}.lock"


def _one_process_at_a_time(ensure: Callable[..., TeacherCache]) -> Callable[..., TeacherCache]:
    """Processes that open or build caches in one root (two terminals, two sweeps) take turns under a file lock:
    a second one waits while the first builds, then finds the cache and opens it instead of building it again,
    and a rebuild never replaces a cache while another process opens it. The lock serialises the processes of
    one machine; under `accelerate launch`, rank 0 holds it for every rank."""

    @functools.wraps(ensure)
    def locked(*args, **kwargs) -> TeacherCache:
        if dist.launched() and dist.state().process_index != 0:
            return ensure(*args, **kwargs)
        root = inspect.signature(ensure).bind(*args, **kwargs).arguments.get("cache_root") or default_cache_root()
        with FileLock(build_lock(root)):
            return ensure(*args, **kwargs)

    return locked


@_one_process_at_a_time
def ensure_cache(teacher: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, data: EncodedSplit, max_seq_len: int,
                 layers: list[int], cache_root: str | Path | None = None, batch_size: int = 128,
                 device: str | None = None, rebuild: bool = False, pooling: str | None = "cls") -> TeacherCache:
    """Open the cache for these inputs, building it first if it does not exist yet.

    Under `accelerate launch` the build is sharded: each rank runs the teacher over its own contiguous slice of
    the examples into the one temporary directory, rank 0 joins the shards, writes meta.json and renames the
    directory into place, and only then does any rank open it. The result is an ordinary cache, the same as a
    single process builds, readable by any number of ranks. (Across nodes, --cache-dir must be shared.)
    """
    layers = sorted(set(layers))
    root = Path(cache_root) if cache_root else default_cache_root()
    pooling = pooling if layers else None  # logits only (KD, or beta 0): one cache whatever --pt-pooling says
    inputs = _key_inputs(teacher, tokenizer, data.split.fingerprint, max_seq_len, pooling)
    path = root / _key(inputs, layers)
    if not rebuild:  # rank 0 decides for everyone
        found = dist.broadcast(str(path) if path.exists() else str(_wider_cache(root, inputs, layers) or ""))
        if found:
            return TeacherCache(found)
    rank, world = (dist.state().process_index, dist.state().num_processes) if dist.launched() else (0, 1)
    if device is None:
        device = dist.state().device if dist.launched() else ("cuda" if torch.cuda.is_available() else "cpu")
    teacher = teacher.to(device).eval()
    with (atomic_dir(path) if rank == 0 else contextlib.nullcontext()) as tmp:
        tmp = Path(dist.broadcast(str(tmp) if rank == 0 else None))
        if not tmp.is_dir():
            raise DataError(f"{root}: the teacher cache directory is not shared by every rank; put --cache-dir on a "
                            "shared filesystem, or build the cache with `pkd cache` on each node first")
        lo, hi = len(data) * rank // world, len(data) * (rank + 1) // world
        _write_shard(teacher, tokenizer, torch.utils.data.Subset(data, range(lo, hi)), layers, device, batch_size,
                     tmp, "" if world == 1 else f".{rank:05d}", progress=rank == 0, pooling=pooling)
        dist.barrier()  # every shard is complete
        if rank == 0:
            if world > 1:
                _join_shards(tmp, world, len(data))
            if not (tmp / "logits.npy").is_file():
                raise DataError("teacher cache: the training split has no examples")
            spread = {str(k): c for k, c in stored_spreads(RowFile(tmp / "cls.npy"), layers).items()}
            write_json(tmp / "meta.json", {
                "version": FORMAT_VERSION, "layers": layers, "num_examples": len(data), "max_seq_len": max_seq_len,
                "pooling": pooling, "spread": spread,
                "data": data.split.source, "data_fingerprint": data.split.fingerprint, "shards": world,
                "teacher_only": data.split.teacher_only,
                "dtype": {n: str(RowFile(tmp / f"{n}.npy").dtype) for n in ("logits", "cls")},
                "sha256": {n: sha256_of(tmp / f"{n}.npy") for n in ("logits", "cls")},
                "bytes": {n: (tmp / f"{n}.npy").stat().st_size for n in ("logits", "cls")}})
    dist.barrier()  # the cache is in place before anyone opens it
    return TeacherCache(path)


def _write_shard(teacher: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, data: torch.utils.data.Dataset,
                 layers: list[int], device: str | torch.device, batch_size: int, tmp: Path, suffix: str,
                 progress: bool, pooling: str | None = "cls") -> None:
    """The teacher's outputs for `data` as logits<suffix>.npy and cls<suffix>.npy; nothing for an empty slice.

    The examples run longest first, in batches of similar length (far less padding than in file order), and
    each output row is written at its example's position, so the files are in the data's order. Attention masks
    make an example's outputs independent of what it is batched with, up to float rounding.
    """
    loader = longest_first_loader(data, tokenizer, batch_size)
    order = loader.dataset.indices  # each batch row's position in `data`
    logits_arr = cls_arr = None
    start = 0
    with torch.inference_mode():
        for batch in show_progress(loader, len(loader), "teacher cache", disable=not progress):
            batch = {k: v.to(device) for k, v in batch.items()}
            logits, cls = teacher_forward(teacher, batch, layers, pooling)
            if cls is None:  # FT/KD need no hidden states; keep a zero-width array for one layout
                cls = logits.new_zeros(*batch["input_ids"].shape[:-1], 0, 1)
            if logits_arr is None:
                logits_arr = RowFile.create(tmp / f"logits{suffix}.npy", (len(data), *logits.shape[1:]), np.float16)
                cls_arr = RowFile.create(tmp / f"cls{suffix}.npy", (len(data), *cls.shape[1:]), np.float16)
            rows = np.asarray(order[start:start + logits.shape[0]])
            logits, cls = logits.cpu().numpy(), cls.cpu().numpy()
            finite = np.isfinite(logits.reshape(len(rows), -1)).all(1) & np.isfinite(cls.reshape(len(rows), -1)).all(1)
            if not finite.all():
                bad = int(batch["idx"][int(np.argmin(finite))])
                raise DataError(f"teacher cache: the teacher's outputs are not finite for example {bad} of the "
                                "training split; check the teacher checkpoint")
            logits_arr = _fit(logits_arr, logits)
            cls_arr = _fit(cls_arr, cls)
            logits_arr.write(rows, logits)
            cls_arr.write(rows, cls)
            start += len(rows)
    if start != len(data):
        raise DataError(f"teacher cache: wrote {start} of {len(data)} examples")
    for arr in (logits_arr, cls_arr):
        if arr is not None:
            arr.close()


def _fit(arr: RowFile, values: np.ndarray) -> RowFile:
    """`arr`, or a float32 copy of it (same file; the rows written so far kept) when `values` do not fit in fp16."""
    if arr.dtype != np.float16 or values.size == 0 or np.abs(values).max() <= FP16_MAX:
        return arr
    wide = RowFile.create(arr.path.with_name(f"wide.{arr.path.name}"), arr.shape, np.float32)
    _copy_rows(arr, wide, 0)
    arr.close()
    wide.path.replace(arr.path)
    wide.path = arr.path
    return wide


def _copy_rows(src: RowFile, dst: RowFile, start: int) -> None:
    """src's rows into dst from row `start` on, a chunk at a time."""
    for chunk in src.chunks():
        dst.write_block(start, chunk)
        start += len(chunk)


def _join_shards(tmp: Path, world: int, total: int) -> None:
    """logits.npy and cls.npy from the ranks' shards, in rank order (a single one is just renamed)."""
    for name in ("logits", "cls"):
        shards = [p for p in (tmp / f"{name}.{r:05d}.npy" for r in range(world)) if p.is_file()]
        if not shards:
            raise DataError("teacher cache: the training split has no examples")
        if len(shards) == 1:
            shards[0].replace(tmp / f"{name}.npy")
            continue
        parts = [RowFile(p) for p in shards]
        dtype = np.result_type(*(a.dtype for a in parts))  # float32 if any rank had to widen its shard
        joined = RowFile.create(tmp / f"{name}.npy", (sum(len(a) for a in parts), *parts[0].row_shape), dtype)
        start = 0
        for a in parts:
            _copy_rows(a, joined, start)
            start += len(a)
            a.close()
        joined.close()
        for p in shards:
            p.unlink()
    if (n := len(RowFile(tmp / "logits.npy"))) != total:
        raise DataError(f"teacher cache: the shards hold {n} of {total} examples")
