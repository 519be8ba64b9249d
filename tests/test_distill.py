import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, make_tiny_model
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import pkd
import pkd.cache
import pkd.train
from pkd.cache import LiveTeacher
from pkd.cli import main
from pkd.config import LossConfig
from pkd.errors import UsageError
from pkd.io import read_jsonl
from pkd.losses import layer_map_for
from pkd.rundir import selected_record
from pkd.tasks import get_task

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
    # The tiny random teacher's [CLS] is alike across inputs below its top, so auto pools the mean (pkd.patient).
    assert run["loss"] == {"alpha": 0.7, "temperature": 10.0, "beta": 1.0, "normalize": True, "pt_pooling": "mean"}
    assert run["pt_signal"]["pooling"] == "mean" and set(run["pt_signal"]["layers"]) == {"2"}
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
    assert {"accuracy", "score"} <= set(best)  # the run finished
    assert json.loads((tmp_path / "s" / "run.json").read_text())["cache"] == str(next(tmp_path.glob("*/meta.json")
                                                                                     ).parent)


def test_cached_and_live_teacher_train_the_same_student(tiny_teacher, glue_dir, tmp_path):
    common = dict(method="pkd-last", data_dir=glue_dir, cache_dir=tmp_path / "cache", quiet=True,
                  **{**STUDENT, "epochs": 1})
    cached = pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "cached", **common)
    live = pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "live", live_teacher=True, **common)
    assert cached["accuracy"] == live["accuracy"]
    a, b = load_file(tmp_path / "cached" / "model.safetensors"), load_file(tmp_path / "live" / "model.safetensors")
    for k in a:  # the cache is fp16: equal up to that rounding
        torch.testing.assert_close(a[k], b[k], atol=5e-3, rtol=0)


def _edited_copy(cache_root, out_root, **edits):
    """A copy of the one cache under cache_root, under the same key, with its arrays replaced by
    edits[name](array) (and the checksums to match)."""
    (src,) = [p.parent for p in cache_root.glob("*/meta.json")]
    dst = Path(shutil.copytree(src, out_root / src.name))
    meta = json.loads((dst / "meta.json").read_text())
    for name, edit in edits.items():
        arr = np.load(dst / f"{name}.npy", mmap_mode="r+")
        arr[:] = edit(arr)
        arr.flush()
        del arr
        meta["sha256"][name] = hashlib.sha256((dst / f"{name}.npy").read_bytes()).hexdigest()
    (dst / "meta.json").write_text(json.dumps(meta))


def _noise(arr):
    return np.random.default_rng(0).normal(0, 3, arr.shape)


def test_kd_and_ft_baselines_ignore_pt(tiny_teacher, glue_dir, tmp_path):
    """Train on the cache, and on a copy whose [CLS] states (and, for FT, logits) are noise: KD and FT students
    come out bit-identical, so PT (and for FT the teacher) contributes nothing; PKD-Skip's differs."""
    opts = {**STUDENT, "epochs": 1, "max_train_examples": 32}
    pkd.build_cache(str(tiny_teacher), "sst2", [1, 2, 3], data_dir=glue_dir, cache_dir=tmp_path / "cache",
                    max_seq_len=24, max_train_examples=32)  # one wide cache serves every method
    _edited_copy(tmp_path / "cache", tmp_path / "noisy-cls", cls=_noise)
    _edited_copy(tmp_path / "cache", tmp_path / "noisy-all", cls=_noise, logits=_noise)
    for method, noisy, same in (("ft", "noisy-all", True), ("kd", "noisy-cls", True),
                                ("pkd-skip", "noisy-cls", False)):
        weights = []
        for cache in ("cache", noisy):
            out = tmp_path / f"{method}-{cache}"
            pkd.distill(str(tiny_teacher), "sst2", 2, out, method=method, data_dir=glue_dir,
                        cache_dir=tmp_path / cache, quiet=True, **opts)
            weights.append(load_file(out / "model.safetensors"))
        equal = all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
        assert equal == same, method


