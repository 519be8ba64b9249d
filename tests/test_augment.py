"""Issue 34: rows only the teacher labels, from an unlabelled file and from augmented copies of the training texts
(pkd.augment): labelled once, in the teacher cache; never in CE; refused when they are dev or test rows; seeded;
recorded, so that --resume refuses a change; through distill, compare, sweep and cache."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_TRAIN, WORDS, make_tiny_mlm, make_tiny_model, make_tokenizer
from safetensors.torch import load_file
from test_cache import cache_together
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

import pkd
import pkd.cache
import pkd.encoding
from pkd import augment
from pkd.cli import build_parser, configs, main
from pkd.config import AugmentConfig, DataConfig, DistillConfig, LossConfig
from pkd.data import load_split
from pkd.errors import DataError, UsageError
from pkd.losses import pkd_loss
from pkd.tasks import Example, Split, get_task

STUDENT = {**TINY_TRAIN, "epochs": 1, "max_train_examples": 32}
SST2, MRPC, RACE = get_task("sst2"), get_task("mrpc"), get_task("race")


@pytest.fixture(scope="module", autouse=True)
def data_cache(tmp_path_factory):
    """The datasets library's Arrow copies of the unlabelled files go under a temporary $PKD_CACHE."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PKD_CACHE", str(tmp_path_factory.mktemp("pkd-cache")))
        yield


def _unlabelled(path: Path, rows: list[str], column: str = "sentence") -> Path:
    path.write_text("".join(json.dumps({column: r}) + "\n" for r in rows))
    return path


# Sentences the SST-2 fixture never has ("the <noun> was very <mood> ."), so in neither its dev nor its test split.
NEW = [f"a {animal} {verb} on the {colour} mat" for animal in ("cat", "dog", "man", "woman")
       for verb in ("sat", "runs", "walks") for colour in ("red", "blue")]


@pytest.fixture(scope="module")
def neighbours(tiny_bert):
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    embeddings = AutoModel.from_pretrained(tiny_bert).get_input_embeddings().weight
    words = [w for v in tok.get_vocab() for w in (v, v.capitalize(), v.upper())]  # as texts write them
    return augment.EmbeddingNeighbours(embeddings, tok, 5, words)


def _counting_teacher(monkeypatch) -> list[int]:
    """Rows the teacher cache's teacher forward runs on, one entry per batch."""
    seen: list[int] = []
    real = pkd.cache.teacher_forward

    def counted(teacher, batch, *args, **kwargs):
        seen.append(int(batch["input_ids"].shape[0]))
        return real(teacher, batch, *args, **kwargs)

    monkeypatch.setattr(pkd.cache, "teacher_forward", counted)
    return seen


# ------------------------------------------------------------------------------------- labelled once, in the cache


def test_the_teacher_labels_every_extra_row_once_in_its_cache(tiny_teacher, glue_dir, tmp_path, monkeypatch):
    """Unlabelled and augmented rows go through the teacher once, in the cache build; a second run with the same
    settings (another seed and method) reuses that cache, and another augmentation seed builds a new one."""
    seen = _counting_teacher(monkeypatch)
    file = _unlabelled(tmp_path / "more.jsonl", NEW)
    extra = dict(unlabelled_file=str(file), augment=2, data_dir=glue_dir, cache_dir=tmp_path / "cache", quiet=True)
    pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "a", method="pkd-skip", **extra, **STUDENT)
    rows = 32 + len(NEW) + 2 * 32
    assert sum(seen) == rows  # every row once: not once per epoch, not the extra rows twice
    [meta] = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/meta.json")]
    assert meta["num_examples"] == rows and meta["teacher_only"] == rows - 32
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["num_train_examples"] == rows and run["num_teacher_only_examples"] == rows - 32
    assert run["augment"]["unlabelled_rows"] == len(NEW) and run["augment"]["augmented_rows"] == 64
    assert run["augment"]["unlabelled_sha256"] == pkd.files.file_sha256(file, utf8=True)
    pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "b", method="kd", **extra, **{**STUDENT, "seed": 1})
    assert sum(seen) == rows  # the same rows: the cache served them
    pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "c", method="kd", augment_seed=1, **extra, **STUDENT)
    assert sum(seen) == 2 * rows and len(list((tmp_path / "cache").glob("*/meta.json"))) == 2


