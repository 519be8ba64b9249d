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
    for fmt, quantize in (("onnx", "none"), ("onnx", "int8"), ("torch", "int8")):  # --quantize: the older spelling
        out[f"{fmt}-{quantize}"] = root / f"{fmt}-{quantize}"
        pkd.export(tiny_teacher, out[f"{fmt}-{quantize}"], format=fmt, quantize=quantize, data_dir=glue_dir,
                   evaluate=fmt == "onnx" and quantize == "int8")
    out["torch-fp32"] = root / "torch-fp32"
    pkd.export(tiny_teacher, out["torch-fp32"], format="torch", data_dir=glue_dir)
    out["torch-bf16"] = root / "torch-bf16"
    pkd.export(tiny_teacher, out["torch-bf16"], precision="bf16", data_dir=glue_dir, evaluate=True)
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
    (["--format", "tflite"], ["--format tflite", "onnx, torch, openvino"]),
    (["--quantize", "int4"], ["--quantize int4", "none, int8"]),
    (["--quantize", "int8", "--opset", "10"], ["--opset 10", "int8", "opset 11"]),
    (["--opset", "9"], ["--opset 9", "11-20"]),
    (["--format", "torch", "--opset", "17"], ["--opset", "onnx only"]),
    (["--precision", "int4"], ["--precision", "int4", "fp32", "bf16", "auto"]),
    (["--precision", "bf16", "--format", "onnx"], ["--precision bf16", "--format torch"]),
    (["--format", "openvino", "--optimize"], ["--optimize", "onnx only"]),
    (["--precision", "bf16", "--opset", "17"], ["--opset", "onnx only"]),
    (["--precision", "bf16", "--quantize", "int8"], ["--precision bf16", "--quantize int8", "one of them"]),
    (["--precision", "auto", "--format", "onnx"], ["--format onnx", "auto picks the format"]),
    (["--precision", "auto", "--optimize"], ["--optimize", "--precision auto"]),
    (["--precision", "auto", "--max-drop", "-1"], ["--max-drop -1", ">= 0"]),
    (["--precision", "auto", "--batch-size", "0"], ["--batch-size 0", "at least 1"]),
    (["--max-drop", "1"], ["--max-drop 1", "--precision auto only"]),
    (["--precision", "int8", "--batch-size", "8"], ["--batch-size 8", "--precision auto only"]),
    (["--threads", "2"], ["--threads 2", "--precision auto only"]),
    (["--precision", "auto", "--threads", "0"], ["--threads 0", "at least 1"]),
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


# ------------------------------------------------------------------------------------------------ bf16


def test_bf16_export_is_bf16_half_the_file_and_checked(exports, tiny_teacher, glue_dir):
    """--precision bf16: a PyTorch checkpoint whose every floating tensor is bf16 (half the fp32 file), that
    reloads to exactly the bf16 model it was saved from, and whose logits differ from fp32's by bf16 rounding only
    (not 0: it really computes in bf16; far below the logits' spread)."""
    from safetensors.torch import load_file

    out = exports["torch-bf16"]
    record = json.loads((out / "export.json").read_text())
    assert (record["format"], record["precision"], record["quantize"], record["model_file"]) == \
        ("torch", "bf16", "none", "model.safetensors")
    assert {t.dtype for t in load_file(out / "model.safetensors").values() if t.is_floating_point()} == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    fp32_size = (exports["torch-fp32"] / "model.safetensors").stat().st_size
    assert 0.45 < record["size_bytes"] / fp32_size < 0.55
    parity = record["parity"]
    assert parity["bf16_file_max_abs_logit_diff"] == 0.0 and parity["agreement"] >= 0.9

    source, _ = deploy.load_source(tiny_teacher)
    model, tokenizer, _ = inference.load_exported(out)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    batch = _dev_batch(tokenizer, glue_dir)
    reference, half = deploy.logits_of(source, batch), deploy.logits_of(model, batch)
    result = deploy.compare_logits(reference, half)
    assert result["agreement"] >= 0.9
    assert 0 < result["max_abs_logit_diff"] < 0.1 * np.ptp(reference) + 1e-3


