"""RACE: reading and checking the passages, the multiple-choice inputs, and training on them end to end."""

from __future__ import annotations

import gzip
import json
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import WORDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pkd
import pkd.train
from pkd.api import train_config
from pkd.cache import LiveTeacher, TeacherCache, teacher_forward
from pkd.cli import main
from pkd.config import TrainConfig
from pkd.data import load_split
from pkd.encoding import EncodedSplit, make_collator
from pkd.errors import DataError
from pkd.losses import LossConfig
from pkd.models import load_classifier, load_tokenizer
from pkd.race import fill, read_race
from pkd.tasks import Example, Split, get_task

# Short texts from the tiny tokenizer's vocabulary (conftest.WORDS), so that nothing is [UNK].
NOUNS = ["cat", "dog", "man", "woman", "actor", "movie", "film", "park", "city", "mat"]
ADJ = ["good", "great", "fine", "nice", "happy", "bad", "awful", "poor", "sad", "dull", "big", "small", "red", "blue"]
assert set(NOUNS + ADJ) <= set(WORDS)
LETTERS = "ABCD"
TINY = dict(epochs=1, batch_size=8, eval_batch_size=16, lr=2e-3, max_seq_len=40, seed=0)


def _passage(rng: random.Random, pid: str, level: str, questions: int = 2) -> dict:
    """A passage whose answer is in the text: "the <noun> is <adj> ." repeated; questions ask for the adjective."""
    facts = {n: rng.choice(ADJ) for n in rng.sample(NOUNS, 3)}
    article = " ".join(f"the {n} is {a} ." for n, a in facts.items())
    qs, opts, answers = [], [], []
    for q in range(questions):
        noun = rng.choice(sorted(facts))
        right = facts[noun]
        wrong = rng.sample([a for a in ADJ if a != right], 3)
        k = rng.randrange(4)
        options = wrong[:k] + [right] + wrong[k:]
        qs.append(f"the {noun} is _ ." if q % 2 == 0 else f"the {noun} is ?")
        opts.append(options)
        answers.append(LETTERS[k])
    return {"id": pid, "level": level, "article": article, "questions": qs, "options": opts, "answers": answers}


