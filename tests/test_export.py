"""`pkd export`: ONNX and int8 exports of tiny random-weight models, checked against their source and scored
through the same code (evaluate, predict, bench); and the bad-input catalogue of the command."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np

# Imported, not importorskip'd: `make test` installs the export extra, so a missing onnxruntime is a broken
# install that must fail here, not skip these tests and let the suite pass without them.
import onnxruntime  # noqa: F401
import pytest
import torch
from conftest import make_tokenizer
from test_bad_input import assert_one_error, run_cli
from test_race import write_race

import pkd
from pkd import deploy, inference
from pkd.bench import bench_models
from pkd.tasks import get_task


@pytest.fixture(scope="module")
def exports(tiny_teacher, glue_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt, quantize in (("onnx", "none"), ("onnx", "int8"), ("torch", "int8")):
        out[f"{fmt}-{quantize}"] = root / f"{fmt}-{quantize}"
        pkd.export(tiny_teacher, out[f"{fmt}-{quantize}"], format=fmt, quantize=quantize, data_dir=glue_dir,
                   evaluate=fmt == "onnx" and quantize == "int8")
    return out


def _dev_batch(tokenizer, glue_dir) -> dict[str, torch.Tensor]:
    """All 24 fixture dev sentences: a batch size and length the graph was neither traced nor checked with."""
    return deploy.parity_batch(tokenizer, get_task("sst2"), glue_dir, max_seq_len=24, examples=24)[0]


def test_onnx_fp32_parity(exports, tiny_teacher, glue_dir):
    out = exports["onnx-none"]
    assert {"model.onnx", "config.json", "export.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary directory left behind
    for f in out.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~_umask(), f
    record = json.loads((out / "export.json").read_text())
    assert record["source"] == str(tiny_teacher.resolve())
    assert (record["format"], record["quantize"], record["opset"], record["kind"]) == \
        ("onnx", "none", 17, "sequence-classification")
    assert record["task"] == "sst2" and record["max_seq_len"] == 24
    assert {"onnx", "onnxruntime", "torch", "transformers"} <= record["versions"].keys()
    parity = record["parity"]
    assert parity["examples"] == 16 and parity["max_abs_logit_diff"] <= 1e-3 and parity["agreement"] == 1.0

    source, _ = deploy.load_source(tiny_teacher)
    model, tokenizer, _ = inference.load_exported(out)
    assert isinstance(model, inference.OnnxClassifier)
    batch = _dev_batch(tokenizer, glue_dir)
    assert tuple(batch["input_ids"].shape) != tuple(parity["shape"])
    np.testing.assert_allclose(deploy.logits_of(model, batch), deploy.logits_of(source, batch), atol=1e-5)
    # 12 more padding positions: the sequence axis is dynamic and padding is masked out, as in PyTorch.
    longer = {k: torch.nn.functional.pad(v, (0, 12)) for k, v in batch.items()}
    np.testing.assert_allclose(deploy.logits_of(model, longer), deploy.logits_of(source, longer), atol=1e-5)
    np.testing.assert_allclose(deploy.logits_of(model, longer), deploy.logits_of(model, batch), atol=1e-5)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("name", ["onnx-int8", "torch-int8"])
def test_int8_agrees_with_fp32(exports, tiny_teacher, glue_dir, name):
    """int8 weights per tensor move each weight by at most half a step (max|w| / 254); on the fixture teacher that
    moved the logits by < 1e-3 while the smallest fp32 margin between the two classes is 4e-3, so predictions
    should agree everywhere. 90% (22 of 24) leaves room for an example at the boundary on another CPU, and is far
    above chance (50%) - a broken quantization (a wrong scale, a transposed weight) would land near chance."""
    out = exports[name]
    record = json.loads((out / "export.json").read_text())
    assert record["quantize"] == "int8" and record["parity"]["agreement"] >= 0.9
    source, _ = deploy.load_source(tiny_teacher)
    model, tokenizer, _ = inference.load_exported(out)
    batch = _dev_batch(tokenizer, glue_dir)
    reference, quantized = deploy.logits_of(source, batch), deploy.logits_of(model, batch)
    result = deploy.compare_logits(reference, quantized)
    assert result["agreement"] >= 0.9
    assert 0 < result["max_abs_logit_diff"] < 0.1 * np.ptp(reference) + 1e-3  # quantized, but not broken
    if name == "onnx-int8":
        import onnx

        ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
        assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
        assert (out / "model.onnx").stat().st_size < (exports["onnx-none"] / "model.onnx").stat().st_size
    else:
        from safetensors import safe_open

        with safe_open(out / "model-int8.safetensors", "pt") as f:
            int8 = [k for k in f.keys() if f.get_tensor(k).dtype == torch.int8]
        assert len(int8) == 4 * 6 + 2  # Q K V O, FFN in and out per layer, pooler and classifier


def test_evaluate_and_predict_exported(exports, tiny_teacher, glue_dir, tmp_path, capsys):
    def evaluate(model) -> dict:
        code, out, err = run_cli(capsys, ["evaluate", model, "--task", "sst2", "--data-dir", glue_dir, "--json"])
        assert code == 0, err
        return json.loads(out)

    source = evaluate(tiny_teacher)
    assert evaluate(exports["onnx-none"]) == source  # the same metrics code, the same predictions
    for name in ("onnx-int8", "torch-int8"):
        scores = evaluate(exports[name])
        assert abs(scores["accuracy"] - source["accuracy"]) <= 10.0  # within the agreement bound above
    for model, target in ((tiny_teacher, tmp_path / "source.tsv"), (exports["onnx-none"], tmp_path / "onnx.tsv")):
        code, _, err = run_cli(capsys, ["predict", model, "--task", "sst2", "--data-dir", glue_dir, "--out", target])
        assert code == 0, err
    assert (tmp_path / "onnx.tsv").read_text() == (tmp_path / "source.tsv").read_text()


def test_bench_variants_and_export_dirs_then_report(exports, tiny_teacher, glue_dir, tmp_path, capsys):
    rows = bench_models([str(tiny_teacher), str(exports["onnx-int8"])], seq_len=16, batch_sizes=[1, 4], repeats=1,
                        warmup=0, threads=1, variants=["torch", "torch-int8", "ort", "ort-int8"])
    assert [r["variant"] for r in rows] == ["torch", "torch-int8", "ort", "ort-int8", "ort-int8"]
    assert rows[0]["throughput_speedup"] == pytest.approx(1.0) and rows[0]["size_ratio"] == pytest.approx(1.0)
    assert rows[-1]["size_bytes"] == (exports["onnx-int8"] / "model.onnx").stat().st_size
    assert rows[1]["size_bytes"] < rows[0]["size_bytes"]  # int8 Linear weights on disk
    assert all(r["params"] == rows[0]["params"] for r in rows)
    assert rows[0]["peak_memory_bytes"] > 0 and all(r["peak_memory_bytes"] is None for r in rows[1:])
    assert all(r["throughput"] > 0 for r in rows)

    # The report: the deployed variant's dev score (measured by export --evaluate) beside its source's, and a
    # point in the Pareto plot at the speed-up of the benchmarked ort-int8 row.
    record = json.loads((exports["onnx-int8"] / "export.json").read_text())
    code, out, err = run_cli(capsys, ["evaluate", exports["onnx-int8"], "--task", "sst2", "--data-dir", glue_dir,
                                      "--json"])
    assert code == 0 and record["dev"] == json.loads(out)
    (tmp_path / "bench.json").write_text(json.dumps({"models": rows}))
    code, _, err = run_cli(capsys, ["report", tiny_teacher, exports["onnx-int8"], "--bench", tmp_path / "bench.json",
                                    "--out", tmp_path / "report"])
    assert code == 0, err
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"| finetune ort-int8 | 4 | {record['dev']['score']:.2f} ± 0.00 |" in text
    assert "| finetune | 4 |" in text and (tmp_path / "report" / "pareto.png").is_file()


@pytest.fixture(scope="module")
def race_model(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random multiple-choice model (no training: parity needs none) and RACE-layout data."""
    from transformers import AutoModelForMultipleChoice, BertConfig

    root = tmp_path_factory.mktemp("race-export")
    tok = make_tokenizer(root / "model")
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=80)
    torch.manual_seed(0)
    AutoModelForMultipleChoice.from_config(config).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root / "model", write_race(root / "race")