def test_bf16_export_is_scored_predicted_and_benched_as_bf16(exports, tiny_teacher, glue_dir, tmp_path, capsys):
    record = json.loads((exports["torch-bf16"] / "export.json").read_text())
    code, out, err = run_cli(capsys, ["evaluate", exports["torch-bf16"], "--task", "sst2", "--data-dir", glue_dir,
                                      "--json"])
    assert code == 0, err
    assert json.loads(out) == record["dev"]  # export --evaluate scored it through the same code
    code, out, err = run_cli(capsys, ["evaluate", tiny_teacher, "--task", "sst2", "--data-dir", glue_dir, "--json"])
    assert abs(json.loads(out)["accuracy"] - record["dev"]["accuracy"]) <= 10.0  # the agreement bound above
    code, _, err = run_cli(capsys, ["predict", exports["torch-bf16"], "--task", "sst2", "--data-dir", glue_dir,
                                    "--out", tmp_path / "bf16.tsv"])
    assert code == 0, err
    assert (tmp_path / "bf16.tsv").read_text().splitlines()[0] == "index\tprediction"
    rows = bench_models([str(tiny_teacher), str(exports["torch-bf16"])], seq_len=16, batch_sizes=[1, 4], repeats=1,
                        warmup=0, threads=1, variants=["torch", "torch-bf16"])
    assert [r["variant"] for r in rows] == ["torch", "torch-bf16", "torch-bf16"]
    assert 0.45 < rows[1]["size_ratio"] < 0.55 and rows[2]["size_bytes"] == record["size_bytes"]
    assert rows[1]["peak_memory_bytes"] is None and all(r["throughput"] > 0 for r in rows)


def test_precision_int8_is_quantize_int8_and_old_records_still_load(exports, tmp_path):
    from pkd.config import ExportConfig, export_variant

    assert ExportConfig(out="o", quantize="int8") == ExportConfig(out="o", precision="int8")
    assert ExportConfig(out="o", precision="int8").quantize == "int8"
    assert (ExportConfig(out="o").format, ExportConfig(out="o", precision="bf16").format) == ("onnx", "torch")
    # export.json written before --precision had only "quantize": still an int8 export, scored and named as one
    old = tmp_path / "old"
    shutil.copytree(exports["onnx-int8"], old)
    record = json.loads((old / "export.json").read_text())
    del record["precision"]
    (old / "export.json").write_text(json.dumps(record))
    model, _, loaded = inference.load_exported(old)
    assert isinstance(model, inference.OnnxClassifier) and export_variant(loaded) == "ort-int8"
    assert export_variant(json.loads((exports["torch-bf16"] / "export.json").read_text())) == "torch-bf16"
    assert export_variant(json.loads((exports["torch-fp32"] / "export.json").read_text())) == "torch"


def test_a_bf16_file_that_does_not_reload_its_model_fails_the_export(capsys, tiny_teacher, glue_dir, tmp_path,
                                                                     monkeypatch):
    """The bf16 check compares the file against the bf16 model in memory: a save that changes a weight fails."""
    from transformers import BertForSequenceClassification

    real = BertForSequenceClassification.save_pretrained

    def save(self, *args, **kwargs):
        if self.dtype != torch.bfloat16:
            return real(self, *args, **kwargs)
        with torch.no_grad():
            self.classifier.bias += 1.0  # what is saved is not what was checked
        try:
            return real(self, *args, **kwargs)
        finally:
            with torch.no_grad():
                self.classifier.bias -= 1.0

    monkeypatch.setattr(BertForSequenceClassification, "save_pretrained", save)
    code, out, err = run_cli(capsys, ["export", tiny_teacher, "--out", tmp_path / "x", "--data-dir", glue_dir,
                                      "--precision", "bf16"])
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and "the bf16 file does not reproduce the bf16 model" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ auto


