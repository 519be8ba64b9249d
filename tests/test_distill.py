import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN, make_tiny_model
from safetensors.torch import load_file

import pkd
import pkd.cache
from pkd.cli import main
from pkd.errors import DataError, UsageError
from pkd.io import read_jsonl

STUDENT = {**TINY_TRAIN, "epochs": 2}


def test_distill_cli_pkd_skip(tiny_teacher, glue_dir, tmp_path, capsys):
    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2",
                 "--method", "pkd-skip", "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache"),
                 "--epochs", "2", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24", "--beta", "1.0",
                 "--out", str(out), "--quiet"])
    assert code == 0
    best = json.loads(capsys.readouterr().out)["best"]
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "pkd-skip" and run["layer_map"] == [2] and run["init_layers"] == [1, 2]
    assert run["loss"] == {"alpha": 0.7, "temperature": 10.0, "beta": 1.0, "normalize": True}
    assert len(read_jsonl(out / "metrics.jsonl")) == 2
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2
    assert pkd.evaluate(str(out), "sst2", data_dir=glue_dir)["accuracy"] == pytest.approx(best["accuracy"])


def test_training_from_the_cache_never_runs_the_teacher(tiny_teacher, glue_dir, tmp_path, monkeypatch):
    pkd.build_cache(str(tiny_teacher), "sst2", [2], data_dir=glue_dir, cache_dir=tmp_path, max_seq_len=24)

    def forbidden(*args, **kwargs):
        raise AssertionError("the teacher ran during training")

    monkeypatch.setattr(pkd.cache, "teacher_forward", forbidden)
    best = pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "s", method="pkd-skip", data_dir=glue_dir,
                       cache_dir=tmp_path, quiet=True, **STUDENT)
    assert best["accuracy"] >= 0


def test_cached_and_live_teacher_train_the_same_student(tiny_teacher, glue_dir, tmp_path):
    common = dict(method="pkd-last", data_dir=glue_dir, cache_dir=tmp_path / "cache", quiet=True,
                  **{**STUDENT, "epochs": 1})
    cached = pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "cached", **common)
    live = pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "live", live_teacher=True, **common)
    assert cached["accuracy"] == live["accuracy"]
    a, b = load_file(tmp_path / "cached" / "model.safetensors"), load_file(tmp_path / "live" / "model.safetensors")
    for k in a:  # the cache is fp16: equal up to that rounding
        torch.testing.assert_close(a[k], b[k], atol=5e-3, rtol=0)


def test_kd_and_ft_baselines_ignore_pt(tiny_teacher, glue_dir, tmp_path):
    for method in ("ft", "kd"):
        pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / method, method=method, data_dir=glue_dir,
                    cache_dir=tmp_path / "cache", quiet=True, **STUDENT)
        loss = json.loads((tmp_path / method / "run.json").read_text())["loss"]
        assert loss["beta"] == 0 and loss["alpha"] == (0 if method == "ft" else 0.7)


def test_regression_distillation(tiny_bert, glue_dir, tmp_path):
    pkd.finetune("stsb", tmp_path / "t", model=str(tiny_bert), data_dir=glue_dir, quiet=True, **STUDENT)
    best = pkd.distill(str(tmp_path / "t"), "stsb", 2, tmp_path / "s", method="pkd-skip", data_dir=glue_dir,
                       cache_dir=tmp_path / "cache", quiet=True, **STUDENT)
    assert {"pearson", "spearman"} <= set(best)


def _teacher_with_base(tiny_teacher, tmp_path, base):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher, teacher)
    run = json.loads((teacher / "run.json").read_text())
    (teacher / "run.json").write_text(json.dumps({**run, "base_model": str(base)}))
    return teacher


def test_different_hidden_size_needs_projection(tiny_teacher, glue_dir, tmp_path):
    small = make_tiny_model(tmp_path / "h16", hidden=16)
    teacher = _teacher_with_base(tiny_teacher, tmp_path, small)
    with pytest.raises(UsageError, match="--pt-projection"):
        pkd.distill(str(teacher), "sst2", 2, tmp_path / "s", data_dir=glue_dir, cache_dir=tmp_path / "c",
                    quiet=True, **STUDENT)
    assert not (tmp_path / "s").exists()
    best = pkd.distill(str(teacher), "sst2", 2, tmp_path / "s", data_dir=glue_dir, cache_dir=tmp_path / "c",
                       pt_projection=True, quiet=True, save_every=1, **STUDENT)
    assert best["accuracy"] >= 0
    ckpt = sorted((tmp_path / "s" / "checkpoints").iterdir())[-1]
    assert (ckpt / "projection.safetensors").is_file()  # the projection is part of the resumable state


def test_different_vocabulary_is_refused(tiny_teacher, glue_dir, tmp_path):
    other = make_tiny_model(tmp_path / "other")
    (other / "tokenizer.json").write_text((other / "tokenizer.json").read_text().replace('"movie"', '"cinema"'))
    teacher = _teacher_with_base(tiny_teacher, tmp_path, other)
    with pytest.raises(DataError, match="tokenizer differs"):
        pkd.distill(str(teacher), "sst2", 2, tmp_path / "s", data_dir=glue_dir, quiet=True, **STUDENT)


def test_compare_table_and_resume(tiny_teacher, glue_dir, tmp_path, capsys):
    args = ["compare", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2", "--seeds", "2",
            "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24", "--seed", "7", "--out", str(tmp_path / "cmp"),
            "--quiet"]
    assert main(args) == 0
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert set(table["methods"]) == {"ft", "kd", "pkd-skip", "pkd-last"}
    assert len(list((tmp_path / "cache").iterdir())) == 1  # one cache serves every method and seed
    for method, row in table["methods"].items():
        runs = [json.loads((tmp_path / "cmp" / f"{method}-seed{s}" / "result.json").read_text()) for s in (7, 8)]
        assert row["scores"] == [r["score"] for r in runs]
        assert row["mean"] == pytest.approx(sum(row["scores"]) / 2)
        assert row["retention"] == pytest.approx(100 * row["mean"] / table["teacher_score"])
    printed = capsys.readouterr().out
    assert "| pkd-skip |" in printed
    # Run again with --resume: every finished run is reused, so the table is unchanged.
    assert main([*args, "--resume"]) == 0
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["methods"] == table["methods"]


def test_compare_students_start_from_the_fine_tuned_teacher(tiny_teacher, glue_dir, tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2",
                 "--seeds", "1", "--methods", "ft,pkd-skip", "--student-init", "teacher", "--data-dir", str(glue_dir),
                 "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "16", "--lr", "2e-3",
                 "--max-seq-len", "24", "--seed", "0", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "compare.json").read_text())["student_init"] == "teacher"
    for method in ("ft", "pkd-skip"):
        run = json.loads((out / f"{method}-seed0" / "run.json").read_text())
        assert run["student_init"] == "teacher"
        assert Path(run["student_source"]).resolve() == tiny_teacher.resolve()