def test_race_multiple_choice_export(race_model, tmp_path, capsys):
    model, race_dir = race_model
    out = tmp_path / "race-onnx"
    record = pkd.export(model, out, task="race", data_dir=race_dir, max_seq_len=48)
    assert record["kind"] == "multiple-choice" and record["parity"]["max_abs_logit_diff"] <= 1e-3
    assert record["parity"]["shape"][1] == 4  # [questions, choices, tokens]
    session = inference.load_exported(out)[0].session
    assert [len(i.shape) for i in session.get_inputs()] == [3, 3, 3]
    scores = []
    for m in (model, out):
        code, text, err = run_cli(capsys, ["evaluate", m, "--task", "race", "--data-dir", race_dir, "--json",
                                           "--max-seq-len", "48"])
        assert code == 0, err
        scores.append(json.loads(text))
    assert scores[0] == scores[1]
    code, text, err = run_cli(capsys, ["bench", out, "--seq-len", "8", "--repeats", "1"])
    assert_one_error(code, text, err, "a multiple-choice export")  # bench times [batch, tokens] inputs


# --------------------------------------------------------------------------------------------- bad input


def test_not_a_classifier(capsys, tiny_bert, glue_dir, tmp_path):
    code, out, err = run_cli(capsys, ["export", tiny_bert, "--out", tmp_path / "x", "--task", "sst2",
                                      "--data-dir", glue_dir])
    assert_one_error(code, out, err, str(tiny_bert), "not a classifier")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, needles", [
    (["--format", "tflite"], ["--format tflite", "onnx, torch"]),
    (["--quantize", "int4"], ["--quantize int4", "none, int8"]),
    (["--quantize", "int8", "--opset", "10"], ["--opset 10", "int8", "opset 11"]),
    (["--opset", "9"], ["--opset 9", "11-20"]),
    (["--format", "torch", "--opset", "17"], ["--opset", "onnx only"]),
])
def test_bad_options(capsys, tiny_teacher, glue_dir, tmp_path, argv, needles):
    code, out, err = run_cli(capsys, ["export", tiny_teacher, "--out", tmp_path / "x", "--data-dir", glue_dir,
                                      *argv])
    assert_one_error(code, out, err, *needles)
    assert not (tmp_path / "x").exists()