def _row(name, score, throughput, latency_ms=10.0, size_bytes=100):
    return {"name": name, "score": score, "throughput": throughput, "latency_ms": latency_ms, "size_bytes": size_bytes}


def test_auto_keeps_the_fastest_candidate_within_max_drop():
    rows = [_row("torch", 80.0, 10.0), _row("torch-int8", 79.0, 30.0), _row("torch-bf16", 80.2, 25.0),
            _row("ort", 80.0, 12.0), _row("ort-int8", 79.6, 20.0)]
    winner, reason = deploy.choose_candidate(rows, max_drop=0.5, batch_size=32)
    assert winner == "torch-bf16"  # torch-int8 is faster but 1.0 point down
    assert reason.startswith("torch-bf16: the fastest at b=32 (25.0 ex/s, 2.50x torch)")
    assert "4 of 5 candidates scoring >= 79.50" in reason and "torch-int8 (-1.00 points)" in reason
    assert deploy.choose_candidate(rows, max_drop=1.0, batch_size=32)[0] == "torch-int8"  # 79.0 is exactly the floor
    assert deploy.choose_candidate(rows, max_drop=0.0, batch_size=32)[0] == "torch-bf16"
    rows[2]["score"] = 70.0
    assert deploy.choose_candidate(rows, max_drop=0.5, batch_size=32)[0] == "ort-int8"
    assert deploy.choose_candidate(rows, max_drop=0.0, batch_size=32)[0] == "ort"  # as good as fp32, faster
    slow = [_row("torch", 80.0, 10.0), _row("ort-int8", 75.0, 50.0)]
    winner, reason = deploy.choose_candidate(slow, max_drop=0.5, batch_size=8)
    assert winner == "torch" and "1 of 2" in reason and "ort-int8 (-5.00 points)" in reason


def test_auto_breaks_ties_on_latency_then_size_and_needs_its_reference():
    rows = [_row("torch", 80.0, 10.0, 9.0, 400), _row("ort", 80.0, 20.0, 8.0, 400), _row("ort-int8", 80.0, 20.0, 5.0,
                                                                                          100)]
    assert deploy.choose_candidate(rows, 0.5, 32)[0] == "ort-int8"
    rows[2]["latency_ms"] = 8.0
    assert deploy.choose_candidate(rows, 0.5, 32)[0] == "ort-int8"  # same speed at both sizes: the smaller file
    rows[2]["size_bytes"] = 800
    assert deploy.choose_candidate(rows, 0.5, 32)[0] == "ort"
    with pytest.raises(ValueError, match="no reference candidate 'torch'"):
        deploy.choose_candidate(rows[1:], 0.5, 32)


def test_auto_candidates_follow_the_cpu_flags_and_the_install(tmp_path):
    names, skipped = deploy.auto_candidates({"avx2", "avx512f"}, onnxruntime=True, openvino=True)
    assert names == ["torch", "torch-int8", "ort", "ort-int8", "ov"]
    assert "avx512_bf16" in skipped["torch-bf16"] and "amx_bf16" in skipped["ov-bf16"]
    for flag in ("avx512_bf16", "amx_bf16"):
        assert {"torch-bf16", "ov-bf16"} <= set(deploy.auto_candidates({flag}, onnxruntime=True, openvino=True)[0])
    names, skipped = deploy.auto_candidates({"amx_bf16"}, onnxruntime=False, openvino=False)
    assert names == ["torch", "torch-int8", "torch-bf16"] and "pip install 'pkd[export]'" in skipped["ort-int8"]
    assert "pip install 'pkd[openvino]'" in skipped["ov"] and "pip install 'pkd[openvino]'" in skipped["ov-bf16"]
    names, skipped = deploy.auto_candidates({"avx512_vnni"}, onnxruntime=True, openvino=True)
    assert "ov-int8" not in names and "nncf is not installed" in skipped["ov-int8"]
    names, skipped = deploy.auto_candidates({"avx512_vnni"}, onnxruntime=True, openvino=True, nncf=True)
    assert names[-1] == "ov-int8" and "ov-int8" not in skipped
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n")
    assert inference.has_fast_bf16(inference.cpu_flags(info)) and inference.speed_flags(info)[-1] == "avx512_bf16"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not inference.has_fast_bf16(inference.cpu_flags(info))


