"""`pkd report` over hand-written run and compare directories."""

from __future__ import annotations

import json
import re
import statistics
import struct
from pathlib import Path

import pytest

from pkd.cli import main
from pkd.errors import UsageError
from pkd.report import accuracy_rows, collect_runs, curve_groups, write_report

TEACHER = 90.0
FLOOR = 50.0  # the majority-class floor that compare.json records
# (method, seed) -> best dev score of a 3-layer student in the comparison
COMPARE = {("kd", 42): 84.0, ("kd", 43): 86.5, ("pkd-skip", 42): 87.0, ("pkd-skip", 43): 88.0}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _metrics(path: Path, scores: list[float]) -> None:
    path.write_text("".join(json.dumps({"epoch": i + 1, "step": 10 * (i + 1), "train_loss": 1.0 / (i + 1),
                                        "epoch_seconds": 1.5, "accuracy": s, "score": s}) + "\n"
                            for i, s in enumerate(scores)))


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "out"
    compare = root / "compare-sst2-L3"
    _write(compare / "compare.json",
           {"task": "sst2", "student_layers": 3, "teacher_score": TEACHER, "floor_score": FLOOR, "methods": {}})
    for (method, seed), score in COMPARE.items():
        run = compare / f"{method}-seed{seed}"
        _write(run / "run.json", {"command": "compare", "method": method, "task": "sst2", "student_layers": 3,
                                  "teacher_score": TEACHER, "train": {"seed": seed}})
        _metrics(run / "metrics.jsonl", [score - 2.0, score])
        _write(run / "result.json", {"epoch": 2, "score": score, "best_epoch": 2})
    # A single distillation run whose best epoch is not the last one.
    single = root / "distill-L6"
    _write(single / "run.json", {"command": "distill", "method": "pkd-skip", "task": "sst2",
                                 "student_layers": 6, "teacher_score": TEACHER, "train": {"seed": 0}})
    _metrics(single / "metrics.jsonl", [85.0, 89.0, 88.0])
    # The teacher itself: its depth comes from config.json.
    teacher = root / "teacher-sst2"
    _write(teacher / "run.json", {"command": "finetune", "task": "sst2", "train": {"seed": 42}})
    _write(teacher / "config.json", {"num_hidden_layers": 12})
    _metrics(teacher / "metrics.jsonl", [TEACHER])
    # What else lives beside runs, which a glob must pass over.
    (root / "cache").mkdir()
    (root / "teacher-sst2.log").write_text("log\n")
    return root


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"  # the first chunk
    return struct.unpack(">II", data[16:24])


def _row(rows, method, layers):
    return next(r for r in rows if r["method"] == method and r["layers"] == layers)


def test_table_values(runs_root):
    rows = accuracy_rows(collect_runs([str(runs_root / "*")]))
    assert {(r["method"], r["layers"]) for r in rows} == {("kd", 3), ("pkd-skip", 3), ("pkd-skip", 6),
                                                            ("finetune", 12)}
    for method in ("kd", "pkd-skip"):
        scores = [s for (m, _), s in COMPARE.items() if m == method]
        row = _row(rows, method, 3)
        assert row["scores"] == scores
        assert row["mean"] == pytest.approx(statistics.mean(scores))
        assert row["std"] == pytest.approx(statistics.stdev(scores))
        assert row["retention"] == pytest.approx(100 * statistics.mean(scores) / TEACHER)
        assert row["gain_retention"] == pytest.approx(100 * (statistics.mean(scores) - FLOOR) / (TEACHER - FLOOR))
    single = _row(rows, "pkd-skip", 6)
    assert single["scores"] == [89.0] and single["std"] == 0.0  # the best epoch, not the last
    assert _row(rows, "finetune", 12)["retention"] is None  # a teacher run records no teacher score


