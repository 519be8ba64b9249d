"""Examples as model inputs: tokenized splits, their batches, and the order evaluation runs them in.

The data layer between pkd.data (examples read from files) and the models: training, evaluation, the teacher
cache, the patient probe and the export's parity batch all encode and batch through here, so that they pad and
truncate alike and agree on what a batch carries besides the model's inputs (idx, each example's position in
its split, which the teacher cache and evaluation index by; labels; and in a training split with teacher-only
rows (pkd.augment), labelled: 1 for a gold-labelled example, 0 for one only the teacher labels, whose labels are a
placeholder that the loss never reads).

Layout. A split is tokenised CHUNK examples at a time, and each tokenizer field (input_ids, attention_mask,
token_type_ids where the tokenizer has them) is packed into one flat numpy array: the sequences end to end, in
the narrowest integer type that holds the field's values (uint8 for masks and segment ids, uint16 for a
vocabulary under 65,536, else int32), with one int64 offsets array [rows + 1] shared by the fields; sequence r
is field[offsets[r]:offsets[r + 1]]. A multiple-choice example (RACE) is NUM_CHOICES consecutive rows. An item
is unpacked when it is asked for, in the shape the tokenizer gives (lists of ints; for multiple choice a list of
int32 arrays per field), so batches are what tokenising the whole split at once gave, bit for bit.

Why: a Python int above 256 is a 28-byte object plus its 8-byte slot in a list, so per-example dicts of lists cost
about 36 bytes a token a field, and the tokenizer's output for the whole split (lists and encodings) existed at
the same time. For 50,000 texts of 10-40 words (30 tokens each with all-MiniLM-L6-v2's tokenizer) that added 376 MB
of peak RSS (the issue measured 393 MB: 7.7 GB per million rows). Packed, a token costs 4 bytes over its three
fields (2 + 1 + 1) and an example 8 bytes of offsets: 6.4 MB of arrays for those 50,000 texts, 27 MB of peak RSS
with a chunk's lists on top (chunks of 10,000: 155 MB), in about the same time (5-8 s either way on the loaded
2-core machine; the tokenizer's own work is most of it, the packing about 10%). tests/test_encoding.py bounds
the kept and the peak memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from pkd.data import load_split
from pkd.race import NUM_CHOICES, encode_choices
from pkd.tasks import Split, Task

# What a batch carries that the model does not take.
NOT_MODEL_INPUTS = ("idx", "labels", "labelled")
CHUNK = 1_000  # examples tokenised at a time: their lists and the tokenizer's encodings are the peak
NARROW = (np.uint8, np.uint16, np.int32)  # the types a field may be packed in, narrowest first


def narrowest(values: np.ndarray) -> np.ndarray:
    """`values` (integers) in the narrowest of NARROW that holds them all; int64 where none does."""
    if values.size == 0:
        return values.astype(np.uint8)
    lo, hi = int(values.min()), int(values.max())
    for dtype in NARROW:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return values.astype(dtype)
    return values.astype(np.int64)


class PackedSequences:
    """Token sequences of several fields, laid end to end: field k of row r is
    columns[k][offsets[r]:offsets[r + 1]] (the layout of the module docstring)."""

    def __init__(self, chunks: Iterable[Mapping[str, Sequence[Sequence[int]]]]):
        parts: dict[str, list[np.ndarray]] = {}
        lengths: list[np.ndarray] = []
        for enc in chunks:
            keys = list(enc.keys())
            if not keys:
                continue
            sizes = np.fromiter(map(len, enc[keys[0]]), np.int64, count=len(enc[keys[0]]))
            lengths.append(sizes)
            total = int(sizes.sum())
            for k in keys:
                flat = np.fromiter(itertools.chain.from_iterable(enc[k]), np.int64, count=total)
                parts.setdefault(k, []).append(narrowest(flat))
        self.offsets = np.zeros(sum(len(n) for n in lengths) + 1, np.int64)
        if lengths:
            np.cumsum(np.concatenate(lengths), out=self.offsets[1:])
        self.columns: dict[str, np.ndarray] = {k: np.concatenate(v) for k, v in parts.items()}

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays: what the encoded split costs."""
        return self.offsets.nbytes + sum(c.nbytes for c in self.columns.values())

    def lengths(self) -> np.ndarray:
        """Tokens per row."""
        return np.diff(self.offsets)

    def row(self, r: int) -> dict[str, np.ndarray]:
        a, b = self.offsets[r], self.offsets[r + 1]
        return {k: c[a:b] for k, c in self.columns.items()}


def _single_chunks(split: Split, tokenizer: PreTrainedTokenizerBase, max_seq_len: int,
                   chunk: int) -> Iterator[Mapping[str, list[list[int]]]]:
    """The tokenizer's output for `chunk` examples at a time (one text, or a pair, per example)."""
    for start in range(0, len(split.examples), chunk):
        part = split.examples[start:start + chunk]
        columns = list(zip(*(e.texts for e in part), strict=True))
        yield tokenizer(*columns, truncation=True, max_length=max_seq_len)


def placeholder_label(task: Task) -> int | float | tuple[float, ...]:
    """The label a teacher-only row carries so that it batches with gold rows (0, 0.0, or no label on): masked out
    of CE by its `labelled` 0, never learnt."""
    if task.multi_label:
        return (0.0,) * task.num_labels
    return 0.0 if task.is_regression else 0