def test_missing_extra_names_the_install_command(capsys, tiny_teacher, glue_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    code, out, err = run_cli(capsys, ["export", tiny_teacher, "--out", tmp_path / "x", "--data-dir", glue_dir])
    assert_one_error(code, out, err, "onnxruntime", "pip install 'pkd[export]'")
    assert not (tmp_path / "x").exists()


def test_parity_failure_writes_nothing(capsys, tiny_teacher, glue_dir, tmp_path, monkeypatch):
    """A graph that does not compute what its source does (here: a perturbed copy exported instead) fails the
    export with exit 1 and leaves no directory, not even a temporary one."""
    real = deploy.export_onnx

    def perturbed(model, kind, batch, path, opset):
        import copy

        other = copy.deepcopy(model)
        with torch.no_grad():
            other.classifier.bias += 0.01
        real(other, kind, batch, path, opset)

    monkeypatch.setattr(deploy, "export_onnx", perturbed)
    code, out, err = run_cli(capsys, ["export", tiny_teacher, "--out", tmp_path / "x", "--data-dir", glue_dir])
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and "fp32 parity failed" in err and "1.00e-02" in err
    assert list(tmp_path.iterdir()) == []


def test_export_dir_missing_its_model_file(capsys, exports, glue_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exports["onnx-none"], broken)
    (broken / "model.onnx").unlink()
    for argv in (["evaluate", broken, "--task", "sst2", "--data-dir", glue_dir],
                 ["bench", broken, "--seq-len", "8", "--repeats", "1"]):
        code, out, err = run_cli(capsys, argv)
        assert_one_error(code, out, err, str(broken), "without its model file model.onnx")


def test_onnx_inputs_not_matching_the_tokenizer(capsys, exports, glue_dir, tmp_path):
    """A tokenizer that gives no token_type_ids beside a graph that takes them: refused, not scored as zeros."""
    broken = tmp_path / "broken"
    shutil.copytree(exports["onnx-none"], broken)
    config = json.loads((broken / "tokenizer_config.json").read_text())
    config["model_input_names"] = ["input_ids", "attention_mask"]
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    code, out, err = run_cli(capsys, ["evaluate", broken, "--task", "sst2", "--data-dir", glue_dir])
    assert_one_error(code, out, err, "model.onnx", "do not match the tokenizer", "token_type_ids")


def test_export_dir_for_the_wrong_task(capsys, exports, glue_dir):
    code, out, err = run_cli(capsys, ["evaluate", exports["onnx-none"], "--task", "mnli", "--data-dir", glue_dir])
    assert_one_error(code, out, err, "has 2 labels", "mnli needs 3")


def test_compare_export_int8_then_report(tiny_teacher, glue_dir, tmp_path, capsys):
    """`pkd compare --export int8`: each run also exported and scored on dev; compare.json and the report carry the
    deployed rows, and --resume reuses the exports as it reuses the runs."""
    out = tmp_path / "cmp"
    args = ["compare", "--teacher", tiny_teacher, "--task", "sst2", "--student-layers", "2", "--seeds", "1",
            "--methods", "kd", "--export", "int8", "--data-dir", glue_dir, "--cache-dir", tmp_path / "cache",
            "--epochs", "1", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24", "--seed", "0",
            "--out", out, "--quiet"]
    code, printed, err = run_cli(capsys, args)
    assert code == 0, err
    summary = json.loads((out / "compare.json").read_text())
    record = json.loads((out / "kd-seed0" / "export-int8" / "export.json").read_text())
    assert record["quantize"] == "int8" and record["max_seq_len"] == 24
    assert summary["deployed"]["variant"] == "ort-int8"
    assert summary["deployed"]["methods"]["kd"]["scores"] == [record["dev"]["score"]]
    assert "Deployed as ort-int8" in printed
    mtime = (out / "kd-seed0" / "export-int8" / "export.json").stat().st_mtime_ns
    assert run_cli(capsys, [*args, "--resume"])[0] == 0
    assert (out / "kd-seed0" / "export-int8" / "export.json").stat().st_mtime_ns == mtime
    code, _, err = run_cli(capsys, ["report", out, "--out", tmp_path / "report"])
    assert code == 0, err
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"| kd ort-int8 | 2 | {record['dev']['score']:.2f} ± 0.00 |" in text and "| kd | 2 |" in text


def test_exporting_an_export_dir_is_refused(capsys, exports, glue_dir, tmp_path):
    code, out, err = run_cli(capsys, ["export", exports["onnx-none"], "--out", tmp_path / "x", "--data-dir", glue_dir])
    assert_one_error(code, out, err, "already an export directory")
    assert not (tmp_path / "x").exists()


def test_optimize_fuses_attention_before_int8(tiny_teacher, glue_dir, tmp_path):
    """--optimize: ONNX Runtime's transformer fusions on the eager-attention graph, checked at fp32, then int8."""
    record = pkd.export(tiny_teacher, tmp_path / "opt", quantize="int8", optimize=True, data_dir=glue_dir)
    assert record["fused"]["Attention"] == 4 and record["fused"]["SkipLayerNormalization"] == 8
    assert record["operators"]["QAttention"] == 4 and "Softmax" not in record["operators"]
    assert record["parity"]["fp32_max_abs_logit_diff"] <= 1e-3 and record["parity"]["agreement"] >= 0.9


def test_multi_label_parity_compares_each_labels_decision_not_the_argmax():
    """Issue 35, item 6: a multi-label model predicts every label whose logit is > 0. An export that flips one
    label's sign keeps the argmax (agreement 1.0 by argmax) but changes a prediction; one that reorders two
    positive labels changes the argmax but no prediction."""
    reference = np.array([[3.0, 0.5, -2.0], [1.0, -1.0, -3.0]])
    flipped = np.array([[3.0, -0.1, -2.0], [1.0, -1.0, -3.0]])  # label 1 of example 0 changes side
    reordered = np.array([[0.6, 2.5, -2.0], [1.0, -1.0, -3.0]])  # still labels 0 and 1, the argmax moved
    assert deploy.compare_logits(reference, flipped)["agreement"] == 1.0  # what the argmax rule said
    assert deploy.compare_logits(reference, flipped, multi_label=True)["agreement"] == pytest.approx(5 / 6)
    assert deploy.compare_logits(reference, reordered, multi_label=True)["agreement"] == 1.0
    assert deploy.compare_logits(reference, reordered, multi_label=True)["agreement_of"] == "each label's logit > 0"