def test_report_files(runs_root, tmp_path):
    out = tmp_path / "report"
    written = write_report([str(runs_root / "*")], out)
    assert written == [out / "report.md", out / "report.html"]
    md = (out / "report.md").read_text()
    kd = [COMPARE["kd", 42], COMPARE["kd", 43]]
    mean, std = statistics.mean(kd), statistics.stdev(kd)
    gain = 100 * (mean - FLOOR) / (TEACHER - FLOOR)
    assert f"| kd | 3 | {mean:.2f} ± {std:.2f} | {100 * mean / TEACHER:.1f}% | {gain:.1f}% | 2 |" in md
    assert f"### sst2 (teacher {TEACHER:.2f}, majority-class floor {FLOOR:.2f})" in md
    assert "| method | layers | best-epoch dev score (mean ± std) |" in md and "so they are optimistic" in md
    assert "### sst2" in md and "Accuracy vs student layers" in md and "Speed and size" not in md

    pngs = sorted(out.glob("*.png"))
    assert "pareto.png" in {p.name for p in pngs}
    # one figure per task and depth, every run of it overlaid
    assert [p.name for p in pngs if p.name.startswith("curves-")] == ["curves-sst2-L12.png", "curves-sst2-L3.png",
                                                                       "curves-sst2-L6.png"]
    groups = curve_groups(collect_runs([str(runs_root / "*")]))
    assert sorted((r.method, r.seed) for r in groups["curves-sst2-L3"]) == sorted(COMPARE)
    for png in pngs:
        width, height = png_size(png)
        assert 200 <= width <= 4000 and 200 <= height <= 4000
        assert f"]({png.name})" in md

    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert not re.findall(r'src="(?!data:)', page)  # no image is referenced by file name
    assert "<table>" in page and f"{mean:.2f} ± {std:.2f}" in page
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_bench_section(runs_root, tmp_path):
    def model(layers: int, speedup: float) -> dict:
        params = int(7e6 * layers + 24e6)
        return {"name": f"bert-base-L{layers}", "layers": layers, "params": params,
                "params_non_embedding": params - 24_000_000, "params_layers": int(7e6 * layers),
                "size_bytes": 4 * params, "size_ratio": 1.0, "peak_memory_bytes": 5 * params,
                "timings": [{"batch_size": 1}, {"batch_size": 32}], "latency_ms": 100 / speedup,
                "latency_speedup": speedup, "throughput": 10 * speedup, "throughput_speedup": speedup}

    bench = tmp_path / "bench.json"
    _write(bench, {"device": "cpu", "models": [model(12, 1.0), model(6, 2.0), model(3, 4.0)]})
    out = tmp_path / "report"
    write_report([str(runs_root / "compare-sst2-L3"), str(runs_root / "distill-L6")], out, bench=bench)
    md = (out / "report.md").read_text()
    assert "## Speed and size" in md and "| bert-base-L6 | 6 |" in md and "| 2.00x |" in md
    assert "## Accuracy vs speed-up" in md
    width, height = png_size(out / "pareto.png")
    assert 200 <= width <= 4000 and 200 <= height <= 4000


def test_students_started_from_the_teacher_are_a_row_of_their_own(runs_root):
    run = runs_root / "distill-L6-teacher-init"
    _write(run / "run.json", {"command": "distill", "method": "pkd-skip", "task": "sst2", "student_layers": 6,
                              "student_init": "teacher", "teacher_score": TEACHER, "train": {"seed": 0}})
    _metrics(run / "metrics.jsonl", [90.0])
    rows = accuracy_rows(collect_runs([str(runs_root / "*")]))
    assert _row(rows, "pkd-skip", 6)["scores"] == [89.0]
    assert _row(rows, "pkd-skip, teacher init", 6)["scores"] == [90.0]
    methods = [r["method"] for r in rows if r["layers"] == 6]
    assert methods == ["pkd-skip", "pkd-skip, teacher init"]


def test_a_run_given_twice_counts_once(runs_root):
    compare = runs_root / "compare-sst2-L3"
    runs = collect_runs([str(compare), str(compare / "kd-seed42"), str(compare / "*-seed42")])
    assert len(runs) == len(COMPARE)


