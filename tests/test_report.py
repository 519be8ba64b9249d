"""`pkd report` over what pkd writes: a real comparison, distillation and fine-tuning run of tiny models."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import struct
from pathlib import Path

import pytest
from conftest import TINY_TRAIN

from pkd.cli import main
from pkd.errors import UsageError
from pkd.report import accuracy_rows, collect_runs, curve_groups, write_report
from pkd.rundir import read_result, write_history, write_result

SEEDS = (TINY_TRAIN["seed"], TINY_TRAIN["seed"] + 1)


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def real_runs(tiny_teacher, glue_dir, tmp_path_factory) -> Path:
    """A comparison of KD and PKD-Skip over two seeds (2-layer students), a 3-layer distillation and the teacher's
    fine-tuning run (4 layers), as pkd writes them, beside a cache folder and a log that a glob must pass over."""
    import pkd

    root = tmp_path_factory.mktemp("report") / "out"
    common = dict(data_dir=glue_dir, cache_dir=str(root.parent / "teacher-cache"), quiet=True, **TINY_TRAIN)
    pkd.compare(str(tiny_teacher), "sst2", 2, root / "compare-sst2-L2", methods=("kd", "pkd-skip"), seeds=2,
                **{**common, "epochs": 2})
    single = root / "distill-L3"
    pkd.distill(str(tiny_teacher), "sst2", 3, single, **common)
    # Its last epoch lowered, so that its best epoch is not its last (tiny runs end on their best).
    lines = _history(single)
    lines[-1]["score"] = min(h["score"] for h in lines) - 10.0
    write_history(single, lines)
    write_result(single, {**read_result(single), "last": lines[-1]})  # as if the run had ended so
    shutil.copytree(tiny_teacher, root / "teacher-sst2")
    (root / "cache").mkdir()
    (root / "teacher-sst2.log").write_text("log\n")
    return root


@pytest.fixture
def runs_root(real_runs, tmp_path) -> Path:
    """A copy of the real runs that a test may change."""
    return Path(shutil.copytree(real_runs, tmp_path / "out"))


def recorded(root: Path) -> tuple[float, float, dict[tuple[str, int], float]]:
    """The comparison's teacher score and majority-class floor (compare.json), and each run's best dev score
    (result.json): what the report's tables must show."""
    compare = root / "compare-sst2-L2"
    meta = _read(compare / "compare.json")
    scores = {(m, s): _read(compare / f"{m}-seed{s}" / "result.json")["score"] for m in ("kd", "pkd-skip")
              for s in SEEDS}
    return meta["teacher_score"], meta["floor_score"], scores


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"  # the first chunk
    return struct.unpack(">II", data[16:24])


def _row(rows, method, layers):
    return next(r for r in rows if r["method"] == method and r["layers"] == layers)


def test_table_values(runs_root):
    teacher, floor, compare = recorded(runs_root)
    rows = accuracy_rows(collect_runs([str(runs_root / "*")]))
    assert {(r["method"], r["layers"]) for r in rows} == {("kd", 2), ("pkd-skip", 2), ("pkd-skip", 3),
                                                            ("finetune", 4)}
    for method in ("kd", "pkd-skip"):
        scores = [s for (m, _), s in compare.items() if m == method]
        row = _row(rows, method, 2)
        assert row["scores"] == scores and row["seeds"] == list(SEEDS)
        assert row["mean"] == pytest.approx(statistics.mean(scores))
        assert row["std"] == pytest.approx(statistics.stdev(scores))
        assert row["retention"] == pytest.approx(100 * statistics.mean(scores) / teacher)
        expected = 100 * (statistics.mean(scores) - floor) / (teacher - floor) if teacher > floor else None
        assert row["gain_retention"] == pytest.approx(expected)
    single = _row(rows, "pkd-skip", 3)
    history = [h["score"] for h in _history(runs_root / "distill-L3")]
    assert single["scores"] == [max(history)] != [history[-1]] and single["std"] == 0.0  # the best epoch, not the last
    assert _row(rows, "finetune", 4)["retention"] is None  # a teacher run records no teacher score