def test_each_epoch_logs_the_terms_its_loss_computes(tiny_teacher, glue_dir, tmp_path):
    """metrics.jsonl has the epoch's mean of each unweighted term the method trains on (FT: CE; KD: CE and KD;
    PKD: and PT), and they recombine with the weights to the logged train_loss."""
    weights = LossConfig(alpha=0.7, temperature=10.0, beta=0.65)  # the distillation defaults
    expected = {"ft": {"train_ce"}, "kd": {"train_ce", "train_kd"}, "pkd-skip": {"train_ce", "train_kd", "train_pt"}}
    for method, terms in expected.items():
        out = tmp_path / method
        pkd.distill(str(tiny_teacher), "sst2", 2, out, method=method, data_dir=glue_dir, cache_dir=tmp_path / "c",
                    quiet=True, **{**STUDENT, "max_train_examples": 32})
        for epoch in read_jsonl(out / "metrics.jsonl"):
            assert {k for k in epoch if k.startswith("train_") and k != "train_loss"} == terms, method
            ce, kd, pt = (epoch.get(f"train_{t}", 0.0) for t in ("ce", "kd", "pt"))
            alpha = 0.0 if method == "ft" else weights.alpha
            assert epoch["train_loss"] == pytest.approx((1 - alpha) * ce + alpha * kd + weights.beta * pt, rel=1e-5)
            assert all(epoch[t] > 0 for t in terms), method


def test_regression_distillation(tiny_bert, glue_dir, tmp_path):
    """STS-B KD regresses on the teacher's outputs: with alpha = 1, a cache whose teacher outputs are all +5
    and one where they are all -5 (the gold scores are 0.5 and 4.5) pull the same initial student apart, each
    toward its own teacher, on every dev example."""
    opts = {**STUDENT, "epochs": 1}
    pkd.finetune("stsb", tmp_path / "t", model=str(tiny_bert), data_dir=glue_dir, quiet=True, **opts)
    pkd.build_cache(str(tmp_path / "t"), "stsb", [], data_dir=glue_dir, cache_dir=tmp_path / "cache", max_seq_len=24)
    (cache,) = [p.parent for p in (tmp_path / "cache").glob("*/meta.json")]
    assert np.load(cache / "logits.npy").shape == (256, 1)  # one output per example
    means = {}
    for target in (5.0, -5.0):
        _edited_copy(tmp_path / "cache", tmp_path / f"cache{target}", logits=lambda a, t=target: np.full(a.shape, t))
        out = tmp_path / f"student{target}"
        pkd.distill(str(tmp_path / "t"), "stsb", 2, out, method="kd", alpha=1.0, data_dir=glue_dir,
                    cache_dir=tmp_path / f"cache{target}", quiet=True, **opts)
        [preds] = pkd.predict(str(out), "stsb", tmp_path / f"{target}.tsv", split="dev", data_dir=glue_dir)
        means[target] = np.mean([float(line.split("\t")[1]) for line in preds.read_text().splitlines()[1:]])
    assert means[5.0] > 0.3 and means[-5.0] < -0.3, means  # measured: +0.61 and -0.49 after one epoch


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
    pkd.distill(str(teacher), "sst2", 2, tmp_path / "s", data_dir=glue_dir, cache_dir=tmp_path / "c",
                pt_projection=True, quiet=True, save_every=1, keep_checkpoints=100, **STUDENT)
    first, *_, last = sorted((tmp_path / "s" / "checkpoints").iterdir())
    # the projection is part of the resumable state, and it is trained
    a, b = load_file(first / "projection.safetensors"), load_file(last / "projection.safetensors")
    assert a["maps.0.weight"].shape == (32, 16) and not torch.equal(a["maps.0.weight"], b["maps.0.weight"])


