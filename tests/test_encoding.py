"""Encoded splits: packed token arrays (pkd.encoding) that cost bytes per token, not Python objects, and give the
items and batches the tokenizer gives."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest
import torch
from conftest import WORDS, make_tokenizer

from pkd.encoding import EncodedSplit, example_lengths, feature_length, longest_first_loader, make_collator, narrowest
from pkd.files import make_task
from pkd.tasks import Example, FileSpec, Split, get_task


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def short_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(10, 40))) for _ in range(n)]


def test_twenty_thousand_short_texts_cost_bytes_per_token(tok):
    """Issue 35, item 7: the whole split used to become per-example dicts of Python lists (20.9 MB kept and a 36 MB
    peak here, for 1.6 MB of token values; several GB at 1M rows with a real vocabulary). Packed, what is kept is
    about a byte per token per field plus an offset per example, and the peak is a chunk's lists on top."""
    split = Split(get_task("sst2"), "train", [Example((t,), i % 2, str(i)) for i, t in enumerate(short_texts(20_000))],
                  "memory", "short-20k")
    tracemalloc.start()
    try:
        data = EncodedSplit(split, tok, 64)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    tokens = int(data.lengths().sum())
    fields = len(data[0]) - 2  # input_ids, token_type_ids, attention_mask; not idx and labels
    assert fields == 3 and tokens > 20_000 * 10
    packed = tokens * fields + 8 * (len(data) + 1)  # uint8 fields (a 45-token vocabulary), int64 offsets
    assert data.tokens.nbytes == packed
    assert kept < 2 * packed, (kept, packed)
    assert peak < 12e6, peak  # the old code: 36 MB


def test_items_and_batches_are_the_tokenizers_own(tok):
    """Single texts, pairs, regression and multi-label labels: every item is what the tokenizer gives for its example
    alone (same ids, same truncation, lists of ints), chunk boundaries change nothing, and the batches are the
    collator's padding of those."""
    texts, rng = short_texts(203, seed=1), random.Random(2)
    multi = make_task(FileSpec(train="x.csv", text_columns=("a",), label_kind="multi-label", labels=("p", "q", "r")))
    cases = [(get_task("sst2"), lambda i: ((texts[i],), i % 2)),
             (get_task("mrpc"), lambda i: ((texts[i], texts[-i - 1]), 1 - i % 2)),
             (get_task("stsb"), lambda i: ((texts[i], texts[i // 2]), rng.uniform(0, 5))),
             (multi, lambda i: ((texts[i],), tuple(float(rng.random() < 0.5) for _ in range(3))))]
    for task, make in cases:
        split = Split(task, "train", [Example(*make(i), str(i)) for i in range(len(texts))], "memory", task.name)
        data, again = EncodedSplit(split, tok, 24), EncodedSplit(split, tok, 24, chunk=7)
        assert len(data) == len(texts)
        for i, ex in enumerate(split.examples):
            alone = tok(*ex.texts, truncation=True, max_length=24)
            item = data[i]
            assert item == {**{k: alone[k] for k in alone}, "idx": i, "labels": ex.label} == again[i], task.name
            assert all(type(v) is int for v in item["input_ids"]) and type(item["labels"]) is type(ex.label)
        assert data[-1] == data[len(data) - 1]
        with pytest.raises(IndexError):
            data[len(data)]
        assert example_lengths(data) == [feature_length(data[i]) for i in range(len(data))]
        order = sorted(range(len(data)), key=lambda i: -len(data[i]["input_ids"]))
        for b, batch in enumerate(longest_first_loader(data, tok, 16)):
            expected = make_collator(tok)([data[i] for i in order[16 * b:16 * (b + 1)]])
            assert batch.keys() == expected.keys()
            for k in batch:
                assert torch.equal(batch[k], expected[k]), (task.name, k)


def test_multiple_choice_items_keep_one_int32_array_per_choice(tok):
    race = get_task("race")
    texts = short_texts(40, seed=3)
    examples = [Example((texts[i] * 3, "the cat is _ .", *texts[i + 1:i + 5]), i % 4, f"p-{i}") for i in range(30)]
    data = EncodedSplit(Split(race, "train", examples, "memory", "race"), tok, 32)
    item = data[3]
    assert item["labels"] == 3 and item["idx"] == 3
    for k in ("input_ids", "token_type_ids", "attention_mask"):
        assert len(item[k]) == 4 and all(isinstance(c, np.ndarray) and c.dtype == np.int32 for c in item[k])
    assert data.lengths()[3] == feature_length(item) == max(len(c) for c in item["input_ids"])
    assert make_collator(tok)([data[0], data[1]])["input_ids"].shape[:2] == (2, 4)


def test_each_field_is_packed_in_the_narrowest_type_that_holds_it():
    assert narrowest(np.array([0, 1, 255])).dtype == np.uint8
    assert narrowest(np.array([0, 30521])).dtype == np.uint16
    assert narrowest(np.array([0, 250_001])).dtype == np.int32  # XLM-R's vocabulary
    assert narrowest(np.array([-1, 3])).dtype == np.int32
    assert narrowest(np.array([], dtype=np.int64)).dtype == np.uint8
    np.testing.assert_array_equal(narrowest(np.array([7, 65535])), [7, 65535])