def write_race(root: Path, sizes=(("train", 12), ("dev", 4), ("test", 4)), seed: int = 0) -> Path:
    """train/dev/test.jsonl.gz, passages high-then-middle like the real files, two questions each."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        rows = [_passage(rng, f"{level}{i}.txt", level) for i, level in
                enumerate(["high"] * (n - n // 4) + ["middle"] * (n // 4))]
        _write_gz(root / f"{split}.jsonl.gz", [json.dumps(r) for r in rows])
    return root


def _write_gz(path: Path, lines: list[str]) -> None:
    path.write_bytes(gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0))


@pytest.fixture(scope="session")
def race_dir(tmp_path_factory) -> Path:
    return write_race(tmp_path_factory.mktemp("race"))


# --- reading ------------------------------------------------------------------------------------------------


def test_passages_expand_into_questions(race_dir):
    (split,) = load_split(get_task("race"), "train", race_dir)
    assert len(split.examples) == 24  # 12 passages x 2 questions
    first = split.examples[0]
    raw = json.loads(gzip.decompress((race_dir / "train.jsonl.gz").read_bytes()).splitlines()[0])
    assert first.texts == (raw["article"], raw["questions"][0], *raw["options"][0])
    assert first.label == LETTERS.index(raw["answers"][0])
    assert first.index == "high0.txt-0" and split.examples[1].index == "high0.txt-1"
    assert {e.level for e in split.examples} == {"high", "middle"}
    assert split.labeled and split.source == str(race_dir / "train.jsonl.gz")


def test_level_filter(race_dir):
    full = load_split(get_task("race"), "dev", race_dir)[0].examples
    high = load_split(get_task("race-high"), "dev", race_dir)[0].examples
    middle = load_split(get_task("race-middle"), "dev", race_dir)[0].examples
    assert {e.level for e in high} == {"high"} and {e.level for e in middle} == {"middle"}
    assert [e.index for e in high + middle] == [e.index for e in full]
    fps = {load_split(get_task(t), "dev", race_dir)[0].fingerprint for t in ("race", "race-high", "race-middle")}
    assert len(fps) == 3  # different questions, different teacher caches
    only_high = race_dir.parent / "only-high"
    only_high.mkdir(exist_ok=True)
    _write_gz(only_high / "dev.jsonl.gz", [json.dumps(_passage(random.Random(1), "high1.txt", "high"))])
    with pytest.raises(DataError, match="no middle passages for task race-middle"):
        load_split(get_task("race-middle"), "dev", only_high)


def test_limit_samples_whole_passages_of_both_levels(race_dir):
    (split,) = load_split(get_task("race"), "train", race_dir, limit=7)
    assert len(split.examples) == 7
    assert {e.level for e in split.examples} == {"high", "middle"}  # not just the file's first (high) passages
    again = load_split(get_task("race"), "train", race_dir, limit=7)[0]
    assert [e.index for e in again.examples] == [e.index for e in split.examples]  # fixed, whatever the seed
    full = load_split(get_task("race"), "train", race_dir)[0]
    assert split.fingerprint != full.fingerprint
    order = [e.index for e in full.examples]
    positions = [order.index(e.index) for e in split.examples]
    assert positions == sorted(positions)  # kept in file order


def test_data_dir_layouts(race_dir, tmp_path, monkeypatch):
    """The race folder itself, a parent holding race/, or a GLUE folder next to race/ ($PKD_DATA=.../glue)."""
    shared = tmp_path / "shared"
    (shared / "glue").mkdir(parents=True)
    write_race(shared / "race", sizes=(("dev", 4),))
    task = get_task("race")
    for root in (shared / "race", shared, shared / "glue"):
        (split,) = load_split(task, "dev", root)
        assert Path(split.source) == shared / "race" / "dev.jsonl.gz"
    monkeypatch.setenv("PKD_DATA", str(shared / "glue"))
    assert Path(load_split(task, "dev")[0].source) == shared / "race" / "dev.jsonl.gz"
    with pytest.raises(DataError, match=r"no RACE test\.jsonl\.gz"):
        load_split(task, "test", shared)


def test_max_seq_len_defaults_per_task():
    assert train_config(get_task("race"), TrainConfig(max_seq_len=None), student=False).max_seq_len == 512
    assert train_config(get_task("race-high"), TrainConfig(), student=True).max_seq_len == 512
    assert train_config(get_task("sst2"), TrainConfig(max_seq_len=None), student=True).max_seq_len == 128
    assert train_config(get_task("race"), TrainConfig(max_seq_len=256), student=True).max_seq_len == 256


# --- bad records --------------------------------------------------------------------------------------------

GOOD = {"id": "high9.txt", "level": "high", "article": "the cat is red .", "questions": ["the cat is _ ."],
        "options": [["red", "blue", "big", "sad"]], "answers": ["A"]}


@pytest.mark.parametrize("line, needle", [
    ({k: v for k, v in GOOD.items() if k != "article"}, "(passage high9.txt): missing field 'article'"),
    ({**GOOD, "answers": ["E"]}, "(passage high9.txt): question 0 has answer 'E', expected one of A, B, C, D"),
    ({**GOOD, "answers": ["a"]}, "question 0 has answer 'a'"),
    ({**GOOD, "options": [["red", "blue", "big"]]}, "(passage high9.txt): question 0 needs 4 string options, found 3"),
    ({**GOOD, "options": [["red", "blue", "big", 4]]}, "question 0 needs 4 string options"),
    ({**GOOD, "answers": ["A", "B"]}, "1 questions, 1 option lists and 2 answers"),
    ({**GOOD, "level": "college"}, "level 'college' is not one of high, middle"),
    ({**GOOD, "questions": "the cat is _ ."}, "'questions' is not a list"),
    ({**GOOD, "questions": []}, "0 questions, 1 option lists and 1 answers"),
    ({k: v for k, v in GOOD.items() if k != "id"}, "missing or non-string field 'id'"),
    ([GOOD], "expected a JSON object, found list"),
    ('{"id": "high9.txt", "level": ', "invalid JSON"),
    ("", "empty line"),
])
def test_bad_record_is_one_line_naming_it(tmp_path, line, needle):
    path = tmp_path / "dev.jsonl.gz"
    _write_gz(path, [json.dumps(GOOD), line if isinstance(line, str) else json.dumps(line), json.dumps(GOOD)])
    with pytest.raises(DataError) as e:
        read_race(get_task("race"), path, "dev")
    message = str(e.value)
    assert message.startswith(f"{path}:2") and needle in message and "\n" not in message, message


def test_passage_without_questions_gives_no_examples(tmp_path):
    """Two passages of the real train file have no questions; they are valid and simply add nothing."""
    path = tmp_path / "train.jsonl.gz"
    _write_gz(path, [json.dumps({**GOOD, "id": "high1.txt", "questions": [], "options": [], "answers": []}),
                     json.dumps(GOOD)])
    assert [e.index for e in read_race(get_task("race"), path).examples] == ["high9.txt-0"]


def test_not_gzip_and_truncated_gzip(tmp_path):
    plain = tmp_path / "train.jsonl.gz"
    plain.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl\.gz: not a readable gzip file"):
        read_race(get_task("race"), plain)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode() * 50)[:-20])
    with pytest.raises(DataError, match=r"cut\.jsonl\.gz: not a readable gzip file"):
        read_race(get_task("race"), cut)
    empty = tmp_path / "empty.jsonl.gz"
    _write_gz(empty, [])
    with pytest.raises(DataError, match="no passages"):
        read_race(get_task("race"), empty)


def test_bad_record_through_the_cli(tiny_bert, race_dir, tmp_path, capsys):
    bad = tmp_path / "race"
    bad.mkdir()
    (bad / "train.jsonl.gz").write_bytes((race_dir / "train.jsonl.gz").read_bytes())
    _write_gz(bad / "dev.jsonl.gz", [json.dumps(GOOD), json.dumps({**GOOD, "id": "middle3.txt", "answers": ["Z"]})])
    code = main(["finetune", "--task", "race", "--model", str(tiny_bert), "--data-dir", str(bad),
                 "--out", str(tmp_path / "out"), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err == (f"pkd: error: {bad / 'dev.jsonl.gz'}:2 (passage middle3.txt): "
                                               "question 0 has answer 'Z', expected one of A, B, C, D\n")
    assert not (tmp_path / "out").exists()


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(st.sampled_from(list(GOOD)), children, max_size=6), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=st.one_of(_JSON, st.fixed_dictionaries({k: st.one_of(st.just(v), _JSON) for k, v in GOOD.items()})))
def test_arbitrary_records_give_examples_or_one_data_error(record):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "train.jsonl.gz"
        _write_gz(path, [json.dumps(record)])
        try:
            split = read_race(get_task("race"), path)
        except DataError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)
            return
    assert all(len(e.texts) == 6 and e.label in range(4) for e in split.examples)


# --- the Hub ------------------------------------------------------------------------------------------------


def test_hub_rows_are_grouped_into_passages(monkeypatch):
    import datasets

    rows = []
    for pid, level in (("high5.txt", "high"), ("middle2.txt", "middle")):
        p = _passage(random.Random(pid), pid, level, questions=2)
        for q, o, a in zip(p["questions"], p["options"], p["answers"], strict=True):
            rows.append({"example_id": pid, "article": p["article"], "answer": a, "question": q, "options": o})
    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        chosen = [r for r in rows if name == "all" or r["example_id"].startswith(name)]
        return datasets.Dataset.from_list(chosen)

    monkeypatch.delenv("PKD_DATA", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    (split,) = load_split(get_task("race"), "dev")
    assert calls == [("ehovy/race", "all", "validation")]
    assert [e.index for e in split.examples] == ["high5.txt-0", "high5.txt-1", "middle2.txt-0", "middle2.txt-1"]
    assert [e.level for e in split.examples] == ["high", "high", "middle", "middle"]
    assert [e.label for e in split.examples] == [LETTERS.index(r["answer"]) for r in rows]
    assert split.examples[0].texts == (rows[0]["article"], rows[0]["question"], *rows[0]["options"])
    (test,) = load_split(get_task("race-middle"), "test")
    assert calls[-1] == ("ehovy/race", "middle", "test") and len(test.examples) == 2

    rows[1]["answer"] = "F"
    with pytest.raises(DataError, match=r"hub:ehovy/race/all/train \(passage high5\.txt\): question 1 has answer"):
        load_split(get_task("race"), "train")

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="ehovy/race high train: cannot load from the Hub"):
        load_split(get_task("race-high"), "train")


# --- inputs -------------------------------------------------------------------------------------------------


def test_blank_filling():
    assert fill("the cat is _ .", "red") == "the cat is red ."
    assert fill("the cat is   _  .", "very red") == "the cat is   very red  ."
    assert fill("what is the cat ?", "red") == "what is the cat ? red"
    assert fill("the cat is ____ .", "red") == "the cat is red ."
    # Two blanks and an option in two parts: one part per blank, as RACE writes them.
    assert fill("the _ is _ .", "cat; red") == "the cat is red ."
    assert fill("the _ is _ .", "cat") == "the cat is cat ."


def _segments(ids, types) -> tuple[list[int], list[int]]:
    ids, types = [int(i) for i in ids], list(types)
    first = [i for i, t in zip(ids, types, strict=True) if t == 0][1:-1]  # drop [CLS] and [SEP]
    second = [i for i, t in zip(ids, types, strict=True) if t == 1][:-1]
    return first, second


def test_truncation_trims_only_the_article(tiny_bert):
    tok = load_tokenizer(str(tiny_bert))
    article = " ".join(f"the {n} is {a} ." for n, a in zip(NOUNS * 3, ADJ * 3, strict=False))  # ~120 tokens
    long_q = "the cat and the dog and the man and the woman sat on the mat and the actor walks the park _ ."
    ex = Example((article, "the cat is _ .", "red", "very big and blue", "sad", "dull"), 0, "p-0", "high")
    ex_long = Example((article, long_q, "red", "blue", "big", "small"), 1, "p-1", "middle")
    split = Split(get_task("race"), "dev", [ex, ex_long], "mem", "fp")
    data = EncodedSplit(split, tok, 24)
    assert len(data) == 2 and data[1]["labels"] == 1 and data[1]["idx"] == 1
    article_ids = tok(article, add_special_tokens=False)["input_ids"]
    for c, option in enumerate(ex.texts[2:]):
        ids = data[0]["input_ids"][c]
        assert len(ids) == 24
        first, second = _segments(data[0]["input_ids"][c], data[0]["token_type_ids"][c])
        whole = tok(fill("the cat is _ .", option), add_special_tokens=False)["input_ids"]
        assert second == whole and tok.decode(second) == tok.decode(whole)  # the question and option, whole
        assert first == article_ids[:len(first)] and 0 < len(first) < len(article_ids)  # the article, trimmed
    # Question+option longer than max_seq_len on their own: the last resort trims them too, to the limit.
    for c in range(4):
        ids = data[1]["input_ids"][c]
        assert len(ids) == 24 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    # Short inputs are not padded here; the collator pads every choice of the batch to one length.
    short = EncodedSplit(Split(get_task("race"), "dev", [Example(("the cat is red .", "the cat is ?", "red", "a",
                                                                   "very big blue", "sad"), 2, "s-0")], "m", "f"),
                         tok, 512)
    batch = make_collator(tok)([short[0], data[0]])
    assert batch["input_ids"].shape == (2, 4, 24) and batch["labels"].tolist() == [2, 0]
    assert batch["idx"].tolist() == [0, 0] and batch["attention_mask"][0, 0].sum() < 24


# --- training end to end ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def race_teacher(tiny_bert, race_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("race-teacher") / "run"
    best = pkd.finetune("race", out, model=str(tiny_bert), data_dir=race_dir, quiet=True, **TINY)
    assert {"accuracy", "accuracy_high", "accuracy_middle", "score"} <= set(best)
    assert best["score"] == best["accuracy"]
    return out


def _assert_levels_add_up(metrics: dict, race_dir) -> None:
    """The overall accuracy is the per-level accuracies weighted by each level's number of dev questions."""
    (split,) = load_split(get_task("race"), "dev", race_dir)
    high = sum(e.level == "high" for e in split.examples)
    assert 0 < high < len(split.examples)
    assert metrics["accuracy"] == pytest.approx((metrics["accuracy_high"] * high + metrics["accuracy_middle"]
                                                 * (len(split.examples) - high)) / len(split.examples))


