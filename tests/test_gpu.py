"""CUDA checks, skipped without a GPU; bench/gpu_check.sh runs them on a GPU machine.

A tiny fine-tune and distillation on cuda in bf16 (and fp16), compared loosely with fp32: the fixture is
learnable, so every precision reaches a similar dev accuracy; the numbers themselves differ by rounding.
"""

import json

import pytest
import torch
from conftest import TINY_TRAIN

import pkd
from pkd.io import read_jsonl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
OPTS = {**TINY_TRAIN, "epochs": 2}
LOOSE = 15.0  # accuracy points between precisions on 24 dev examples


def test_finetune_and_distill_bf16_vs_fp32_on_cuda(tiny_bert, glue_dir, tmp_path):
    scores = {}
    for precision in ("fp32", "bf16"):
        teacher = tmp_path / f"teacher-{precision}"
        t = pkd.finetune("sst2", teacher, model=str(tiny_bert), data_dir=glue_dir, quiet=True, precision=precision,
                         **OPTS)
        s = pkd.distill(str(teacher), "sst2", 2, tmp_path / f"student-{precision}", method="pkd-skip",
                        data_dir=glue_dir, cache_dir=tmp_path / "cache", quiet=True, precision=precision, **OPTS)
        scores[precision] = (t["accuracy"], s["accuracy"])
        assert json.loads((teacher / "run.json").read_text())["train"]["precision"] == precision
        # evaluate() moves the loaded model to the GPU its batches are on, and scores the saved best epoch
        assert pkd.evaluate(str(teacher), "sst2", data_dir=glue_dir)["accuracy"] == pytest.approx(t["accuracy"],
                                                                                                  abs=100 / 24)
    assert scores["fp32"][0] > 70 and scores["bf16"][0] > 70  # both really learn
    assert abs(scores["fp32"][0] - scores["bf16"][0]) <= LOOSE
    assert abs(scores["fp32"][1] - scores["bf16"][1]) <= LOOSE


def test_fp16_and_live_teacher_on_cuda(tiny_teacher, glue_dir, tmp_path):
    """fp16 really trains in fp16 with a loss scaler (its state is in the checkpoint), the live teacher follows the
    batches onto the GPU, and the run tracks an fp32 one up to rounding."""
    runs = {}
    for precision in ("fp16", "fp32"):
        runs[precision] = pkd.distill(str(tiny_teacher), "sst2", 2, tmp_path / precision, method="pkd-last",
                                      data_dir=glue_dir, live_teacher=True, quiet=True, precision=precision,
                                      keep_checkpoints=1, **OPTS)
    (ckpt,) = (tmp_path / "fp16" / "checkpoints").iterdir()
    scaler = torch.load(ckpt / "optimizer.pt", weights_only=True)["scaler"]
    assert scaler["scale"] > 0  # a GradScaler ran: Accelerate did not fall back to fp32
    losses = {p: [m["train_loss"] for m in read_jsonl(tmp_path / p / "metrics.jsonl")] for p in runs}
    assert losses["fp16"] != losses["fp32"]
    assert losses["fp16"] == pytest.approx(losses["fp32"], rel=0.05)
    assert abs(runs["fp16"]["accuracy"] - runs["fp32"]["accuracy"]) <= LOOSE


def test_cache_on_cuda_matches_cpu(tiny_teacher, glue_dir, tmp_path):
    from pkd.cache import ensure_cache
    from pkd.data import load_split
    from pkd.encoding import EncodedSplit
    from pkd.models import load_classifier, load_tokenizer
    from pkd.tasks import get_task

    task = get_task("sst2")
    tok = load_tokenizer(str(tiny_teacher))
    data = EncodedSplit(load_split(task, "train", glue_dir)[0], tok, 24)
    model = load_classifier(str(tiny_teacher), task, require_head=True)
    gpu = ensure_cache(model, tok, data, 24, [2], tmp_path / "gpu", device="cuda")
    cpu = ensure_cache(model, tok, data, 24, [2], tmp_path / "cpu", device="cpu")
    torch.testing.assert_close(torch.from_numpy(gpu.cls[:].astype("float32")),
                               torch.from_numpy(cpu.cls[:].astype("float32")), atol=5e-3, rtol=0)