def test_auto_export_records_every_candidate_and_prints_the_table(tiny_teacher, glue_dir, tmp_path, capsys,
                                                                  monkeypatch):
    """On a tiny model (real timings, which prove nothing): every candidate exported, scored and timed, the winner
    the one choose_candidate picks from the recorded rows, its files alone left in --out, loadable and scored by
    evaluate as auto scored it (the 24 fixture dev sentences are under AUTO_DEV_EXAMPLES)."""
    monkeypatch.setattr(deploy, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})  # bf16 a candidate on any host
    out = tmp_path / "auto"
    threads = torch.get_num_threads()
    code, printed, err = run_cli(capsys, ["export", tiny_teacher, "--out", out, "--data-dir", glue_dir,
                                          "--precision", "auto", "--batch-size", "4", "--threads", "1"])
    assert code == 0, err
    assert torch.get_num_threads() == threads  # --threads applies to the timing only
    record = json.loads((out / "export.json").read_text())
    auto = record["auto"]
    expected_skips = set() if deploy.installed(inference.require_openvino) else {"ov", "ov-bf16", "ov-int8"}
    if not deploy.installed(deploy.require_nncf):
        expected_skips.add("ov-int8")
    assert set(auto["skipped"]) == expected_skips
    assert [r["name"] for r in auto["candidates"]] == [n for n in deploy.AUTO_CANDIDATES if n not in expected_skips]
    assert (auto["max_drop"], auto["batch_size"], auto["seq_len"], auto["reference"], auto["threads"]) == \
        (0.5, 4, 24, "torch", 1)
    assert auto["cpu_features"] == inference.cpu_features() and auto["cpu_flags"] == inference.speed_flags()
    assert auto["date"][:4].isdigit() and auto["rule"] == deploy.AUTO_RULE
    winner, reason = deploy.choose_candidate(auto["candidates"], 0.5, 4)
    assert (auto["winner"], auto["reason"]) == (winner, reason)
    assert (record["format"], record["precision"]) == deploy.AUTO_CANDIDATES[winner]
    for r in auto["candidates"]:
        assert r["throughput"] > 0 and r["latency_ms"] > 0 and r["size_bytes"] > 0 and 0 <= r["score"] <= 100
    reference = auto["candidates"][0]
    assert reference["throughput_x"] == pytest.approx(1.0) and reference["max_abs_logit_diff"] <= 1e-3
    assert {p.name for p in out.iterdir()} == {record["model_file"], "config.json", "export.json", "tokenizer.json",
                                               "tokenizer_config.json"}
    lines = printed.splitlines()
    assert json.loads(lines[-1])["precision"] == record["precision"] and lines[-2] == f"chosen: {reason}"
    assert lines[0].startswith("CPU: ") and inference.cpu_features() in lines[0]
    for r in auto["candidates"]:
        assert any(line.startswith(f"| {r['name']} |") or line.startswith(f"| **{r['name']}** |") for line in lines)
    code, scored, err = run_cli(capsys, ["evaluate", out, "--task", "sst2", "--data-dir", glue_dir, "--json"])
    assert code == 0, err
    assert json.loads(scored)["score"] == next(r for r in auto["candidates"] if r["name"] == winner)["score"]


