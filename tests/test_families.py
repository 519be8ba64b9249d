"""Beyond the BERT family: an MPNet teacher end to end (the 12-layer teacher of docs/paper.md is all-mpnet-base-v2),
and a student of another family, with a vocabulary and a width of its own (issue 36, items 2 and 3)."""

import json
import shutil

import pytest
import torch
from conftest import TINY_TRAIN, WORDS, make_tiny_model
from test_race import write_race
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import pkd
from pkd.cache import LiveTeacher, ensure_cache
from pkd.cli import main
from pkd.data import load_split
from pkd.encoding import EncodedSplit, make_collator
from pkd.tasks import get_task

FAST = ["--epochs", "1", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24", "--seed", "0", "--quiet"]
# Another order and half of the words (the rest read as [UNK]), so no token id means what it means to the teacher.
OTHER_WORDS = sorted(WORDS, reverse=True)[::2]


def cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def mpnet_teacher(glue_dir, tmp_path_factory):
    base = make_tiny_model(tmp_path_factory.mktemp("mpnet") / "base", family="mpnet", layers=4)
    out = base.parent / "teacher"
    pkd.finetune("sst2", out, model=str(base), data_dir=glue_dir, quiet=True, **TINY_TRAIN)
    return out


@pytest.fixture(scope="module")
def other_family(tmp_path_factory):
    """A 2-layer RoBERTa, 48 wide (the teacher is a 4-layer, 32-wide BERT), with its own vocabulary: the 2-layer
    students take all of its layers, as all-MiniLM-L6-v2 is a 6-layer student of a 12-layer teacher."""
    return make_tiny_model(tmp_path_factory.mktemp("roberta") / "base", family="roberta", layers=2, hidden=48,
                           words=OTHER_WORDS)


def test_an_mpnet_teacher_distils_in_both_poolings_then_exports_and_benches(mpnet_teacher, glue_dir, tmp_path,
                                                                            capsys):
    cache = tmp_path / "cache"
    for pooling in ("cls", "mean"):
        code, _, err = cli(capsys, "distill", "--teacher", mpnet_teacher, "--task", "sst2", "--data-dir", glue_dir,
                           "--student-layers", "2", "--method", "pkd-skip", "--pt-pooling", pooling,
                           "--cache-dir", cache, "--out", tmp_path / pooling, *FAST)
        assert code == 0, err
        run = json.loads((tmp_path / pooling / "run.json").read_text())
        assert run["layer_map"] == [2] and run["loss"]["pt_pooling"] == pooling
        config = json.loads((tmp_path / pooling / "config.json").read_text())
        assert config["model_type"] == "mpnet" and config["num_hidden_layers"] == 2
    assert sorted(json.loads(m.read_text())["pooling"] for m in cache.glob("*/meta.json")) == ["cls", "mean"]
    for quantize in ("none", "int8"):
        code, _, err = cli(capsys, "export", tmp_path / "cls", "--out", tmp_path / f"onnx-{quantize}", "--quantize",
                           quantize, "--data-dir", glue_dir)
        assert code == 0, err
        record = json.loads((tmp_path / f"onnx-{quantize}" / "export.json").read_text())
        assert record["parity"]["agreement"] >= (1.0 if quantize == "none" else 0.75)
    code, out, err = cli(capsys, "bench", tmp_path / "cls", tmp_path / "onnx-int8", "--seq-len", "8",
                         "--batch-sizes", "1", "--repeats", "1", "--warmup", "0", "--threads", "1", "--json")
    assert code == 0, err
    assert [m["layers"] for m in json.loads(out)["models"]] == [2, 2]


def test_an_mpnet_teacher_on_race_multiple_choice(tmp_path, capsys):
    race = write_race(tmp_path / "race")
    base = make_tiny_model(tmp_path / "base", family="mpnet", layers=4)
    pkd.finetune("race", tmp_path / "teacher", model=str(base), data_dir=race, quiet=True, **TINY_TRAIN)
    assert json.loads((tmp_path / "teacher" / "config.json").read_text())["architectures"] == ["MPNetForMultipleChoice"]
    code, _, err = cli(capsys, "distill", "--teacher", tmp_path / "teacher", "--task", "race", "--data-dir", race,
                       "--student-layers", "2", "--method", "pkd-skip", "--cache-dir", tmp_path / "cache",
                       "--out", tmp_path / "student", *FAST)
    assert code == 0, err
    assert {"accuracy_high", "accuracy_middle"} <= set(pkd.evaluate(str(tmp_path / "student"), "race", data_dir=race))


def test_a_student_of_another_family_reads_its_own_tokens_and_learns_the_teachers_outputs(tiny_teacher, other_family,
                                                                                         glue_dir, tmp_path):
    """The live teacher reads each example of a student batch through its own tokenizer, by the example's index:
    it gives what the cache stores, not what the student's token ids would mean to the teacher."""
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher).eval()
    teacher_tok, student_tok = AutoTokenizer.from_pretrained(tiny_teacher), AutoTokenizer.from_pretrained(other_family)
    (split,) = load_split(get_task("sst2"), "train", glue_dir)
    teacher_data, student_data = EncodedSplit(split, teacher_tok, 24), EncodedSplit(split, student_tok, 24)
    batch = make_collator(student_tok)([student_data[i] for i in (3, 7, 11)])
    assert not torch.equal(batch["input_ids"], make_collator(teacher_tok)([teacher_data[i] for i in (3, 7, 11)])
                           ["input_ids"])
    cached = ensure_cache(teacher, teacher_tok, teacher_data, 24, [2], tmp_path).outputs(batch, [2])
    live = LiveTeacher(teacher, "cls", teacher_data, teacher_tok).outputs(batch, [2])
    for got, want in zip(live, cached, strict=True):
        torch.testing.assert_close(got, want, atol=2e-2, rtol=1e-2)  # the cache's fp16 rounding
    unmapped = LiveTeacher(teacher).outputs(batch, [2])[0]
    assert not torch.allclose(unmapped, cached[0], atol=2e-2)