def test_glob_matching_nothing_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(UsageError):
        collect_runs([str(tmp_path / "nothing-*")])
    assert main(["report", str(tmp_path / "nothing-*"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkd: error:") and "matches no run" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_cli(runs_root, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", str(runs_root / "compare-*"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "report.md"), str(out / "report.html")]


def test_an_unfinished_comparison_run_is_listed_not_scored(runs_root, tmp_path):
    compare = runs_root / "compare-sst2-L3"
    running = compare / "pkd-last-seed42"  # has logged an epoch but wrote no result.json yet
    _write(running / "run.json", {"command": "compare", "method": "pkd-last", "task": "sst2",
                                  "student_layers": 3, "teacher_score": TEACHER, "train": {"seed": 42}})
    _metrics(running / "metrics.jsonl", [80.0])
    out = tmp_path / "report"
    write_report([str(compare)], out)
    md = (out / "report.md").read_text()
    assert "| pkd-last |" not in md
    assert "## Unfinished runs" in md and str(running) in md
    assert (out / "curves-sst2-L3.png").is_file()
    assert running in [r.path for r in curve_groups(collect_runs([str(compare)]))["curves-sst2-L3"]]


def test_a_real_run_directory(tiny_teacher, tmp_path):
    """What `pkd finetune` writes reads back: its task, depth, seed and best epoch."""
    [run] = collect_runs([str(tiny_teacher)])
    history = [json.loads(line) for line in (tiny_teacher / "metrics.jsonl").read_text().splitlines()]
    assert (run.task, run.method, run.layers, run.seed) == ("sst2", "finetune", 4, 0)
    assert run.score == max(h["score"] for h in history)
    write_report([str(tiny_teacher)], tmp_path / "r")
    assert png_size(tmp_path / "r" / "pareto.png")[0] >= 200


def test_named_report_prefixes_its_plots(runs_root, tmp_path):
    out = tmp_path / "docs"
    written = write_report([str(runs_root / "compare-*")], out, name="results")
    assert written == [out / "results.md", out / "results.html"]
    md = written[0].read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs and all(p.startswith("results-") for p in pngs)
    assert all(f"]({p})" in md for p in pngs)  # every plot is linked under its prefixed name
    assert not (out / "report.md").exists()


def test_verdicts_of_a_comparison_are_shown(runs_root, tmp_path):
    verdict = {"a": "pkd-skip", "b": "kd", "diff": 1.25, "low": 0.5, "high": 2.0, "verdict": "better", "seeds": 2,
               "examples": 872, "draws": 1000, "per_seed": [1.0, 1.5]}
    meta = json.loads((runs_root / "compare-sst2-L3" / "compare.json").read_text())
    _write(runs_root / "compare-sst2-L3" / "compare.json", {**meta, "verdicts": [verdict]})
    write_report([str(runs_root / "*")], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Paired differences" in md and "2 seeds, 872 dev examples" in md
    assert "| pkd-skip vs kd | +1.25 [+0.50, +2.00] | +1.00, +1.50 | better |" in md
    # Verdicts from before they counted seed variance (no per-seed differences) are named, not shown.
    old = {k: v for k, v in verdict.items() if k != "per_seed"}
    _write(runs_root / "compare-sst2-L3" / "compare.json", {**meta, "verdicts": [old]})
    write_report([str(runs_root / "*")], tmp_path / "report-old")
    md = (tmp_path / "report-old" / "report.md").read_text()
    assert "computed over dev examples only" in md and "| pkd-skip vs kd |" not in md
    # A comparison without verdicts (made before pkd saved predictions) gets no such section.
    _write(runs_root / "compare-sst2-L3" / "compare.json", meta)
    write_report([str(runs_root / "*")], tmp_path / "report2")
    assert "Paired differences" not in (tmp_path / "report2" / "report.md").read_text()


def test_select_last_epoch(runs_root, tmp_path):
    """The tables say which epoch they show; --select last shows each run's last epoch (result.json's "last", or
    the last line of metrics.jsonl)."""
    runs = collect_runs([str(runs_root / "*")])
    last = {(r["method"], r["layers"]): r["scores"] for r in accuracy_rows(runs, "last")}
    best = {(r["method"], r["layers"]): r["scores"] for r in accuracy_rows(runs)}
    assert best[("pkd-skip", 6)] == [89.0] and last[("pkd-skip", 6)] == [88.0]
    assert last[("kd", 3)] == [COMPARE[("kd", 42)], COMPARE[("kd", 43)]]  # their best epoch is their last
    assert main(["report", str(runs_root / "*"), "--out", str(tmp_path / "r"), "--select", "last"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| method | layers | last-epoch dev score (mean ± std) |" in md and "| pkd-skip | 6 | 88.00 ± 0.00 |" in md
    assert "Scores are each run's last epoch on dev." in md