def test_a_base_with_another_vocabulary_gives_a_student_that_reads_through_its_own(tiny_teacher, glue_dir, tmp_path):
    """Once refused ("teacher and student must share one vocabulary"): the student now keeps its base's tokenizer,
    and learns from the teacher's outputs for the same examples (tests/test_families.py covers a whole other
    family)."""
    other = make_tiny_model(tmp_path / "other")
    (other / "tokenizer.json").write_text((other / "tokenizer.json").read_text().replace('"movie"', '"cinema"'))
    teacher = _teacher_with_base(tiny_teacher, tmp_path, other)
    pkd.distill(str(teacher), "sst2", 2, tmp_path / "s", data_dir=glue_dir, quiet=True, **STUDENT)
    run = json.loads((tmp_path / "s" / "run.json").read_text())
    assert run["tokenizers"]["student"] != run["tokenizers"]["teacher"]
    vocab = AutoTokenizer.from_pretrained(tmp_path / "s").get_vocab()
    assert "cinema" in vocab and "movie" not in vocab


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
        assert row["gain_retention"] == pytest.approx(
            100 * (row["mean"] - table["floor_score"]) / (table["teacher_score"] - table["floor_score"]))
    # The floor: the training set's majority label for every dev example, scored by the task's metric.
    train_labels = [line.split("\t")[1] for line in (glue_dir / "SST-2" / "train.tsv").read_text().splitlines()[1:]]
    dev_labels = [line.split("\t")[1] for line in (glue_dir / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    majority = max(set(train_labels), key=train_labels.count)
    assert table["floor_score"] == pytest.approx(100 * dev_labels.count(majority) / len(dev_labels))
    printed = capsys.readouterr().out
    assert "| pkd-skip |" in printed and "| pkd-skip vs kd |" in printed
    assert table["select"] == "best" and "| method | best-epoch dev score (mean ± std) | per seed |" in printed
    for method, row in table["methods"].items():  # each seed's score beside the mean, in seed order
        assert f"| {method} | {row['mean']:.2f} ± {row['std']:.2f} | {row['scores'][0]:.2f}, {row['scores'][1]:.2f} |" \
            in printed
    # The verdicts compare the very predictions behind each run's recorded best score, seed for seed.
    scores = {m: row["scores"] for m, row in table["methods"].items()}
    pairs = {(v["a"], v["b"]): v for v in table["verdicts"]}
    assert set(pairs) == {("pkd-skip", "kd"), ("pkd-last", "kd"), ("kd", "ft"), ("pkd-skip", "ft"),
                          ("pkd-skip", "pkd-last")}
    for (a, b), v in pairs.items():
        assert v["diff"] == pytest.approx(sum(x - y for x, y in zip(scores[a], scores[b], strict=True)) / 2)
        assert v["low"] <= v["diff"] <= v["high"] and v["seeds"] == 2 and v["examples"] == table["dev_examples"]
        assert v["verdict"] == ("better" if v["low"] > 0 else "worse" if v["high"] < 0 else "tie")
    # Run again with --resume: every finished run is reused, so the table is unchanged.
    assert main([*args, "--resume"]) == 0
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["methods"] == table["methods"]
    # --select last: each run's last epoch, which result.json records beside the best one
    assert main([*args, "--resume", "--select", "last"]) == 0
    assert "| method | last-epoch dev score (mean ± std) |" in capsys.readouterr().out
    last = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    for method, row in last["methods"].items():
        runs = [json.loads((tmp_path / "cmp" / f"{method}-seed{s}" / "result.json").read_text()) for s in (7, 8)]
        assert last["select"] == "last" and row["scores"] == [r["last"]["score"] for r in runs]
    # Other settings with --resume: refused before any work, naming them; nothing changes
    kept = {p: p.read_bytes() for p in (tmp_path / "cmp").rglob("*") if p.is_file()}
    assert main([*args, "--resume", "--alpha", "0.5"]) == 2  # FT forces alpha 0: its runs are unaffected
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kd-seed7: its run was made with other settings: loss.alpha 0.7 (now 0.5)" in err
    assert {p: p.read_bytes() for p in (tmp_path / "cmp").rglob("*") if p.is_file()} == kept


def test_selected_record_reads_the_best_or_the_last_epoch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "score": s}) + "\n"
                                               for e, s in ((1, 80.0), (2, 90.0), (3, 85.0))))
    (run / "result.json").write_text(json.dumps({"score": 90.0, "best_epoch": 2, "last": {"epoch": 3, "score": 85.0}}))
    assert selected_record(run, "best")["score"] == 90.0 and selected_record(run, "last")["score"] == 85.0
    assert selected_record(run, "last")["epoch"] == 3
    (run / "result.json").write_text(json.dumps({"score": 90.0, "best_epoch": 2}))  # written before "last" existed
    assert selected_record(run, "last") == {"epoch": 3, "score": 85.0}


def _copy_without_run_json(tiny_teacher, path):
    return Path(shutil.copytree(tiny_teacher, path, ignore=shutil.ignore_patterns("run.json", "metrics.jsonl")))


