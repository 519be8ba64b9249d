"""The patient signal (pkd.patient): how much PT's targets vary across inputs, the pooling they use, the warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pkd.cli import main
from pkd.errors import UsageError
from pkd.models import pooled_states
from pkd.patient import Spread, choose_pooling, flat_warning, mean_pairwise_cosine
from pkd.rundir import check_resume

STUDENT = ["--student-init", "teacher", "--epochs", "1", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24",
           "--beta", "1.0", "--quiet"]


def test_mean_pairwise_cosine_is_the_mean_over_pairs():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 8)) + 2.0
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    pairs = [unit[i] @ unit[j] for i in range(40) for j in range(40) if i != j]
    assert mean_pairwise_cosine(v, chunk=7) == pytest.approx(np.mean(pairs))
    assert mean_pairwise_cosine(np.tile(v[:1] * 3, (10, 1))) == pytest.approx(1.0)
    assert mean_pairwise_cosine(np.stack([v[0], -v[0]])) == pytest.approx(-1.0)
    assert np.isnan(Spread().value)


def test_mean_pooling_averages_the_real_tokens_only():
    torch.manual_seed(0)
    hidden = tuple(torch.randn(4, 5, 3) for _ in range(3))  # embeddings + 2 layers, 4 sequences of 5 tokens
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]])
    ids = torch.zeros(4, 5, dtype=torch.long)
    mean = pooled_states(hidden, [1, 2], ids, mask, "mean")
    assert mean.shape == (4, 2, 3)
    assert torch.allclose(mean[0, 1], hidden[2][0, :3].mean(0)) and torch.allclose(mean[2, 0], hidden[1][2, 0])
    cls = pooled_states(hidden, [2], ids, mask, "cls")
    assert torch.equal(cls[:, 0], hidden[2][:, 0])
    # Multiple choice: 2 examples x 2 choices run as 4 sequences; one vector per choice comes back.
    choice = pooled_states(hidden, [1, 2], ids.view(2, 2, 5), mask.view(2, 2, 5), "mean")
    assert choice.shape == (2, 2, 2, 3) and torch.allclose(choice[1, 0], mean[2])
    with pytest.raises(ValueError, match="pooling"):
        pooled_states(hidden, [1], ids, mask, "max")


def test_auto_keeps_cls_only_when_every_mapped_layer_varies():
    varied = {"cls": {2: 0.4, 4: 0.6}, "mean": {2: 0.5, 4: 0.5}}
    assert choose_pooling("auto", varied)[0] == "cls"
    flat = {"cls": {2: 1.0, 4: 0.6}, "mean": {2: 0.7, 4: 0.5}}
    pooling, reason = choose_pooling("auto", flat)
    assert pooling == "mean" and "teacher layer(s) 2 " in reason and "[CLS] 2: 1.000" in reason
    assert choose_pooling("cls", flat)[0] == "cls"  # what is given wins
    assert choose_pooling("auto", None) == ("cls", "")  # PT off: nothing measured, nothing said
    with pytest.raises(UsageError, match="--pt-pooling max"):
        choose_pooling("max", flat)
    assert flat_warning({2: 0.5}, "cls", 100) == ""
    assert "teacher layer(s) 4" in flat_warning({2: 0.5, 4: 0.9999}, "cls", 100)


@pytest.fixture(scope="module")
def constant_cls_teacher(tiny_teacher, tmp_path_factory) -> Path:
    """The tiny teacher with every attention value projection zeroed: a token's state then depends on that token
    alone, so [CLS] is one vector for every input at every layer while the other tokens' states still vary."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher)
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.attention.self.value.weight.zero_()
            layer.attention.self.value.bias.zero_()
    out = tmp_path_factory.mktemp("constant-cls")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(out)
    return out


def _distill(teacher: Path, glue_dir: Path, tmp_path: Path, out: Path, *extra: str) -> int:
    return main(["distill", "--teacher", str(teacher), "--task", "sst2", "--student-layers", "2", "--method",
                 "pkd-skip", "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 *STUDENT, *extra])


def test_a_teacher_whose_cls_is_constant_gets_the_warning(constant_cls_teacher, glue_dir, tmp_path, capsys):
    out = tmp_path / "cls"
    assert _distill(constant_cls_teacher, glue_dir, tmp_path, out, "--pt-pooling", "cls") == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("pkd: warning:")]
    assert len(warning) == 1 and "teacher layer(s) 2 " in warning[0] and "nothing to transfer" in warning[0]
    assert "--pt-pooling mean" in warning[0]
    run = json.loads((out / "run.json").read_text())
    assert run["loss"]["pt_pooling"] == "cls" and run["pt_signal"]["pooling"] == "cls"
    assert run["pt_signal"]["layers"]["2"] > 0.99 and run["pt_signal"]["examples"] == 256
    # --resume with the other pooling is refused by name, before any work.
    with pytest.raises(UsageError, match="loss.pt_pooling 'cls' \\(now 'mean'\\)"):
        from pkd import api

        api.distill(str(constant_cls_teacher), "sst2", 2, out, method="pkd-skip", data_dir=glue_dir,
                    cache_dir=tmp_path / "cache", resume=True, pt_pooling="mean", student_init="teacher", epochs=1,
                    batch_size=16, lr=2e-3, max_seq_len=24, beta=1.0, quiet=True)


def test_auto_pooling_takes_the_mean_for_that_teacher_and_says_why(constant_cls_teacher, glue_dir, tmp_path, capsys):
    out = tmp_path / "auto"
    assert _distill(constant_cls_teacher, glue_dir, tmp_path, out) == 0
    err = capsys.readouterr().err
    assert "pkd: PT pooling mean (auto: the [CLS] targets of teacher layer(s) 2 " in err
    assert "pkd: warning" not in err
    run = json.loads((out / "run.json").read_text())
    assert run["loss"]["pt_pooling"] == "mean" and run["pt_signal"]["layers"]["2"] < 0.99
    assert run["pt_signal"]["probe"]["cls"]["2"] > 0.99 > run["pt_signal"]["probe"]["mean"]["2"]
    meta = json.loads((Path(run["cache"]) / "meta.json").read_text())
    assert meta["pooling"] == "mean" and meta["spread"]["2"] == pytest.approx(run["pt_signal"]["layers"]["2"],
                                                                               abs=1e-4)


def test_kd_needs_no_probe_and_records_no_signal(constant_cls_teacher, glue_dir, tmp_path, capsys):
    out = tmp_path / "kd"
    assert main(["distill", "--teacher", str(constant_cls_teacher), "--task", "sst2", "--student-layers", "2",
                 "--method", "kd", "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--out",
                 str(out), *STUDENT]) == 0
    assert "PT pooling" not in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["pt_signal"] is None and run["loss"]["beta"] == 0
    assert run["loss"]["pt_pooling"] == "cls"  # without PT the pooling means nothing: the paper's is recorded


def test_a_run_from_before_the_pooling_option_resumes_only_with_cls(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"loss": {"alpha": 0.7, "beta": 0.65}}))
    assert check_resume(tmp_path, {"loss": {"alpha": 0.7, "beta": 0.65, "pt_pooling": "cls"}}) is not None
    with pytest.raises(UsageError, match="loss.pt_pooling 'cls' \\(now 'mean'\\)"):
        check_resume(tmp_path, {"loss": {"alpha": 0.7, "beta": 0.65, "pt_pooling": "mean"}})
