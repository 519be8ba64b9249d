"""The teacher-output cache: one no-grad pass of the teacher over the training split.

It stores the teacher's logits and the [CLS] vectors of only the mapped layers, in fp16, as memory-mapped
.npy arrays indexed by example. Its directory name is a fingerprint of everything that determines its
contents (teacher weights, tokenizer, data file, max_seq_len, layers), so a change of any of them gives a
new cache instead of a stale one. It is built under a temporary name and renamed into place when complete,
and its checksums are verified when it is opened: a killed build or a damaged file is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from pkd.errors import DataError
from pkd.io import atomic_dir, write_json
from pkd.models import EncodedSplit, make_collator, model_fingerprint, tokenizer_fingerprint

FORMAT_VERSION = 1


def default_cache_root() -> Path:
    return Path(os.environ.get("PKD_CACHE", Path.home() / ".cache" / "pkd" / "teacher"))


def cache_key(teacher: torch.nn.Module, tokenizer, data_fingerprint: str, max_seq_len: int,
              layers: list[int]) -> str:
    blob = json.dumps({"version": FORMAT_VERSION, "teacher": model_fingerprint(teacher),
                       "tokenizer": tokenizer_fingerprint(tokenizer), "data": data_fingerprint,
                       "max_seq_len": max_seq_len, "layers": sorted(layers)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


class TeacherCache:
    """Cached teacher outputs for one split; `outputs` has the same signature as LiveTeacher's."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise DataError(f"{self.path}: not a complete teacher cache (no meta.json)")
        try:
            self.meta = json.loads(meta_file.read_text())
            for name in ("logits", "cls"):
                file = self.path / f"{name}.npy"
                if _sha256(file) != self.meta["sha256"][name]:
                    raise DataError(f"{file}: checksum mismatch, the cache is corrupted; delete {self.path}")
            self.logits = np.load(self.path / "logits.npy", mmap_mode="r")
            self.cls = np.load(self.path / "cls.npy", mmap_mode="r")
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{self.path}: corrupted teacher cache ({type(e).__name__}); delete it") from None
        self.layers: list[int] = self.meta["layers"]
        if self.logits.shape[0] != self.meta["num_examples"] or self.cls.shape[0] != self.meta["num_examples"]:
            raise DataError(f"{self.path}: cache holds {self.logits.shape[0]} examples, "
                            f"meta says {self.meta['num_examples']}; delete it")

    def __len__(self) -> int:
        return self.meta["num_examples"]

    def outputs(self, batch: dict, layers: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = batch["idx"].cpu().numpy()
        device = batch["input_ids"].device
        logits = torch.from_numpy(np.asarray(self.logits[idx], dtype=np.float32)).to(device)
        if not layers:
            return logits, None
        cols = [self.layers.index(k) for k in layers]
        cls = torch.from_numpy(np.asarray(self.cls[idx][..., cols, :], dtype=np.float32)).to(device)
        return logits, cls


class LiveTeacher:
    """Runs the teacher on every batch: what the cache replaces; kept for comparison and for augmented data."""

    def __init__(self, teacher: torch.nn.Module):
        self.teacher = teacher.eval()

    @torch.no_grad()
    def outputs(self, batch: dict, layers: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        return teacher_forward(self.teacher, batch, layers)


def teacher_forward(teacher: torch.nn.Module, batch: dict, layers: list[int]):
    inputs = {k: v for k, v in batch.items() if k not in ("idx", "labels")}
    out = teacher(**inputs, output_hidden_states=bool(layers))
    if not layers:
        return out.logits.float(), None
    # hidden_states[0] is the embedding output, hidden_states[k] the output of layer k; [CLS] is position 0.
    cls = torch.stack([out.hidden_states[k][:, 0] for k in layers], dim=-2)
    return out.logits.float(), cls.view(*out.logits.shape[:-1], len(layers), -1).float()


def ensure_cache(teacher: torch.nn.Module, tokenizer, data: EncodedSplit, max_seq_len: int, layers: list[int],
                 cache_root: str | Path | None = None, batch_size: int = 128, device: str | None = None,
                 rebuild: bool = False) -> TeacherCache:
    """Open the cache for these inputs, building it first if it does not exist yet."""
    layers = sorted(set(layers))
    root = Path(cache_root) if cache_root else default_cache_root()
    path = root / cache_key(teacher, tokenizer, data.split.fingerprint, max_seq_len, layers)
    if path.exists() and not rebuild:
        return TeacherCache(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    teacher = teacher.to(device).eval()
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False,
                                         collate_fn=make_collator(tokenizer))
    with atomic_dir(path) as tmp:
        logits_arr = cls_arr = None
        start = 0
        with torch.no_grad():
            for batch in tqdm(loader, desc="teacher cache", unit="batch", dynamic_ncols=True):
                batch = {k: v.to(device) for k, v in batch.items()}
                logits, cls = teacher_forward(teacher, batch, layers)
                if cls is None:  # FT/KD need no hidden states; keep a zero-width array for one layout
                    cls = logits.new_zeros(*logits.shape[:-1], 0, 1)
                if logits_arr is None:
                    logits_arr = np.lib.format.open_memmap(tmp / "logits.npy", mode="w+", dtype=np.float16,
                                                           shape=(len(data), *logits.shape[1:]))
                    cls_arr = np.lib.format.open_memmap(tmp / "cls.npy", mode="w+", dtype=np.float16,
                                                        shape=(len(data), *cls.shape[1:]))
                end = start + logits.shape[0]
                logits_arr[start:end] = logits.cpu().numpy()
                cls_arr[start:end] = cls.cpu().numpy()
                start = end
        if start != len(data):
            raise DataError(f"teacher cache: wrote {start} of {len(data)} examples")
        logits_arr.flush()
        cls_arr.flush()
        del logits_arr, cls_arr
        write_json(tmp / "meta.json", {
            "version": FORMAT_VERSION, "layers": layers, "num_examples": len(data), "max_seq_len": max_seq_len,
            "data": data.split.source, "data_fingerprint": data.split.fingerprint,
            "sha256": {n: _sha256(tmp / f"{n}.npy") for n in ("logits", "cls")}})
    return TeacherCache(path)