def test_two_processes_building_one_augmented_cache_build_it_once(tiny_teacher, glue_dir, tmp_path):
    """The teacher-cache lock holds for a cache of augmented rows: one build, the other process opens it."""
    printed = cache_together(tiny_teacher, glue_dir, tmp_path, "--max-train-examples", "16", "--augment", "3")
    assert {p["cache"] for p in printed} == {str(next((tmp_path / "cache").iterdir()))}
    assert all(p["examples"] == 64 and p["teacher_only"] == 48 for p in printed)


# ------------------------------------------------------------------------------------------------ CE on gold rows


def test_ce_is_the_mean_over_the_labelled_rows_alone():
    """pkd_loss with a labelled mask: CE over the gold rows only, whatever the others' labels say; KD over every
    row; a batch without a gold row has CE 0. Without a mask, the loss is what it always was."""
    torch.manual_seed(0)
    logits, teacher = torch.randn(6, 3, requires_grad=True), torch.randn(6, 3)
    labels, labelled = torch.tensor([0, 2, 1, 1, 0, 2]), torch.tensor([1, 0, 1, 0, 0, 1])
    cfg = LossConfig(alpha=0.7, temperature=2.0)
    parts = pkd_loss(cfg, logits, labels, False, teacher, labelled=labelled)
    gold = labelled.bool()
    assert parts["ce"].item() == pytest.approx(F.cross_entropy(logits[gold], labels[gold]).item())
    garbage = pkd_loss(cfg, logits, torch.where(gold, labels, 2 - labels), False, teacher, labelled=labelled)
    assert garbage["ce"] == parts["ce"] and garbage["loss"] == parts["loss"]
    everyone = pkd_loss(cfg, logits, labels, False, teacher)
    assert parts["kd"] == everyone["kd"]
    assert everyone["ce"].item() == pytest.approx(F.cross_entropy(logits, labels).item())
    none = pkd_loss(cfg, logits, labels, False, teacher, labelled=torch.zeros(6, dtype=torch.long))
    assert none["ce"] == 0 and none["loss"].item() == pytest.approx(cfg.alpha * none["kd"].item())
    none["loss"].backward()  # still a loss to learn from: the teacher's
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # regression and multi-label: the same mask
    values = torch.randn(6, 1)
    reg = pkd_loss(LossConfig(), values, torch.arange(6.0), True, labelled=labelled)
    assert reg["ce"].item() == pytest.approx(F.mse_loss(values[gold, 0], torch.arange(6.0)[gold]).item())
    multi, hot = torch.randn(6, 4), torch.randint(0, 2, (6, 4)).float()
    ml = pkd_loss(LossConfig(), multi, hot, False, multi_label=True, labelled=labelled)
    assert ml["ce"].item() == pytest.approx(F.binary_cross_entropy_with_logits(multi[gold], hot[gold]).item())


def test_a_student_never_learns_the_placeholder_labels_of_teacher_only_rows(tiny_teacher, glue_dir, tmp_path,
                                                                             monkeypatch):
    """The same run with the teacher-only rows' placeholder label 0 and 1 trains the same student, bit for bit: CE
    never reads them. (Had CE read them, the two students would differ.)"""
    common = dict(method="pkd-skip", augment=2, data_dir=glue_dir, cache_dir=tmp_path / "cache", quiet=True, **STUDENT)
    weights = []
    for placeholder in (0, 1):
        monkeypatch.setattr(pkd.encoding, "placeholder_label", lambda task, value=placeholder: value)
        pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / f"p{placeholder}", **common)
        weights.append(load_file(tmp_path / f"p{placeholder}" / "model.safetensors"))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # and the batches carry the mask: 1 for the 32 gold rows, 0 for the 64 copies, never a model input
    split = load_split(SST2, "train", glue_dir, 32)[0]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    extended, _ = augment.with_extra_rows(split, AugmentConfig(augment=2), model, AutoTokenizer.from_pretrained(
        tiny_teacher), progress=False)
    data = pkd.encoding.EncodedSplit(extended, AutoTokenizer.from_pretrained(tiny_teacher), 24)
    assert [data[i]["labelled"] for i in range(len(data))] == [1] * 32 + [0] * 64
    batch = pkd.encoding.make_collator(AutoTokenizer.from_pretrained(tiny_teacher))([data[0], data[40]])
    assert batch["labelled"].tolist() == [1, 0] and "labelled" not in pkd.encoding.model_inputs(batch)


