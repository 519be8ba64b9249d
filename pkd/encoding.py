"""Examples as model inputs: tokenized splits, their batches, and the order evaluation runs them in.

The data layer between pkd.data (examples read from files) and the models: training, evaluation, the teacher
cache, the patient probe and the export's parity batch all encode and batch through here, so that they pad and
truncate alike and agree on what a batch carries besides the model's inputs (idx, each example's position in
its split, which the teacher cache and evaluation index by; and labels).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from pkd.data import load_split
from pkd.race import encode_choices
from pkd.tasks import Split, Task

# What a batch carries that the model does not take.
NOT_MODEL_INPUTS = ("idx", "labels")


class EncodedSplit(torch.utils.data.Dataset):
    """Tokenized examples; each item carries `idx`, its position in the split, for the teacher cache.

    Multiple-choice items (RACE) hold one sequence per choice for each tokenizer field (see pkd.race)."""

    def __init__(self, split: Split, tokenizer: PreTrainedTokenizerBase, max_seq_len: int):
        self.split = split
        if split.task.is_multiple_choice:
            self.features = encode_choices(split.examples, tokenizer, max_seq_len)
        else:
            columns = list(zip(*(e.texts for e in split.examples), strict=True)) if split.examples else [[]]
            enc = tokenizer(*columns, truncation=True, max_length=max_seq_len)
            self.features = [{k: enc[k][i] for k in enc} for i in range(len(split.examples))]
        for i, (feat, ex) in enumerate(zip(self.features, split.examples, strict=True)):
            feat["idx"] = i
            if ex.label is not None:
                feat["labels"] = ex.label

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return self.features[i]


def encode_splits(task: Task, split: str, tokenizer: PreTrainedTokenizerBase, max_seq_len: int,
                  data_dir: str | Path | None, limit: int | None = None) -> list[EncodedSplit]:
    """A task's split, read (pkd.data) and tokenised: one EncodedSplit per part (MNLI's dev has two)."""
    return [EncodedSplit(part, tokenizer, max_seq_len) for part in load_split(task, split, data_dir, limit)]


def feature_length(feature: dict) -> int:
    """Tokens in an encoded example (the longest choice for multiple choice): what its batch is padded to."""
    ids = feature["input_ids"]
    return max((len(c) for c in ids), default=0) if len(ids) and not isinstance(ids[0], int) else len(ids)


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
        batch["idx"] = torch.tensor([f["idx"] for f in features])
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features])
        return batch


def longest_first_loader(data: torch.utils.data.Dataset, tokenizer: PreTrainedTokenizerBase,
                         batch_size: int) -> torch.utils.data.DataLoader:
    """`data` in batches, longest examples first, so that each batch is padded to about its own examples' length
    (far less padding than in file order). Ties keep the data's order. The loader's dataset is a Subset whose
    `indices` give each row's position in `data`, for putting outputs back in the data's order."""
    order = sorted(range(len(data)), key=lambda i: -feature_length(data[i]))  # stable: ties keep file order
    return torch.utils.data.DataLoader(torch.utils.data.Subset(data, order), batch_size=batch_size, shuffle=False,
                                       collate_fn=make_collator(tokenizer))