def test_finetune_gives_a_multiple_choice_model(race_teacher, race_dir):
    config = json.loads((race_teacher / "config.json").read_text())
    assert config["architectures"] == ["BertForMultipleChoice"]
    with pytest.raises(DataError, match="not a sequence classifier"):
        load_classifier(str(race_teacher), get_task("sst2"), require_head=True)
    model = load_classifier(str(race_teacher), get_task("race-high"), require_head=True)
    assert type(model).__name__ == "BertForMultipleChoice"
    dev = pkd.evaluate(str(race_teacher), "race", data_dir=race_dir)
    (split,) = load_split(get_task("race"), "dev", race_dir)
    high = sum(e.level == "high" for e in split.examples)
    assert dev["accuracy"] == pytest.approx((dev["accuracy_high"] * high + dev["accuracy_middle"]
                                             * (len(split.examples) - high)) / len(split.examples))


def test_sequence_classifier_is_refused_for_race(tiny_teacher):
    with pytest.raises(DataError, match="not a multiple-choice model"):
        load_classifier(str(tiny_teacher), get_task("race"), require_head=True)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_teacher_targets_are_one_vector_per_choice(race_teacher, race_dir, pooling):
    """teacher_forward's [B, 4, L, H] equals running each choice on its own: its [CLS] vector, or with
    --pt-pooling mean the mean of its own tokens; the cache stores that shape."""
    task = get_task("race")
    model = load_classifier(str(race_teacher), task, require_head=True).eval()
    tok = load_tokenizer(str(race_teacher))
    data = EncodedSplit(load_split(task, "dev", race_dir)[0], tok, 40)
    batch = make_collator(tok)([data[i] for i in range(3)])
    with torch.no_grad():
        logits, states = teacher_forward(model, batch, [1, 3], pooling)
        assert logits.shape == (3, 4) and states.shape == (3, 4, 2, 32)
        for b in range(3):
            for c in range(4):
                real = int(batch["attention_mask"][b, c].sum())
                single = {k: batch[k][b, c][None, :real] for k in ("input_ids", "attention_mask", "token_type_ids")}
                hidden = model.bert(**single, output_hidden_states=True).hidden_states
                for j, layer in enumerate([1, 3]):
                    expected = hidden[layer][0, 0] if pooling == "cls" else hidden[layer][0].mean(0)
                    torch.testing.assert_close(states[b, c, j], expected, atol=1e-5, rtol=1e-5)