def test_auto_applies_the_choice_to_what_it_measured(tiny_teacher, glue_dir, tmp_path, monkeypatch, capsys):
    """Fake timings (the third candidate 9x the first, the others 2-4x): the export is the candidate the rule picks
    from them, bf16 here. Without bf16 in the CPU's flags, bf16 is skipped and recorded as such, and the third
    candidate is ort."""
    def fake(models, seq_len, batch_sizes, repeats, warmup):
        speed = [1.0, 2.0, 9.0, 3.0, 4.0, 5.0, 6.0, 7.0][:len(models)]
        return [{b: b / 100 / s for b in batch_sizes} for s in speed]

    monkeypatch.setattr(deploy, "median_seconds", fake)
    monkeypatch.setattr(deploy, "cpu_flags", lambda: {"avx512f", "amx_bf16"})
    record = pkd.export(tiny_teacher, tmp_path / "bf16", precision="auto", max_drop=100, data_dir=glue_dir,
                        evaluate=True)
    assert record["auto"]["winner"] == "torch-bf16" and record["precision"] == "bf16"
    assert record["auto"]["candidates"][2]["throughput_x"] == pytest.approx(9.0)
    assert inference.load_exported(tmp_path / "bf16")[2]["precision"] == "bf16"
    assert record["dev"]["score"] == record["auto"]["candidates"][2]["score"]  # --evaluate: the whole dev set
    monkeypatch.setattr(deploy, "cpu_flags", lambda: {"avx2"})
    record = pkd.export(tiny_teacher, tmp_path / "no-bf16", precision="auto", max_drop=100, data_dir=glue_dir)
    assert [r["name"] for r in record["auto"]["candidates"]][:4] == ["torch", "torch-int8", "ort", "ort-int8"]
    assert "torch-bf16" in record["auto"]["skipped"] and "ov-bf16" in record["auto"]["skipped"]
    assert record["auto"]["winner"] == "ort"  # the third candidate now
    assert "| torch-bf16 | skipped: the CPU has neither avx512_bf16 nor amx_bf16" in deploy.auto_table(record["auto"])
    assert (tmp_path / "no-bf16" / "model.onnx").is_file() and "dev" not in record


def test_auto_refuses_a_multiple_choice_model(race_model, tmp_path, capsys):
    model, race_dir = race_model
    code, out, err = run_cli(capsys, ["export", model, "--out", tmp_path / "x", "--task", "race", "--data-dir",
                                      race_dir, "--max-seq-len", "48", "--precision", "auto"])
    assert_one_error(code, out, err, "--precision auto", "multiple-choice", "fixed --precision")
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------------------------------- OpenVINO


def test_openvino_export_fp32_and_bf16_scored_and_benched(tiny_teacher, glue_dir, tmp_path, capsys):
    """--format openvino: the IR of pkd's ONNX graph, exact at f32 (as fp32 exports are), and at the bf16
    precision hint recorded against fp32 like int8 and torch bf16; scored by evaluate, timed by bench."""
    pytest.importorskip("openvino")
    records = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"ov-{precision}"
        records[precision] = pkd.export(tiny_teacher, out, format="openvino", precision=precision, data_dir=glue_dir)
        ir = {"openvino_model.xml", "openvino_model.bin"}
        assert ir | {"export.json", "config.json"} <= {p.name for p in out.iterdir()}
        assert not list(out.glob("*.onnx"))  # the ONNX graph was only the converter's input
        model, _, record = inference.load_exported(out)
        assert isinstance(model, inference.OpenVinoClassifier) and model.precision == precision
        assert record["size_bytes"] == sum((out / name).stat().st_size for name in ir)
        assert "openvino" in record["versions"]
    assert records["fp32"]["parity"]["max_abs_logit_diff"] <= 1e-3 and records["fp32"]["parity"]["agreement"] == 1.0
    bf16 = records["bf16"]["parity"]
    assert bf16["fp32_max_abs_logit_diff"] <= 1e-3 and bf16["agreement"] >= 0.9
    scores = []
    for m in (tiny_teacher, tmp_path / "ov-fp32"):
        code, text, err = run_cli(capsys, ["evaluate", m, "--task", "sst2", "--data-dir", glue_dir, "--json"])
        assert code == 0, err
        scores.append(json.loads(text))
    assert scores[0] == scores[1]
    rows = bench_models([str(tiny_teacher), str(tmp_path / "ov-bf16")], seq_len=16, batch_sizes=[1, 4], repeats=1,
                        warmup=0, threads=1, variants=["torch", "ov", "ov-bf16"])
    assert [r["variant"] for r in rows] == ["torch", "ov", "ov-bf16", "ov-bf16"]
    assert all(r["throughput"] > 0 for r in rows)