def test_pretrained_init_needs_a_named_base(tiny_teacher, tiny_bert, glue_dir, tmp_path, capsys):
    """A teacher with no run.json (a Hub checkpoint, one fine-tuned elsewhere) does not say which pre-trained
    checkpoint it came from: --student-init pretrained is refused until --student-base names it (it used to copy
    the fine-tuned teacher's layers and record "pretrained")."""
    teacher = _copy_without_run_json(tiny_teacher, tmp_path / "elsewhere")
    args = ["distill", "--teacher", str(teacher), "--task", "sst2", "--student-layers", "2", "--data-dir",
            str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "16",
            "--max-seq-len", "24", "--max-train-examples", "32", "--quiet"]
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pkd: error: --teacher {teacher}: no run.json names")
    assert "--student-base NAME_OR_PATH" in err and "--student-init teacher" in err
    assert not (tmp_path / "refused").exists() and not (tmp_path / "cache").exists()
    assert main([*args, "--student-base", str(tiny_bert), "--out", str(tmp_path / "s")]) == 0
    run = json.loads((tmp_path / "s" / "run.json").read_text())
    assert run["student_init"] == "pretrained" and run["student_source"] == str(tiny_bert)
    assert main([*args, "--student-init", "teacher", "--out", str(tmp_path / "t")]) == 0
    assert json.loads((tmp_path / "t" / "run.json").read_text())["student_source"] == str(teacher)
    assert main([*args, "--student-init", "teacher", "--student-base", str(tiny_bert), "--out", str(tmp_path / "x")]
                ) == 2
    assert "--student-base" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_student_base_is_checked_before_any_work(tiny_teacher, glue_dir, tmp_path, capsys):
    """--student-base must share the teacher's width unless a projection is learned, also with a vocabulary of
    its own."""
    teacher = _copy_without_run_json(tiny_teacher, tmp_path / "elsewhere")
    narrow = make_tiny_model(tmp_path / "h16", hidden=16)
    other = make_tiny_model(tmp_path / "other", hidden=16)
    (other / "tokenizer.json").write_text((other / "tokenizer.json").read_text().replace('"movie"', '"cinema"'))
    args = ["distill", "--teacher", str(teacher), "--task", "sst2", "--student-layers", "2", "--data-dir",
            str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "s"), "--quiet"]
    capsys.readouterr()
    for base in (narrow, other):
        assert main([*args, "--student-base", str(base)]) == 2
        assert "student hidden size 16 differs from the teacher's 32" in capsys.readouterr().err
    assert not (tmp_path / "s").exists() and not (tmp_path / "cache").exists()


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


@pytest.mark.parametrize("depths, method, pairs", [
    ((6, 3), "pkd-skip", [(1, 2), (2, 4)]), ((6, 3), "pkd-last", [(1, 4), (2, 5)]),
    ((12, 6), "pkd-skip", [(1, 2), (2, 4), (3, 6), (4, 8), (5, 10)]),
    ((12, 6), "pkd-last", [(1, 7), (2, 8), (3, 9), (4, 10), (5, 11)]),
])
def test_pt_pairs_each_student_layer_with_its_teacher_layer(tmp_path, monkeypatch, depths, method, pairs):
    """Hooks on every encoder layer of a tiny teacher and student record the [CLS] output of each; the PT term
    must compare student layer j's with teacher layer I(j)'s, for j = 1..M-1 (the top layer learns from the
    logits), in that order."""
    (n, m) = depths
    assert list(enumerate(layer_map_for(method, n, m), 1)) == pairs

    def model(layers, seed):
        path = make_tiny_model(tmp_path / f"L{layers}", layers=layers, seed=seed)
        net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
        seen = []
        for layer in net.bert.encoder.layer:
            layer.register_forward_hook(lambda mod, inp, out: seen.append((out[0] if isinstance(out, tuple)
                                                                           else out)[:, 0].detach().clone()))
        return net, seen, path

    teacher, teacher_seen, path = model(n, 0)
    student, student_seen, _ = model(m, 1)
    got = {}

    def spy(cfg, logits, labels, regression, teacher_logits=None, student_cls=None, teacher_cls=None, **options):
        got.update(student=student_cls.detach(), teacher=teacher_cls.detach())
        return real(cfg, logits, labels, regression, teacher_logits, student_cls, teacher_cls, **options)

    real = pkd.train.pkd_loss
    monkeypatch.setattr(pkd.train, "pkd_loss", spy)
    tok = AutoTokenizer.from_pretrained(path)
    batch = dict(tok(["the movie was good .", "a sad film", "the cat sat on the mat"], padding=True,
                     return_tensors="pt"), idx=torch.arange(3), labels=torch.tensor([1, 0, 1]))
    pkd.train.batch_loss(student, batch, get_task("sst2"), LossConfig(alpha=0.5, beta=1.0), LiveTeacher(teacher),
                         layer_map_for(method, n, m))
    assert len(student_seen) == m and len(teacher_seen) == n  # one forward pass each
    assert got["student"].shape == got["teacher"].shape == (3, m - 1, 32)
    for i, (j, k) in enumerate(pairs):
        torch.testing.assert_close(got["student"][:, i], student_seen[j - 1], atol=0, rtol=0)
        torch.testing.assert_close(got["teacher"][:, i], teacher_seen[k - 1], atol=0, rtol=0)