# ---------------------------------------------------------------------------------------------------- refusals


def test_an_unlabelled_file_with_dev_or_test_rows_is_refused(tiny_teacher, glue_dir, tmp_path, capsys):
    dev = [line.split("\t")[0] for line in (glue_dir / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    # two dev rows, written as a person might: other spacing and case
    rows = [*NEW[:3], "  " + dev[0].strip().upper(), NEW[3], dev[5].strip().replace(" ", "   ")]
    base = ["distill", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2", "--data-dir",
            str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--max-seq-len", "24", "--quiet"]
    out = tmp_path / "s"
    assert main([*base, "--out", str(out), "--unlabelled-file", str(_unlabelled(tmp_path / "dev.jsonl", rows))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dev.jsonl: 2 of its 6 rows are dev rows (first: row 4, " in err
    assert repr("  " + dev[0].strip().upper()) in err
    assert not out.exists() and not (tmp_path / "cache").exists()  # refused before any work
    data = tmp_path / "glue"
    shutil.copytree(glue_dir / "SST-2", data / "SST-2")
    with open(data / "SST-2" / "test.tsv", "a") as f:
        f.write("10\ta woman walks in the big city\n")
    rows = [*NEW[:2], "a woman walks in the big city"]
    test_file = _unlabelled(tmp_path / "test.jsonl", rows)
    assert main([*base, "--out", str(out), "--unlabelled-file", str(test_file), "--data-dir", str(data)]) == 2
    assert "test.jsonl: 1 of its 3 rows are test rows (first: row 3, 'a woman walks in the big city')" in \
        capsys.readouterr().err


def test_own_data_takes_unlabelled_text_in_its_columns_and_refuses_its_held_out_dev_rows(tiny_bert, tmp_path,
                                                                                          capsys):
    """A task defined by a CSV without a dev file: its dev rows are a held-out share of the file, and an unlabelled
    file that holds one of them is refused; one in the training file's column is read."""
    import random

    rng = random.Random(0)
    texts = list(dict.fromkeys(" ".join(rng.choices(WORDS, k=6)) for _ in range(80)))[:60]
    train = tmp_path / "train.csv"
    train.write_text("body,label\n" + "".join(f"{t},{'yes' if i % 2 else 'no'}\n" for i, t in enumerate(texts)))
    teacher = tmp_path / "teacher"
    pkd.finetune(None, teacher, model=str(tiny_bert), train_file=str(train), text_columns="body", quiet=True,
                 **{**TINY_TRAIN, "epochs": 1})
    task = pkd.data.resolve_task(None, None, teacher)
    [dev] = load_split(task, "dev")
    held = dev.examples[0].texts[0]
    unlabelled = tmp_path / "more.csv"
    unlabelled.write_text("body\n" + "".join(f"{t}\n" for t in [*NEW[:5], held]))
    args = ["distill", "--teacher", str(teacher), "--student-layers", "2", "--cache-dir", str(tmp_path / "cache"),
            "--epochs", "1", "--max-seq-len", "24", "--quiet", "--unlabelled-file", str(unlabelled)]
    assert main([*args, "--out", str(tmp_path / "refused")]) == 2
    assert f"more.csv: 1 of its 6 rows are dev rows (first: row 6, {held!r})" in capsys.readouterr().err
    unlabelled.write_text("body\n" + "".join(f"{t}\n" for t in NEW))
    assert main([*args, "--out", str(tmp_path / "s")]) == 0
    run = json.loads((tmp_path / "s" / "run.json").read_text())
    assert run["num_teacher_only_examples"] == len(NEW) == run["augment"]["unlabelled_rows"]
    assert run["num_train_examples"] == 60 - len(dev.examples) + len(NEW)


def test_an_unlabelled_file_needs_the_tasks_text_columns(tiny_teacher, glue_dir, tmp_path, capsys):
    """Its columns are the task's (or --text-columns); a wrong set is a one-line error naming the file."""
    file = _unlabelled(tmp_path / "other.jsonl", NEW, column="text")
    model, tok = AutoModelForSequenceClassification.from_pretrained(tiny_teacher), AutoTokenizer.from_pretrained(
        tiny_teacher)
    split = load_split(SST2, "train", glue_dir, 8)[0]
    cfg = AugmentConfig(unlabelled_file=str(file))
    with pytest.raises(DataError, match=r"other.jsonl: no text column\(s\) sentence of task sst2 \(columns: text\); "
                                        "name them with --text-columns"):
        augment.with_extra_rows(split, cfg, model, tok, glue_dir)
    extended, record = augment.with_extra_rows(split, cfg, model, tok, glue_dir, text_columns="text")
    assert [e.texts for e in extended.examples[8:]] == [(t,) for t in NEW] and record["unlabelled_rows"] == len(NEW)
    with pytest.raises(UsageError, match="--text-columns text,text: sst2 has 1 text"):
        augment.with_extra_rows(split, cfg, model, tok, glue_dir, text_columns="text,text")
    race = replace(split, task=RACE)
    with pytest.raises(UsageError, match="--unlabelled-file .*: not for race"):
        augment.with_extra_rows(race, cfg, model, tok, glue_dir)


@pytest.mark.parametrize(("extra", "message"), [
    (["--augment-p", "0"], "--augment-p 0.0: must be in (0, 1]"),
    (["--augment-p", "1.5"], "--augment-p 1.5: must be in (0, 1]"),
    (["--augment", "-1"], "--augment -1: must be at least 0"),
    (["--augment-k", "0"], "--augment-k 0: must be at least 1"),
    (["--augment-model", "m"], "--augment-model m: needs --augment N"),
    (["--augment", "2", "--method", "ft"], "--method ft has no teacher to label the extra rows"),
])
def test_bad_augmentation_options_are_one_line_usage_errors(extra, message, tmp_path, capsys):
    args = ["distill", "--teacher", "t", "--task", "sst2", "--student-layers", "2", "--out", str(tmp_path / "o")]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# -------------------------------------------------------------------------------------------------- the generator


def _examples(task, texts: list[tuple[str, ...]]) -> list[Example]:
    return [Example(t, 0, str(i)) for i, t in enumerate(texts)]


def test_augmentation_is_determined_by_its_seed(neighbours):
    examples = _examples(SST2, [("the movie was very good , and the actor was great .",),
                                ("a big red dog runs in the park",), ("it is not a bad film",)] * 3)
    fields = augment.augmented_fields(SST2)
    first = augment.augment_examples(examples, fields, 4, 0.4, 0, neighbours)
    assert first == augment.augment_examples(examples, fields, 4, 0.4, 0, neighbours)
    other = augment.augment_examples(examples, fields, 4, 0.4, 1, neighbours)
    assert [e.texts for e in other] != [e.texts for e in first]
    # independent of chunking: the examples' positions seed their draws
    halves = (augment.augment_examples(examples[:4], fields, 4, 0.4, 0, neighbours)
              + augment.augment_examples(examples[4:], fields, 4, 0.4, 0, neighbours, offset=4))
    assert halves == first
    assert [e.index for e in first[:5]] == ["0~1", "0~2", "0~3", "0~4", "1~1"] and all(e.label is None for e in first)
    changed = sum(e.texts != examples[i // 4].texts for i, e in enumerate(first))
    assert changed > len(first) // 2  # p 0.4 over 5-11 words changes nearly every copy


def test_words_are_replaced_by_their_neighbours_in_place(neighbours):
    """p = 1: every single-piece word becomes one of its neighbours, in place (punctuation, spacing and
    capitals kept); a copy never keeps a replaced word."""
    text = "The movie, it was  VERY good!"
    [copy] = augment.augment_examples(_examples(SST2, [(text,)]), (0,), 1, 1.0, 0, neighbours)
    new = copy.texts[0]
    assert re.sub(r"[A-Za-z]+", "", new) == re.sub(r"[A-Za-z]+", "", text) and new != text
    for (a, b), (c, d) in zip(augment.word_spans(text), augment.word_spans(new), strict=True):
        word, replaced = text[a:b], new[c:d]
        assert replaced.lower() in neighbours.table[word.lower()] and replaced.lower() != word.lower()
        assert replaced[0].isupper() == word[0].isupper() and replaced.isupper() == (word == "VERY")


def test_multi_piece_words_and_single_letters_are_kept(tmp_path):
    """A word the tokenizer splits into pieces is never replaced, and no piece, special token or single letter is
    ever a candidate."""
    tok = make_tokenizer(tmp_path / "tok", ["the", "cat", "dog", "sat", "ran", "mat", "rug", "un", "##happy", "i",
                                            "a", "big", "small"])
    assert tok.tokenize("unhappy") == ["un", "##happy"]
    vocabulary = augment.whole_word_vocabulary(tok)
    assert set(vocabulary.values()) == {"the", "cat", "dog", "sat", "ran", "mat", "rug", "un", "big", "small"}
    replacer = augment.EmbeddingNeighbours(torch.randn(len(tok), 8), tok, 3, ["the", "unhappy", "cat", "a", "sat"])
    assert "unhappy" not in replacer.table and "a" not in replacer.table
    assert all(c in vocabulary.values() for near in replacer.table.values() for c in near)
    copies = augment.augment_examples(_examples(SST2, [("the unhappy cat sat on a mat",)]), (0,), 20, 1.0, 0,
                                      replacer)
    for copy in copies:
        words = copy.texts[0].split()
        assert words[1] == "unhappy" and words[4:6] == ["on", "a"]  # several pieces; [UNK]; a single letter
        assert words[0] != "the" and words[2] != "cat" and words[3] != "sat"


def test_pairs_augment_each_text_on_its_own_and_race_keeps_the_passage(neighbours):
    """MRPC's paraphrase pairs (the same sentence twice): each text draws its own replacements, so the copies'
    two texts differ. RACE: the question and the options change, the passage never does."""
    sentence = "the big dog sat on the red mat and it was a very good dog"
    copies = augment.augment_examples(_examples(MRPC, [(sentence, sentence)]), augment.augmented_fields(MRPC), 10,
                                      0.4, 0, neighbours)
    assert all(a != sentence and b != sentence for a, b in (c.texts for c in copies))
    assert sum(a != b for a, b in (c.texts for c in copies)) == 10
    passage = "the man and the woman walk in the park , the cat sat on the mat ."
    race = [Example((passage, "who sat on the _ ?", "the cat", "the dog", "a man", "a big woman"), 0, "p-0", "high")]
    assert augment.augmented_fields(RACE) == (1, 2, 3, 4, 5)
    copies = augment.augment_examples(race, augment.augmented_fields(RACE), 5, 0.6, 0, neighbours)
    assert all(c.texts[0] == passage and c.level == "high" for c in copies)
    assert any(c.texts[1] != race[0].texts[1] for c in copies) and any(c.texts[2:] != race[0].texts[2:]
                                                                       for c in copies)


def test_a_fill_mask_model_gives_the_candidates_with_augment_model(tmp_path, glue_dir, tiny_teacher):
    """--augment-model: a local masked LM (tiny, random) predicts each replaced word; its predictions are whole
    single-piece words of its vocabulary other than the word, and the copies are seeded as before."""
    mlm = make_tiny_mlm(tmp_path / "mlm")
    replacer = augment.MaskedLMPredictions(str(mlm), 4)
    examples = _examples(SST2, [("the movie was very good",), ("a dog runs in the park",)])
    copies = augment.augment_examples(examples, (0,), 3, 1.0, 0, replacer)
    assert copies == augment.augment_examples(examples, (0,), 3, 1.0, 0, replacer)
    vocabulary = set(augment.whole_word_vocabulary(AutoTokenizer.from_pretrained(mlm)).values())
    for copy in copies:
        source = examples[int(copy.index.split("~")[0])].texts[0].split()
        for old, new in zip(source, copy.texts[0].split(), strict=True):
            assert new == old if old in ("in", "a") else (new in vocabulary and new != old)  # [UNK], a letter
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    split = load_split(SST2, "train", glue_dir, 8)[0]
    extended, record = augment.with_extra_rows(split, AugmentConfig(augment=2, augment_model=str(mlm)), model,
                                               AutoTokenizer.from_pretrained(tiny_teacher), progress=False)
    assert len(extended.examples) == 24 and record["augment_model"] == str(mlm)


def test_generation_runs_in_chunks_with_a_progress_line_after_the_cost(tiny_teacher, glue_dir, monkeypatch, capsys):
    monkeypatch.setattr(augment, "CHUNK", 10)
    split = load_split(SST2, "train", glue_dir, 32)[0]
    model, tok = AutoModelForSequenceClassification.from_pretrained(tiny_teacher), AutoTokenizer.from_pretrained(
        tiny_teacher)
    capsys.readouterr()
    extended, _ = augment.with_extra_rows(split, AugmentConfig(augment=2), model, tok, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("pkd: extra rows for the teacher: 0 unlabelled + 64 augmented")
    chunks = [line for line in lines if line.startswith("augment: chunk ")]
    assert [c.split(",")[0] for c in chunks] == [f"augment: chunk {i}/4 ({25 * i}%)" for i in range(1, 5)]
    assert "texts_per_s" in chunks[-1]
    monkeypatch.setattr(augment, "CHUNK", 1000)
    assert augment.with_extra_rows(split, AugmentConfig(augment=2), model, tok, progress=False)[0] == extended


def test_the_cost_is_said_before_generation_and_the_dev_split_is_never_augmented(tiny_teacher, glue_dir, tmp_path,
                                                                                 capsys):
    best = pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "s", augment=3, data_dir=glue_dir,
                       cache_dir=tmp_path / "cache", quiet=True, **STUDENT)
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("pkd: extra rows for the teacher:"))
    assert "0 unlabelled + 96 augmented (32 examples x 3 copies, 96 texts; p 0.4, k 15, seed 0" in line
    assert "the teacher cache holds 128 rows" in line and "(4.0x the labelled split's rows" in line
    dev = (glue_dir / "SST-2" / "dev.tsv").read_text().splitlines()[1:]
    assert len(np.load(tmp_path / "s" / "predictions" / "dev-epoch1.npy")) == len(dev)
    assert best["accuracy"] == pytest.approx(pkd.evaluate(str(tmp_path / "s"), "sst2", data_dir=glue_dir)["accuracy"])
    split = load_split(SST2, "train", glue_dir, 32)[0]
    extended, _ = augment.with_extra_rows(split, AugmentConfig(augment=3),
                                          AutoModelForSequenceClassification.from_pretrained(tiny_teacher),
                                          AutoTokenizer.from_pretrained(tiny_teacher), progress=False)
    assert {e.index.split("~")[0] for e in extended.examples[32:]} == {e.index for e in split.examples}


# ------------------------------------------------------------------------------------------- resume and students


def test_resume_refuses_other_augmentation_or_another_unlabelled_file(tiny_teacher, glue_dir, tmp_path, capsys):
    file = _unlabelled(tmp_path / "more.jsonl", NEW)
    out = tmp_path / "s"
    args = ["distill", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2", "--data-dir",
            str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "16", "--lr",
            "2e-3", "--max-seq-len", "24", "--max-train-examples", "32", "--quiet", "--out", str(out),
            "--augment", "2", "--unlabelled-file", str(file)]
    assert main(args) == 0
    kept = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*args, "--resume", "--augment", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # the notes of the run, then the one-line refusal
    assert err[-1].startswith(f"pkd: error: --resume {out}: its run was made with other settings: ")
    assert "augment.augment 2 (now 3)" in err[-1] and "augment.augmented_rows 64 (now 96)" in err[-1]
    _unlabelled(file, NEW[:-1])  # the same path, other rows
    assert main([*args, "--resume"]) == 2
    assert "augment.unlabelled_sha256" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept
    _unlabelled(file, NEW)
    assert main([*args, "--resume"]) == 0  # the same settings and rows: a finished run returns its result


def test_a_student_of_another_vocabulary_reads_the_extra_rows_through_its_own_tokenizer(tiny_teacher, glue_dir,
                                                                                        tmp_path):
    """The extra rows are text: the teacher's cache is of its own reading, the student's batches of its own."""
    other = make_tiny_model(tmp_path / "other", words=["cinema" if w == "movie" else w for w in WORDS])
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    record = json.loads((teacher / "run.json").read_text())
    (teacher / "run.json").write_text(json.dumps({**record, "base_model": str(other)}))
    for live in (False, True):
        out = tmp_path / f"s-{live}"
        pkd.distill(str(teacher), "sst2", 2, out, augment=2, data_dir=glue_dir, cache_dir=tmp_path / "c",
                    live_teacher=live, quiet=True, **STUDENT)
        run = json.loads((out / "run.json").read_text())
        assert run["tokenizers"]["student"] != run["tokenizers"]["teacher"] and run["num_train_examples"] == 96
    [meta] = [json.loads(p.read_text()) for p in (tmp_path / "c").glob("*/meta.json")]
    assert meta["num_examples"] == 96


# --------------------------------------------------------------------------------------- the commands and options


def test_every_command_takes_the_options_through_one_config(tmp_path):
    given = ["--unlabelled-file", "u.jsonl", "--augment", "3", "--augment-p", "0.5", "--augment-k", "5",
             "--augment-seed", "7", "--augment-model", "mlm"]
    expected = AugmentConfig(unlabelled_file="u.jsonl", augment=3, augment_p=0.5, augment_k=5, augment_seed=7,
                             augment_model="mlm")
    common = ["--task", "sst2", "--teacher", "t"]
    for command, extra in (("distill", ["--student-layers", "2", "--out", "o"]),
                           ("compare", ["--student-layers", "2", "--out", "o"]),
                           ("sweep", ["--student-layers", "2", "--out", "o", "--grid", "alpha=0.5"]),
                           ("cache", [])):
        args = build_parser().parse_args([command, *common, *extra, *given])
        assert configs(args, AugmentConfig)[0] == expected, command
        if command != "cache":
            assert configs(args, DistillConfig)[0].augmentation == expected, command
        default = build_parser().parse_args([command, *common, *extra])
        assert configs(default, AugmentConfig)[0] == AugmentConfig() and not AugmentConfig().active
    assert all(f.metadata.get("help") for f in fields(AugmentConfig))
    assert AugmentConfig(augment_p=0.9).applied() == AugmentConfig() and expected.applied() == expected
    assert pkd.config.from_options({"teacher": "t", "student_layers": 2, "augment": 4},
                                   DistillConfig)[0].augmentation == AugmentConfig(augment=4)
    assert DataConfig().text_columns is None


def test_compare_trains_ft_on_the_labelled_rows_and_the_others_on_every_row(tiny_teacher, glue_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2", "--seeds", "1",
            "--methods", "ft,kd", "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--epochs",
            "1", "--max-train-examples", "32", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24",
            "--augment", "2", "--out", str(out), "--quiet"]
    assert main(args) == 0
    ft, kd = (json.loads((out / f"{m}-seed42" / "run.json").read_text()) for m in ("ft", "kd"))
    assert ft["num_train_examples"] == 32 and ft["augment"]["augment"] == 0
    assert kd["num_train_examples"] == 96 and kd["augment"]["augmented_rows"] == 64
    summary = json.loads((out / "compare.json").read_text())
    assert summary["augment"]["augment"] == 2
    # --config compare.json reruns it, augmentation included; another --augment is refused for KD, not for FT
    capsys.readouterr()
    assert main(["compare", "--config", str(out / "compare.json"), "--teacher", str(tiny_teacher), "--data-dir",
                 str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--resume",
                 "--quiet"]) == 0
    assert main([*args, "--resume", "--augment", "1"]) == 2
    err = capsys.readouterr().err
    assert "kd-seed42: its run was made with other settings" in err and "augment.augment 2 (now 1)" in err


def test_sweep_builds_the_augmented_cache_once_for_its_trials(tiny_teacher, glue_dir, tmp_path, monkeypatch):
    seen = _counting_teacher(monkeypatch)
    out = tmp_path / "sweep"
    pkd.sweep(str(tiny_teacher), "sst2", 2, out, ["alpha=0.5,0.9"], method="kd", augment=2, data_dir=glue_dir,
              cache_dir=tmp_path / "cache", quiet=True, **STUDENT)
    assert sum(seen) == 96  # built before the trials, found by each
    trials = [json.loads(p.read_text()) for p in out.glob("*/run.json")]
    assert len(trials) == 2 and all(t["augment"]["augmented_rows"] == 64 for t in trials)
    assert json.loads((out / "sweep.json").read_text())["augment"]["augment"] == 2


def test_pkd_cache_labels_the_extra_rows(tiny_teacher, glue_dir, tmp_path, capsys):
    file = _unlabelled(tmp_path / "more.jsonl", NEW)
    assert main(["cache", "--teacher", str(tiny_teacher), "--task", "sst2", "--data-dir", str(glue_dir),
                 "--cache-dir", str(tmp_path / "cache"), "--max-seq-len", "24", "--max-train-examples", "16",
                 "--layers", "2", "--unlabelled-file", str(file), "--augment", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["examples"] == 16 + len(NEW) + 16 and printed["teacher_only"] == len(NEW) + 16
    cache = pkd.cache.TeacherCache(printed["cache"])
    assert cache.logits.shape == (printed["examples"], 2) and np.isfinite(np.asarray(cache.logits)).all()
    split = Split(SST2, "train", [], "memory", "x")
    assert augment.with_extra_rows(split, AugmentConfig(), None, None) == (split, augment.record(AugmentConfig()))