def test_report_files(runs_root, tmp_path):
    teacher, floor, compare = recorded(runs_root)
    out = tmp_path / "report"
    written = write_report([str(runs_root / "*")], out)
    assert written == [out / "report.md", out / "report.html"]
    md = (out / "report.md").read_text()
    kd = [compare["kd", s] for s in SEEDS]
    mean, std = statistics.mean(kd), statistics.stdev(kd)
    gain = f"{100 * (mean - floor) / (teacher - floor):.1f}%" if teacher > floor else "-"
    assert f"| kd | 2 | {mean:.2f} ± {std:.2f} | {100 * mean / teacher:.1f}% | {gain} | 2 |" in md
    assert f"### sst2 (teacher {teacher:.2f}, majority-class floor {floor:.2f})" in md
    assert "| method | layers | best-epoch dev score (mean ± std) |" in md and "so they are optimistic" in md
    assert "### sst2" in md and "Accuracy vs student layers" in md and "Speed and size" not in md

    pngs = sorted(out.glob("*.png"))
    assert "pareto.png" in {p.name for p in pngs}
    # one figure per task and depth, every run of it overlaid
    assert [p.name for p in pngs if p.name.startswith("curves-")] == ["curves-sst2-L2.png", "curves-sst2-L3.png",
                                                                       "curves-sst2-L4.png"]
    groups = curve_groups(collect_runs([str(runs_root / "*")]))
    assert sorted((r.method, r.seed) for r in groups["curves-sst2-L2"]) == sorted(compare)
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
    bench.write_text(json.dumps({"device": "cpu", "models": [model(4, 1.0), model(3, 1.3), model(2, 2.0)]}))
    out = tmp_path / "report"
    write_report([str(runs_root / "compare-sst2-L2"), str(runs_root / "distill-L3")], out, bench=bench)
    md = (out / "report.md").read_text()
    assert "## Speed and size" in md and "| bert-base-L2 | 2 |" in md and "| 2.00x |" in md
    assert "## Accuracy vs speed-up" in md
    width, height = png_size(out / "pareto.png")
    assert 200 <= width <= 4000 and 200 <= height <= 4000


def test_students_started_from_the_teacher_are_a_row_of_their_own(runs_root, tiny_teacher, glue_dir):
    import pkd

    run = runs_root / "distill-L3-teacher-init"
    pkd.distill(str(tiny_teacher), "sst2", 3, run, student_init="teacher", data_dir=glue_dir, quiet=True,
                cache_dir=str(runs_root.parent / "teacher-cache"), **{**TINY_TRAIN, "epochs": 1})
    rows = accuracy_rows(collect_runs([str(runs_root / "*")]))
    assert _row(rows, "pkd-skip", 3)["scores"] == [max(h["score"] for h in _history(runs_root / "distill-L3"))]
    assert _row(rows, "pkd-skip, teacher init", 3)["scores"] == [_history(run)[0]["score"]]
    methods = [r["method"] for r in rows if r["layers"] == 3]
    assert methods == ["pkd-skip", "pkd-skip, teacher init"]


def test_a_run_given_twice_counts_once(runs_root):
    compare = runs_root / "compare-sst2-L2"
    runs = collect_runs([str(compare), str(compare / "kd-seed0"), str(compare / "*-seed0")])
    assert len(runs) == 2 * len(SEEDS)


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
    assert main(["report", str(runs_root / "compare-*")]) == 0  # without --out: the table, printed
    table = capsys.readouterr().out
    assert table.startswith("### sst2 (teacher") and table.count("| kd | 2 |") == 1