def vocabulary(path) -> dict:
    return AutoTokenizer.from_pretrained(path).get_vocab()


def test_a_student_of_another_family_distils_evaluates_predicts_and_exports(tiny_teacher, other_family, glue_dir,
                                                                            tmp_path, capsys):
    other_family = shutil.copytree(other_family, tmp_path / "base")  # its tokenizer is changed below
    args = ["distill", "--teacher", tiny_teacher, "--task", "sst2", "--data-dir", glue_dir, "--student-layers", "2",
            "--student-base", other_family, "--method", "pkd-skip", "--cache-dir", tmp_path / "cache", *FAST]
    code, _, err = cli(capsys, *args, "--out", tmp_path / "no-projection")
    assert code == 2 and "--pt-projection" in err and "48" in err and "32" in err
    assert not (tmp_path / "no-projection").exists()

    out = tmp_path / "student"
    code, _, err = cli(capsys, *args, "--pt-projection", "--out", out)
    assert code == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["student_source"] == str(other_family) and run["tokenizers"]["teacher"] != run["tokenizers"]["student"]
    assert json.loads((out / "config.json").read_text())["model_type"] == "roberta"
    assert vocabulary(out) == vocabulary(other_family) != vocabulary(tiny_teacher)  # the student's own
    (meta,) = (json.loads(m.read_text()) for m in (tmp_path / "cache").glob("*/meta.json"))
    assert meta["layers"] == [2] and meta["num_examples"] == run["num_train_examples"]

    code, scores, err = cli(capsys, "evaluate", out, "--task", "sst2", "--data-dir", glue_dir, "--json")
    assert code == 0, err
    assert json.loads(scores)["accuracy"] == pytest.approx(json.loads((out / "result.json").read_text())["accuracy"])
    code, _, err = cli(capsys, "predict", out, "--task", "sst2", "--data-dir", glue_dir, "--out", tmp_path / "p.tsv")
    assert code == 0 and len((tmp_path / "p.tsv").read_text().splitlines()) > 1, err
    code, _, err = cli(capsys, "export", out, "--out", tmp_path / "onnx", "--quantize", "int8", "--data-dir", glue_dir)
    assert code == 0, err
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["parity"]["agreement"] >= 0.75

    # The student's tokenizer changed under the same path: --resume refuses, naming it.
    (other_family / "vocab.txt").write_text((other_family / "vocab.txt").read_text().replace("woman", "women"))
    (other_family / "tokenizer.json").unlink()
    code, _, err = cli(capsys, *args, "--pt-projection", "--out", out, "--resume")
    assert code == 2 and "tokenizers.student" in err


def test_compare_with_a_student_of_another_family_scores_the_teacher_through_its_own_tokenizer(
        tiny_teacher, other_family, glue_dir, tmp_path, capsys):
    code, _, err = cli(capsys, "compare", "--teacher", tiny_teacher, "--task", "sst2", "--data-dir", glue_dir,
                       "--student-layers", "2", "--student-base", other_family, "--pt-projection", "--methods",
                       "kd,pkd-skip", "--seeds", "1", "--cache-dir", tmp_path / "cache", "--out", tmp_path / "c",
                       *FAST)
    assert code == 0, err
    compared = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert compared["teacher_score"] == pytest.approx(pkd.evaluate(str(tiny_teacher), "sst2",
                                                                   data_dir=glue_dir)["score"])
    for method in ("kd", "pkd-skip"):
        assert vocabulary(tmp_path / "c" / f"{method}-seed0") == vocabulary(other_family)