class EncodedSplit(torch.utils.data.Dataset):
    """Tokenized examples, packed (PackedSequences); each item carries `idx`, its position in the split, for the
    teacher cache, and `labels` where the example has one. A split with teacher-only rows (Split.teacher_only) gives
    every item `labelled` (1 or 0), and its teacher-only items a placeholder label.

    Multiple-choice items (RACE) hold one sequence per choice for each tokenizer field (see pkd.race)."""

    def __init__(self, split: Split, tokenizer: PreTrainedTokenizerBase, max_seq_len: int, chunk: int = CHUNK):
        self.split = split
        self.choices = NUM_CHOICES if split.task.is_multiple_choice else 1
        if split.task.is_multiple_choice:
            chunks = encode_choices(split.examples, tokenizer, max_seq_len)  # 512 passages a chunk
        else:
            chunks = _single_chunks(split, tokenizer, max_seq_len, chunk)
        self.tokens = PackedSequences(chunks)
        self.gold_rows = len(split.examples) - split.teacher_only
        self.placeholder = placeholder_label(split.task) if split.teacher_only else None
        if len(self.tokens) != len(split.examples) * self.choices:
            raise ValueError(f"encoded {len(self.tokens)} sequences for {len(split.examples)} examples")

    def __len__(self) -> int:
        return len(self.split.examples)

    def __getitem__(self, i: int) -> dict:
        i = range(len(self))[i]  # negative positions as a list's; IndexError past the end
        if self.choices == 1:
            feat: dict = {k: v.tolist() for k, v in self.tokens.row(i).items()}
        else:
            rows = [self.tokens.row(r) for r in range(i * self.choices, (i + 1) * self.choices)]
            feat = {k: [row[k].astype(np.int32) for row in rows] for k in self.tokens.columns}
        feat["idx"] = i
        label = self.split.examples[i].label
        if self.placeholder is not None:
            feat["labelled"] = int(i < self.gold_rows)
            label = self.placeholder if label is None else label
        if label is not None:
            feat["labels"] = label
        return feat

    def lengths(self) -> np.ndarray:
        """Tokens per example (the longest choice for multiple choice): feature_length of every item."""
        return self.tokens.lengths().reshape(len(self), self.choices).max(axis=1, initial=0)


def encode_splits(task: Task, split: str, tokenizer: PreTrainedTokenizerBase, max_seq_len: int,
                  data_dir: str | Path | None, limit: int | None = None) -> list[EncodedSplit]:
    """A task's split, read (pkd.data) and tokenised: one EncodedSplit per part (MNLI's dev has two)."""
    return [EncodedSplit(part, tokenizer, max_seq_len) for part in load_split(task, split, data_dir, limit)]


def feature_length(feature: dict) -> int:
    """Tokens in an encoded example (the longest choice for multiple choice): what its batch is padded to."""
    ids = feature["input_ids"]
    return max((len(c) for c in ids), default=0) if len(ids) and not isinstance(ids[0], int) else len(ids)


def example_lengths(data: torch.utils.data.Dataset) -> list[int]:
    """feature_length of every item of `data`: read from the packed offsets of an EncodedSplit (anything with its
    `lengths()`) or a Subset of one, without unpacking a single item."""
    if callable(getattr(data, "lengths", None)):
        return np.asarray(data.lengths()).tolist()
    if isinstance(data, torch.utils.data.Subset) and callable(getattr(data.dataset, "lengths", None)):
        return np.asarray(data.dataset.lengths())[np.asarray(data.indices, dtype=np.int64)].tolist()
    return [feature_length(data[i]) for i in range(len(data))]


def model_inputs(batch: dict) -> dict:
    """The batch (or an encoded example) without idx and labels: what the model's forward takes."""
    return {k: v for k, v in batch.items() if k not in NOT_MODEL_INPUTS}


def make_collator(tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
    """Dynamic padding to the longest sequence of the batch; multiple-choice batches become [B, choices, T]."""
    return _Collator(tokenizer)


class _Collator:
    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer
        self.single = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def __call__(self, features: list[dict]) -> dict:
        first = features[0]["input_ids"] if features else []
        if not (len(first) and isinstance(first[0], (list, np.ndarray))):
            return self.single(features)
        # Multiple choice: pad every choice of every example to one length, then restore [B, choices, T].
        # (transformers' DataCollatorForMultipleChoice would try to split `idx` and needs labels.)
        size, choices = len(features), len(first)
        keys = list(model_inputs(features[0]))
        flat = [{k: np.asarray(f[k][c]).tolist() for k in keys} for f in features for c in range(choices)]
        batch = {k: v.view(size, choices, -1) for k, v in self.tokenizer.pad(flat, return_tensors="pt").items()}
        for key in NOT_MODEL_INPUTS:
            if key in features[0]:
                batch[key] = torch.tensor([f[key] for f in features])
        return batch


def longest_first_loader(data: torch.utils.data.Dataset, tokenizer: PreTrainedTokenizerBase,
                         batch_size: int) -> torch.utils.data.DataLoader:
    """`data` in batches, longest examples first, so that each batch is padded to about its own examples' length
    (far less padding than in file order). Ties keep the data's order. The loader's dataset is a Subset whose
    `indices` give each row's position in `data`, for putting outputs back in the data's order."""
    lengths = example_lengths(data)
    order = sorted(range(len(data)), key=lambda i: -lengths[i])  # stable: ties keep file order
    return torch.utils.data.DataLoader(torch.utils.data.Subset(data, order), batch_size=batch_size, shuffle=False,
                                       collate_fn=make_collator(tokenizer))
