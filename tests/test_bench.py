"""`pkd bench`: output structure, ratios, and parameter counts checked against BERT's formula."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model

from pkd.bench import bench_models, build_shape_model, cpu_features, parameter_counts
from pkd.cli import main

FAST = dict(seq_len=16, batch_sizes=[1, 4], repeats=2, warmup=1, threads=1)


def bert_params(config, num_labels: int | None = None, pooler: bool = True) -> dict[str, int]:
    """BERT's parameter count by hand, from its config."""
    V, H, P, T, I = (config.vocab_size, config.hidden_size, config.max_position_embeddings,  # noqa: E741
                     config.type_vocab_size, config.intermediate_size)
    embeddings = V * H + P * H + T * H + 2 * H  # word, position, token type, LayerNorm
    layer = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H  # Q K V O, LN, FFN in, FFN out, LN
    layers = config.num_hidden_layers * layer
    head = (H * H + H if pooler else 0) + (H * num_labels + num_labels if num_labels else 0)
    return {"params": embeddings + layers + head, "params_embeddings": embeddings,
            "params_non_embedding": layers + head, "params_layers": layers}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """A 4-layer bare encoder and a 2-layer 3-label classifier, both saved as safetensors."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("bench")
    base = make_tiny_model(root / "base4", layers=4)
    config = AutoConfig.from_pretrained(base, num_hidden_layers=2, num_labels=3)
    torch.manual_seed(0)
    clf = root / "clf2"
    AutoModelForSequenceClassification.from_config(config).save_pretrained(clf)
    return base, clf


@pytest.fixture(scope="module")
def results(checkpoints) -> list[dict]:
    return bench_models([str(p) for p in checkpoints], **FAST)


def test_structure_and_ratios(results, checkpoints):
    assert [r["name"] for r in results] == [str(p) for p in checkpoints]
    first = results[0]
    for key in ("latency_speedup", "throughput_speedup", "size_ratio", "params_ratio"):
        assert first[key] == pytest.approx(1.0)
    for r in results:
        assert {"layers", "hidden_size", "size_bytes", "size_source", "peak_memory_bytes", "latency_ms",
                "throughput", "timings"} <= r.keys()
        assert [t["batch_size"] for t in r["timings"]] == [1, 4]
        assert r["latency_ms"] == r["timings"][0]["median_ms"] > 0
        assert r["throughput"] == pytest.approx(4 / (r["timings"][-1]["median_ms"] / 1000))
        assert r["size_source"] == "files"
        assert r["size_bytes"] == sum(f.stat().st_size for f in Path(r["path"]).glob("*.safetensors"))
        assert r["peak_memory_bytes"] > 4 * r["params"]  # weights plus at least some activations
    assert [r["layers"] for r in results] == [4, 2]
    assert results[1]["params_ratio"] == pytest.approx(results[1]["params"] / first["params"])


def test_counts_match_the_formula(results):
    from transformers import AutoConfig

    base, clf = (AutoConfig.from_pretrained(r["path"]) for r in results)
    expected = [bert_params(base), bert_params(clf, num_labels=3)]
    for r, want in zip(results, expected, strict=True):
        assert {k: r[k] for k in want} == want


@pytest.mark.parametrize("layers, total, no_emb", [(12, 109.5, 85.1), (6, 67.0, 42.5), (3, 45.7, 21.3)])
def test_bert_base_shapes_match_the_paper(layers, total, no_emb):
    # The paper's totals include the pooler (and the 1.5K-parameter head, below rounding); its
    # "embeddings excluded" column is the Transformer layers alone, without pooler and head.
    with torch.device("meta"):
        model = build_shape_model("bert-base", layers)
    counts = parameter_counts(model)
    assert counts == bert_params(model.config, num_labels=2)
    assert round(counts["params"] / 1e6, 1) == total
    assert round(counts["params_layers"] / 1e6, 1) == no_emb


def test_shape_mode_from_the_cli(capsys):
    threads = torch.get_num_threads()
    rc = main(["bench", "--shape", "minilm-l6-h384", "--layers", "2,1", "--seq-len", "8",
               "--batch-sizes", "1,2", "--repeats", "1", "--warmup", "0", "--threads", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "cpu" and out["threads"] == 1 and out["seq_len"] == 8
    assert out["cpu_features"].startswith(torch.backends.cpu.get_cpu_capability() + "; ")
    names = [m["name"] for m in out["models"]]
    assert names == ["minilm-l6-h384-L2", "minilm-l6-h384-L1"]
    for m in out["models"]:
        assert m["hidden_size"] == 384 and m["size_source"] == "estimate"
        assert m["size_bytes"] == 4 * m["params"]  # fp32, no persistent buffers
    assert torch.get_num_threads() == threads  # --threads applies to the benchmark only


def test_cpu_features_name_the_int8_flags(tmp_path):
    """The record says which int8/bf16 instructions the timings had, read from the CPU's flag line."""
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_features(info).split("; ")[1] == "avx512f avx512_vnni"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_features(info).endswith("; none of avx512f, avx512_vnni, avx_vnni, avx512_bf16, amx_int8, amx_bf16")
    assert cpu_features(tmp_path / "missing").split("; ")[1].startswith("none of")


def test_table_output(checkpoints, capsys):
    rc = main(["bench", str(checkpoints[0]), "--seq-len", "8", "--repeats", "1", "--threads", "1"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | layers | params |") and len(lines) == 3
    assert "| 1.00x |" in lines[2]


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


@pytest.mark.parametrize("argv, message", [
    (["bench"], "nothing to benchmark"),
    (["bench", "--layers", "3", "x"], "--layers needs --shape"),
    (["bench", "--shape", "bert-base", "x"], "not both"),
    (["bench", "--shape", "minilm-l6-h384", "--layers", "1", "--seq-len", "600"], "--seq-len 600"),
    (["bench", "--shape", "bert-base", "--batch-sizes", "0"], "--batch-sizes"),
    (["bench", "--shape", "bert-base", "--repeats", "0"], "--repeats 0"),
    (["bench", "/nonexistent/model"], "not found"),
])
def test_usage_errors(argv, message, capsys):
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("pkd: error:") and err.count("\n") == 1


def test_a_run_directory(tiny_teacher, tmp_path):
    """A `pkd finetune` run: a classifier, sized by its top-level weights, not its checkpoints/."""
    run = Path(shutil.copytree(tiny_teacher, tmp_path / "run"))
    (run / "checkpoints" / "step-00000001").mkdir(parents=True)  # as --keep-checkpoints 1 leaves it
    shutil.copy(run / "model.safetensors", run / "checkpoints" / "step-00000001" / "model.safetensors")
    [r] = bench_models([str(run)], **FAST)
    assert r["size_bytes"] == (run / "model.safetensors").stat().st_size
    assert r["params"] == r["params_embeddings"] + r["params_layers"] + (32 * 32 + 32) + (32 * 2 + 2)