def test_openvino_missing_names_the_install_command(capsys, tiny_teacher, glue_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    code, out, err = run_cli(capsys, ["export", tiny_teacher, "--out", tmp_path / "x", "--data-dir", glue_dir,
                                      "--format", "openvino"])
    assert_one_error(code, out, err, "openvino", "pip install 'pkd[openvino]'")
    assert not (tmp_path / "x").exists()
    assert not deploy.installed(inference.require_openvino)


def test_openvino_int8_is_calibrated_on_training_examples_checked_scored_and_benched(tiny_teacher, glue_dir,
                                                                                   tmp_path, capsys):
    """--format openvino --precision int8: NNCF's static int8 of the f32 IR, calibrated on the first training
    examples (recorded), its f32 IR checked exactly first; the IR holds quantize pairs (FakeQuantize), and it loads,
    scores and benches as an int8 OpenVINO model."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    out = tmp_path / "ov-int8"
    code, printed, err = run_cli(capsys, ["export", tiny_teacher, "--out", out, "--data-dir", glue_dir,
                                          "--format", "openvino", "--precision", "int8", "--evaluate"])
    assert code == 0, err
    record = json.loads((out / "export.json").read_text())
    train_rows = len((Path(glue_dir) / "SST-2" / "train.tsv").read_text().splitlines()) - 1
    calibration = record["calibration"]
    assert calibration["examples"] == min(deploy.CALIBRATION_EXAMPLES, train_rows)
    assert calibration["data"].endswith("train.tsv") and "calibration_data" not in record
    assert (record["format"], record["precision"], record["quantize"]) == ("openvino", "int8", "int8")
    assert record["parity"]["fp32_max_abs_logit_diff"] <= 1e-3 and record["parity"]["agreement"] >= 0.75
    assert "FakeQuantize" in (out / "openvino_model.xml").read_text()
    model, _, _ = inference.load_exported(out)
    assert isinstance(model, inference.OpenVinoClassifier) and model.precision == "int8"
    code, scored, err = run_cli(capsys, ["evaluate", out, "--task", "sst2", "--data-dir", glue_dir, "--json"])
    assert code == 0, err
    assert json.loads(scored)["score"] == record["dev"]["score"]
    rows = bench_models([str(tiny_teacher)], seq_len=16, batch_sizes=[1, 4], repeats=1, warmup=0, threads=1,
                        variants=["torch", "ov-int8"])
    assert [r["variant"] for r in rows] == ["torch", "ov-int8"] and all(r["throughput"] > 0 for r in rows)
    fp32 = pkd.export(tiny_teacher, tmp_path / "ov-fp32", format="openvino", data_dir=glue_dir)
    assert "calibration" not in fp32 and "calibration_data" not in fp32  # only a calibrated export records one


def test_openvino_int8_without_nncf_names_the_install_command(capsys, tiny_teacher, glue_dir, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setitem(sys.modules, "nncf", None)
    code, out, err = run_cli(capsys, ["export", tiny_teacher, "--out", tmp_path / "x", "--data-dir", glue_dir,
                                      "--format", "openvino", "--precision", "int8"])
    assert_one_error(code, out, err, "--precision int8", "nncf", "pip install 'pkd[openvino]'")
    assert not (tmp_path / "x").exists()