def test_compare_writes_its_tables_as_runs_finish(tiny_teacher, glue_dir, tmp_path, monkeypatch):
    """A long comparison shows what it has so far: after every run compare.json and compare.md are rewritten, so a
    comparison stopped part-way keeps a partial table (and verdicts over the seeds both sides have)."""
    import pkd.comparison

    real_train, calls = pkd.comparison.train, []

    def stopping_train(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the third run is stopped
        return real_train(*a, **k)

    options = dict(seeds=2, methods=("ft", "kd"), data_dir=glue_dir, cache_dir=tmp_path / "cache", quiet=True,
                   **{**STUDENT, "epochs": 1})
    monkeypatch.setattr(pkd.comparison, "train", stopping_train)
    with pytest.raises(KeyboardInterrupt):
        pkd.compare(str(tiny_teacher), "sst2", 2, tmp_path / "cmp", **options)
    partial = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert partial["runs_finished"] == 2 and partial["runs_planned"] == 4
    assert {m: len(row["scores"]) for m, row in partial["methods"].items()} == {"ft": 1, "kd": 1}
    first = {m: json.loads((tmp_path / "cmp" / f"{m}-seed0" / "result.json").read_text())["score"]
             for m in ("ft", "kd")}
    [verdict] = partial["verdicts"]
    assert verdict["seeds"] == 1 and verdict["diff"] == pytest.approx(first["kd"] - first["ft"])
    assert (tmp_path / "cmp" / "compare.md").read_text().startswith("Partial: 2 of 4 runs finished")
    monkeypatch.setattr(pkd.comparison, "train", real_train)
    pkd.compare(str(tiny_teacher), "sst2", 2, tmp_path / "cmp", resume=True, **options)
    final = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert final["runs_finished"] == 4 and final["verdicts"][0]["seeds"] == 2
    assert final["methods"]["kd"]["scores"][0] == first["kd"]  # the finished runs were kept
    assert not (tmp_path / "cmp" / "compare.md").read_text().startswith("Partial")


def test_compare_builds_each_seeds_student_once(tiny_teacher, glue_dir, tmp_path, monkeypatch):
    """Tokenization, the teacher cache and the student's initialisation are shared by every method of a seed."""
    import pkd.api
    import pkd.comparison
    import pkd.encoding

    built, encoded = [], []
    real_build, real_encode = pkd.api.make_student, pkd.encoding.EncodedSplit

    def build(*a, **k):
        built.append(a[0])
        return real_build(*a, **k)

    def encode(split, *a, **k):
        encoded.append(split.name)
        return real_encode(split, *a, **k)

    monkeypatch.setattr(pkd.api, "make_student", build)
    monkeypatch.setattr(pkd.encoding, "EncodedSplit", encode)
    monkeypatch.setattr(pkd.comparison, "EncodedSplit", encode)  # the training split, with any teacher-only rows
    pkd.compare(str(tiny_teacher), "sst2", 2, tmp_path / "cmp", seeds=2, methods=("ft", "kd", "pkd-skip"),
                data_dir=glue_dir, cache_dir=tmp_path / "cache", quiet=True, **{**STUDENT, "epochs": 1})
    assert len(built) == 2 and sorted(encoded) == ["dev", "train"]  # one student per seed, one encoding per split
    assert len(list((tmp_path / "cache").iterdir())) == 1
    # Each method starts from its own copy: KD (trained after FT on the same seed) equals a KD run of its own.
    pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / "kd-alone", method="kd", data_dir=glue_dir,
                cache_dir=tmp_path / "cache", quiet=True, **{**STUDENT, "epochs": 1})
    alone, in_compare = (load_file(p / "model.safetensors") for p in (tmp_path / "kd-alone",
                                                                    tmp_path / "cmp" / "kd-seed0"))
    assert alone.keys() == in_compare.keys() and all(torch.equal(alone[k], in_compare[k]) for k in alone)


def test_compare_records_the_student_layers_and_resume_refuses_a_change(tiny_teacher, glue_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2", "--seeds", "1",
            "--methods", "ft,kd", "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--epochs", "1",
            "--max-train-examples", "32", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    for method in ("ft", "kd"):
        assert json.loads((out / f"{method}-seed42" / "run.json").read_text())["init_layers"] == [1, 2]
    kept = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*args, "--resume", "--init-layers", "1,3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pkd: error: --resume {out / 'ft-seed42'}: ") and "init_layers [1, 2] (now [1, 3])" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept
    assert main([*args, "--resume", "--init-layers", "1,2"]) == 0  # the same layers, given: allowed
