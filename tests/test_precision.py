"""--precision on the CPU, and --grad-accum against a larger batch."""

import json

import pytest
import torch
from conftest import TINY_TRAIN, make_tiny_model
from safetensors.torch import load_file

import pkd
from pkd.cli import main
from pkd.io import read_jsonl


@pytest.fixture(scope="module")
def no_dropout_bert(tmp_path_factory):
    """Without dropout, batch 16 and 2 x 8 accumulated see the same computation up to rounding."""
    model = make_tiny_model(tmp_path_factory.mktemp("nodrop"))
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))
    return model


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")
def test_fp16_on_cpu_is_a_one_line_usage_error(tiny_bert, glue_dir, tmp_path, capsys):
    code = main(["finetune", "--task", "sst2", "--model", str(tiny_bert), "--data-dir", str(glue_dir),
                 "--precision", "fp16", "--out", str(tmp_path / "fp16")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("pkd: error: --precision fp16: needs a GPU") and "bf16" in err
    assert not (tmp_path / "fp16").exists()  # refused before any work


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU path")
def test_bf16_finetune_on_cpu_then_fp32_in_the_same_process(tiny_bert, glue_dir, tmp_path):
    """bf16 really computes in bf16 (its weights differ from fp32's, by rounding only), and an fp32 run after it
    in the same process is fp32 again (bit-identical to the one before)."""
    opts = dict(model=str(tiny_bert), data_dir=glue_dir, quiet=True, **{**TINY_TRAIN, "epochs": 1,
                                                                         "max_train_examples": 64})
    before = pkd.finetune("sst2", tmp_path / "fp32", **opts)
    best = pkd.finetune("sst2", tmp_path / "bf16", precision="bf16", **opts)
    assert json.loads((tmp_path / "bf16" / "run.json").read_text())["train"]["precision"] == "bf16"
    # Accelerate keeps one precision per process; a later fp32 run in the same process must still be fp32.
    after = pkd.finetune("sst2", tmp_path / "fp32-after", **opts)
    ref, bf16, again = (load_file(tmp_path / name / "model.safetensors") for name in ("fp32", "bf16", "fp32-after"))
    assert all(w.dtype == torch.float32 for w in bf16.values())  # autocast: the master weights stay fp32
    assert all(torch.equal(ref[k], again[k]) for k in ref) and after["train_loss"] == before["train_loss"]
    diff = max((ref[k] - bf16[k]).abs().max().item() for k in ref)
    assert 0 < diff < 1e-2, diff  # bf16 rounding: measured 3e-3 after 16 steps
    assert best["train_loss"] == pytest.approx(before["train_loss"], abs=1e-3) and best["train_loss"] != before[
        "train_loss"]


def test_grad_accum_matches_the_larger_batch(no_dropout_bert, glue_dir, tmp_path):
    common = dict(model=str(no_dropout_bert), data_dir=glue_dir, quiet=True, **{**TINY_TRAIN, "epochs": 2})
    big = {**common, "batch_size": 16}
    accum = {**common, "batch_size": 8, "grad_accum": 2}
    pkd.finetune("sst2", tmp_path / "b16", **big)
    pkd.finetune("sst2", tmp_path / "b8x2", **accum)
    m16, m8 = read_jsonl(tmp_path / "b16" / "metrics.jsonl"), read_jsonl(tmp_path / "b8x2" / "metrics.jsonl")
    assert [m["step"] for m in m8] == [m["step"] for m in m16] == [16, 32]  # 256 examples / 16 per step
    for a, b in zip(m16, m8, strict=True):
        assert abs(a["accuracy"] - b["accuracy"]) <= 100 / 24 + 1e-9  # at most one of the 24 dev examples
    w16, w8 = load_file(tmp_path / "b16" / "model.safetensors"), load_file(tmp_path / "b8x2" / "model.safetensors")
    for k in w16:  # the same updates up to fp32 rounding (two half-batch sums instead of one): 3.4e-7 measured
        torch.testing.assert_close(w8[k], w16[k], atol=1e-5, rtol=0, msg=k)