def test_an_unfinished_comparison_run_is_listed_not_scored(runs_root, tmp_path):
    compare = runs_root / "compare-sst2-L2"
    running = compare / f"pkd-skip-seed{SEEDS[1]}"
    (running / "result.json").unlink()  # as if it were killed after logging its epochs
    out = tmp_path / "report"
    write_report([str(compare)], out)
    md = (out / "report.md").read_text()
    assert re.search(r"\| pkd-skip \| 2 \| .* \| 1 \|", md)  # its other seed only
    assert "## Unfinished runs" in md and str(running) in md
    assert (out / "curves-sst2-L2.png").is_file()
    assert running in [r.path for r in curve_groups(collect_runs([str(compare)]))["curves-sst2-L2"]]


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
    compare = runs_root / "compare-sst2-L2"
    meta = _read(compare / "compare.json")
    assert meta["verdicts"], "pkd compare records its paired verdicts"
    write_report([str(runs_root / "*")], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Paired differences" in md and f"2 seeds, {meta['dev_examples']} dev examples" in md
    for v in meta["verdicts"]:
        per_seed = ", ".join(f"{x:+.2f}" for x in v["per_seed"])
        assert f"| {v['a']} vs {v['b']} | {v['diff']:+.2f} [{v['low']:+.2f}, {v['high']:+.2f}] | {per_seed} | " \
               f"{v['verdict']} |" in md
    # Verdicts from before they counted seed variance (no per-seed differences) are named, not shown.
    old = [{k: x for k, x in v.items() if k != "per_seed"} for v in meta["verdicts"]]
    (compare / "compare.json").write_text(json.dumps({**meta, "verdicts": old}))
    write_report([str(runs_root / "*")], tmp_path / "report-old")
    md = (tmp_path / "report-old" / "report.md").read_text()
    assert "computed over dev examples only" in md and f"| {old[0]['a']} vs {old[0]['b']} |" not in md
    # A comparison without verdicts (made before pkd saved predictions) gets no such section.
    (compare / "compare.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "verdicts"}))
    write_report([str(runs_root / "*")], tmp_path / "report2")
    assert "Paired differences" not in (tmp_path / "report2" / "report.md").read_text()


def test_select_last_epoch(runs_root, tmp_path):
    """The tables say which epoch they show; --select last shows each run's last epoch (result.json's "last", or
    the last line of metrics.jsonl)."""
    runs = collect_runs([str(runs_root / "*")])
    last = {(r["method"], r["layers"]): r["scores"] for r in accuracy_rows(runs, "last")}
    best = {(r["method"], r["layers"]): r["scores"] for r in accuracy_rows(runs)}
    history = [h["score"] for h in _history(runs_root / "distill-L3")]
    assert best[("pkd-skip", 3)] == [max(history)] and last[("pkd-skip", 3)] == [history[-1]]
    compare = runs_root / "compare-sst2-L2"
    assert last[("kd", 2)] == [_read(compare / f"kd-seed{s}" / "result.json")["last"]["score"] for s in SEEDS]
    assert main(["report", str(runs_root / "*"), "--out", str(tmp_path / "r"), "--select", "last"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| method | layers | last-epoch dev score (mean ± std) |" in md
    assert f"| pkd-skip | 3 | {history[-1]:.2f} ± 0.00 |" in md
    assert "Scores are each run's last epoch on dev." in md


# --------------------------------------------------------------------------------- --paired and --metric


@pytest.fixture(scope="module")
def other_order(real_runs, tiny_teacher, glue_dir) -> Path:
    """The comparison of real_runs again, one setting apart: the plain shuffled order."""
    import pkd

    out = real_runs.parent / "compare-shuffled"
    pkd.compare(str(tiny_teacher), "sst2", 2, out, methods=("kd", "pkd-skip"), seeds=2, group_by_length=False,
                data_dir=glue_dir, cache_dir=str(real_runs.parent / "teacher-cache"), quiet=True,
                **{**TINY_TRAIN, "epochs": 2})
    return out


def test_paired_differences_of_two_comparisons(real_runs, other_order, glue_dir, capsys):
    """B - A per method on the full dev set is the mean over seeds of the runs' score differences; pooled, "all";
    a comparison against itself is a tie at 0."""
    a = real_runs / "compare-sst2-L2"
    assert main(["report", str(a), "--paired", str(other_order), "--data-dir", str(glue_dir)]) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"sst2, last-epoch dev score: compare-shuffled - compare-sst2-L2, seeds {SEEDS[0]}, ")
    diffs = {}
    for method in ("kd", "pkd-skip"):
        runs = [(_read(a / f"{method}-seed{s}" / "result.json")["score"],
                 _read(other_order / f"{method}-seed{s}" / "result.json")["score"]) for s in SEEDS]
        diffs[method] = [b - x for x, b in runs]
        row = re.search(rf"\| {method} \(compare-shuffled\) vs {method} \(compare-sst2-L2\) \| ([+-]\d+\.\d\d) ", table)
        assert row and float(row.group(1)) == pytest.approx(statistics.mean(diffs[method]), abs=0.006), table
    pooled = re.search(r"\| all \(compare-shuffled\) vs all \(compare-sst2-L2\) \| ([+-]\d+\.\d\d) ", table)
    assert pooled and float(pooled.group(1)) == pytest.approx(statistics.mean(diffs["kd"] + diffs["pkd-skip"]),
                                                              abs=0.006)
    copy = real_runs.parent / "same" / a.name  # a comparison against its copy: every row a tie at 0
    shutil.copytree(a, copy, dirs_exist_ok=True)
    assert main(["report", str(a), "--paired", str(copy), "--data-dir", str(glue_dir)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if ") vs " in line]
    assert len(rows) == 3 and all("| +0.00 [+0.00, +0.00] | +0.00, +0.00" in line and line.endswith(" | tie |")
                                  for line in rows)


def test_paired_needs_two_comparisons_of_one_task(real_runs, tmp_path, capsys):
    a = real_runs / "compare-sst2-L2"
    assert main(["report", str(a), "--paired", str(real_runs / "distill-L3")]) == 2
    assert "distill-L3: not a compare directory" in capsys.readouterr().err
    other = tmp_path / "mrpc"
    shutil.copytree(a, other)
    (other / "compare.json").write_text(json.dumps({**_read(a / "compare.json"), "task": "mrpc"}))
    assert main(["report", str(a), "--paired", str(other)]) == 2
    assert "task mrpc, but" in capsys.readouterr().err
    assert main(["report", str(a), str(a), "--paired", str(other)]) == 2


@pytest.fixture(scope="module")
def mrpc_compare(tiny_bert, glue_dir, tmp_path_factory) -> Path:
    """A KD comparison on MRPC, whose score is the mean of two metrics (accuracy and F1)."""
    import pkd

    root = tmp_path_factory.mktemp("mrpc")
    teacher = root / "teacher"
    common = dict(data_dir=glue_dir, quiet=True, **{**TINY_TRAIN, "epochs": 1})
    pkd.finetune("mrpc", teacher, model=str(tiny_bert), **common)
    # the teacher's layers, as MRPC's recipe starts students of all-MiniLM-L6-v2 (the tiny model gets the paper's)
    pkd.compare(str(teacher), "mrpc", 2, root / "compare", methods=("kd",), seeds=2, cache_dir=str(root / "cache"),
                student_init="teacher", **common)
    return root / "compare"


def test_one_metric_in_place_of_the_score(mrpc_compare, glue_dir, tmp_path, capsys):
    """--metric accuracy: each run's accuracy at its best epoch, the teacher's from its run.json and the floor of
    always answering the training set's most frequent label, in accuracy."""
    from pkd.report import in_metric

    [row] = accuracy_rows(in_metric(collect_runs([str(mrpc_compare)]), "accuracy", glue_dir))
    results = [_read(mrpc_compare / f"kd-seed{s}" / "result.json") for s in SEEDS]
    assert row["scores"] == [r["accuracy"] for r in results] != [r["score"] for r in results]
    teacher = _read(Path(_read(mrpc_compare / "compare.json")["teacher"]) / "run.json")["result"]["accuracy"]
    assert row["teacher_score"] == teacher
    labels = {split: [line.split("\t")[0] for line in (glue_dir / "MRPC" / f"{split}.tsv").read_text(
        encoding="utf-8-sig").splitlines()[1:]] for split in ("train", "dev")}
    majority = statistics.mode(labels["train"])
    assert row["floor_score"] == pytest.approx(100 * labels["dev"].count(majority) / len(labels["dev"]))
    assert row["retention"] == pytest.approx(100 * statistics.mean(row["scores"]) / teacher)

    assert main(["report", str(mrpc_compare), "--metric", "accuracy", "--data-dir", str(glue_dir)]) == 0
    table = capsys.readouterr().out
    assert "| method | layers | best-epoch dev accuracy (mean ± std) |" in table
    assert f"| kd, teacher init | 2 | {statistics.mean(row['scores']):.2f} ± " in table
    out = tmp_path / "r"
    assert main(["report", str(mrpc_compare), "--metric", "f1", "--data-dir", str(glue_dir), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "dev f1 (mean ± std)" in md and f"{statistics.mean(r['f1'] for r in results):.2f} ± " in md
    assert main(["report", str(mrpc_compare), "--metric", "pearson", "--data-dir", str(glue_dir)]) == 2
    assert "--metric pearson: mrpc has accuracy, f1" in capsys.readouterr().err