def test_distill_pkd_skip_round_trip(race_teacher, race_dir, tmp_path, monkeypatch, capsys):
    shapes = []
    real = pkd.train.pkd_loss

    def spy(cfg, logits, labels, regression, teacher_logits=None, student_cls=None, teacher_cls=None, **options):
        shapes.append((tuple(logits.shape), tuple(teacher_logits.shape), tuple(student_cls.shape),
                       tuple(teacher_cls.shape)))
        return real(cfg, logits, labels, regression, teacher_logits, student_cls, teacher_cls, **options)

    monkeypatch.setattr(pkd.train, "pkd_loss", spy)
    cache_dir = tmp_path / "cache"
    code = main(["distill", "--teacher", str(race_teacher), "--task", "race", "--student-layers", "2",
                 "--method", "pkd-skip", "--data-dir", str(race_dir), "--cache-dir", str(cache_dir),
                 "--epochs", "1", "--batch-size", "8", "--lr", "2e-3", "--max-seq-len", "40", "--beta", "1.0",
                 "--out", str(tmp_path / "student"), "--quiet"])
    assert code == 0
    best = json.loads(capsys.readouterr().out)["best"]
    _assert_levels_add_up(best, race_dir)
    dev = pkd.evaluate(str(tmp_path / "student"), "race", data_dir=race_dir)
    assert dev == pytest.approx({k: v for k, v in best.items() if k in dev})  # the saved model is the best epoch
    # Batches of 8 questions: logits [8, 4]; the [CLS] of every choice of the one mapped layer: [8, 4, 1, 32].
    assert shapes[0] == ((8, 4), (8, 4), (8, 4, 1, 32), (8, 4, 1, 32))
    (path,) = list(cache_dir.iterdir())
    cache = TeacherCache(path)
    assert cache.logits.shape == (24, 4) and cache.cls.shape == (24, 4, 1, 32) and cache.layers == [2]
    student = json.loads((tmp_path / "student" / "config.json").read_text())
    assert student["architectures"] == ["BertForMultipleChoice"] and student["num_hidden_layers"] == 2

    # The cache returns what the live teacher computes, in the same shapes (up to fp16).
    task = get_task("race")
    tok = load_tokenizer(str(race_teacher))
    data = EncodedSplit(load_split(task, "train", race_dir)[0], tok, 40)
    batch = make_collator(tok)([data[i] for i in (5, 0, 17)])
    cached_logits, cached_cls = cache.outputs(batch, [2])
    live_logits, live_cls = LiveTeacher(load_classifier(str(race_teacher), task), cache.pooling).outputs(batch, [2])
    assert cached_logits.shape == (3, 4) and cached_cls.shape == (3, 4, 1, 32)
    torch.testing.assert_close(cached_logits, live_logits, atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(cached_cls, live_cls, atol=1e-2, rtol=1e-2)

    # A projection (different hidden sizes) works on [B, 4, L, H] as well.
    from pkd.losses import Projection

    student = load_classifier(str(tmp_path / "student"), task, require_head=True)
    parts = pkd.train.batch_loss(student, batch, task, LossConfig(alpha=0.5, temperature=2.0, beta=1.0), cache,
                                 [2], Projection(32, 32, 1))
    assert torch.isfinite(parts["loss"]) and parts["pt"] > 0 and shapes[-1][2] == (3, 4, 1, 32)


def test_augmented_race_keeps_the_passage_and_trains_on_every_copy(race_teacher, race_dir, tmp_path):
    """--augment on RACE (pkd.augment): each copy's question and options are augmented, its passage kept; the
    teacher's cache holds one row of four choices per copy, and the student trains on them (CE on the gold rows)."""
    from pkd.augment import with_extra_rows
    from pkd.config import AugmentConfig

    task, tok = get_task("race"), load_tokenizer(str(race_teacher))
    split = load_split(task, "train", race_dir)[0]
    extended, record = with_extra_rows(split, AugmentConfig(augment=2), load_classifier(str(race_teacher), task), tok,
                                       progress=False)
    copies = extended.examples[len(split.examples):]
    assert len(copies) == 48 and record["augmented_rows"] == 48
    for i, copy in enumerate(copies):
        source = split.examples[i // 2]
        assert copy.texts[0] == source.texts[0] and copy.level == source.level and copy.label is None
    assert any(copy.texts[1:] != split.examples[i // 2].texts[1:] for i, copy in enumerate(copies))
    batch = make_collator(tok)([EncodedSplit(extended, tok, 40)[i] for i in (0, 30)])
    assert batch["input_ids"].shape[:2] == (2, 4) and batch["labelled"].tolist() == [1, 0]
    pkd.distill(str(race_teacher), "race", 2, tmp_path / "s", method="pkd-skip", augment=2, data_dir=race_dir,
                cache_dir=tmp_path / "cache", quiet=True, **{**TINY, "epochs": 1})
    (path,) = list((tmp_path / "cache").iterdir())
    assert TeacherCache(path).logits.shape == (72, 4)
    assert json.loads((tmp_path / "s" / "run.json").read_text())["num_teacher_only_examples"] == 48


def test_evaluate_test_split_and_predict_letters(race_teacher, race_dir, tmp_path, capsys):
    assert main(["evaluate", str(race_teacher), "--task", "race", "--split", "test", "--data-dir", str(race_dir),
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"accuracy", "accuracy_high", "accuracy_middle", "score"}
    out = tmp_path / "race.tsv"
    assert main(["predict", str(race_teacher), "--task", "race", "--data-dir", str(race_dir),
                 "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 9
    (test,) = load_split(get_task("race"), "test", race_dir)
    assert [line.split("\t")[0] for line in lines[1:]] == [e.index for e in test.examples]
    predicted = [LETTERS.index(line.split("\t")[1]) for line in lines[1:]]
    labels = np.array([e.label for e in test.examples])
    assert 100.0 * float(np.mean(np.array(predicted) == labels)) == pytest.approx(metrics["accuracy"])


def test_compare_on_race(race_teacher, race_dir, tmp_path, capsys):
    assert main(["compare", "--teacher", str(race_teacher), "--task", "race", "--student-layers", "2",
                 "--methods", "ft,kd,pkd-skip", "--seeds", "1", "--data-dir", str(race_dir),
                 "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "8", "--lr", "2e-3",
                 "--max-seq-len", "40", "--max-train-examples", "10", "--out", str(tmp_path / "cmp"),
                 "--quiet"]) == 0
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert set(table["methods"]) == {"ft", "kd", "pkd-skip"} and table["task"] == "race"
    assert "| pkd-skip |" in capsys.readouterr().out
    run = json.loads((tmp_path / "cmp" / "pkd-skip-seed42" / "run.json").read_text())
    assert run["num_train_examples"] == 10 and run["train"]["max_seq_len"] == 40
    result = json.loads((tmp_path / "cmp" / "pkd-skip-seed42" / "result.json").read_text())
    _assert_levels_add_up(result, race_dir)
    assert table["methods"]["pkd-skip"]["scores"] == [result["score"]] and result["score"] == result["accuracy"]


# --- the real data, where this machine has it ---------------------------------------------------------------

SHARED = Path("/work/shared/data")


@pytest.mark.skipif(not (SHARED / "race" / "dev.jsonl.gz").is_file(), reason="no shared RACE data on this machine")
@pytest.mark.parametrize("task, split, questions", [("race", "dev", 4887), ("race", "test", 4934),
                                                    ("race-high", "dev", 3451), ("race-middle", "test", 1436)])
def test_real_race_sizes(task, split, questions):
    (part,) = load_split(get_task(task), split, SHARED / "glue")  # a GLUE folder finds its sibling race/
    assert len(part.examples) == questions
    assert part.labeled and {e.label for e in part.examples} == {0, 1, 2, 3}
