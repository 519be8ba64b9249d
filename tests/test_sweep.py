import csv
import json

import pytest

import pkd.cache
import pkd.train
import pkd.trials
from pkd.cli import main
from pkd.errors import UsageError
from pkd.trials import expand, parse_grid, trial_name


def test_grid_is_the_cartesian_product_in_order():
    grid = parse_grid(["alpha=0.2,0.5", "temperature=5,10,20", "epochs=2"])
    assert grid == {"alpha": [0.2, 0.5], "temperature": [5.0, 10.0, 20.0], "epochs": [2]}
    trials = expand(grid)
    assert len(trials) == 6 and trials[0] == {"alpha": 0.2, "temperature": 5.0, "epochs": 2}
    assert [(t["alpha"], t["temperature"]) for t in trials] == [(a, t) for a in (0.2, 0.5) for t in (5.0, 10.0, 20.0)]
    assert trial_name(trials[-1]) == "alpha0.5_temperature20_epochs2"
    assert len({trial_name(t) for t in trials}) == 6
    assert trial_name({"lr": 2e-05, "beta": 0.65}) == "lr2e-05_beta0.65"


def test_random_search_is_reproducible_with_a_seed():
    grid = parse_grid(["alpha=0.1,0.2,0.5,0.7", "temperature=2,5,10,20", "beta=0,0.5,1", "lr=1e-5,2e-5,5e-5"])
    full = expand(grid)
    a, b = expand(grid, random_trials=5, seed=1), expand(grid, random_trials=5, seed=1)
    assert a == b and len(a) == 5
    assert len({trial_name(t) for t in a}) == 5 and all(t in full for t in a)  # distinct, from the grid
    assert expand(grid, random_trials=5, seed=2) != a
    assert expand(grid, random_trials=1000, seed=1) == full  # more than the grid: the whole grid


@pytest.mark.parametrize("item, message", [
    ("alpha", "expected NAME=V1,V2"),
    ("alpha=", "expected NAME=V1,V2"),
    ("gamma=1,2", "unknown parameter 'gamma'"),
    ("alpha=0.5,x", "'x' is not a number"),
    ("epochs=1.5", "'1.5' is not an integer"),
    ("lr=1e-5,1e-5", "a value is repeated"),
    ("alpha=nan", "not a finite number"),
])
def test_bad_grid_is_a_one_line_usage_error(item, message, tmp_path, capsys):
    code = main(["sweep", "--teacher", str(tmp_path / "none"), "--task", "sst2", "--student-layers", "2",
                 "--grid", item, "--out", str(tmp_path / "sweep")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"pkd: error: --grid {item}: ") and message in err
    assert not (tmp_path / "sweep").exists()


def test_bad_values_are_refused_before_any_work(tiny_teacher, glue_dir, tmp_path):
    with pytest.raises(UsageError, match="--lr"):
        pkd.sweep(str(tiny_teacher), "sst2", 2, tmp_path / "s", ["lr=1e-3,-1"], data_dir=glue_dir,
                        cache_dir=tmp_path / "cache")
    with pytest.raises(UsageError, match="--random 0"):
        pkd.sweep(str(tiny_teacher), "sst2", 2, tmp_path / "s", ["alpha=0.5"], random_trials=0)
    assert not (tmp_path / "s").exists() and not (tmp_path / "cache").exists()


def test_a_sweep_runs_the_teacher_once_whatever_its_pooling_and_betas(tiny_teacher, glue_dir, tmp_path, monkeypatch):
    builds = []
    real = pkd.cache._write_shard
    monkeypatch.setattr(pkd.cache, "_write_shard", lambda *a, **k: builds.append(1) or real(*a, **k))
    code = main(["sweep", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2",
                 "--method", "pkd-skip", "--pt-pooling", "cls", "--grid", "beta=0,1", "--data-dir", str(glue_dir),
                 "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--batch-size", "16",
                 "--max-seq-len", "24", "--max-train-examples", "32", "--out", str(tmp_path / "s"), "--quiet"])
    assert code == 0
    assert len(builds) == 1  # before the trials; the PT trial reads its [CLS] targets, the beta-0 one its logits
    assert len(list((tmp_path / "cache").iterdir())) == 1
    meta = json.loads(next((tmp_path / "cache").glob("*/meta.json")).read_text())
    assert meta["pooling"] == "cls" and meta["layers"] == [2]  # auto would say mean for this teacher


def test_sweep_end_to_end_then_resume(tiny_teacher, glue_dir, tmp_path, capsys, monkeypatch):
    out, cache = tmp_path / "sweep", tmp_path / "cache"
    args = ["sweep", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2",
            "--grid", "alpha=0.2,0.7", "temperature=5", "--data-dir", str(glue_dir), "--cache-dir", str(cache),
            "--epochs", "1", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24", "--seed", "0",
            "--out", str(out), "--quiet"]
    assert main([*args, "--jobs", "2"]) == 0  # two trials at once, each `python -m pkd.cli distill` in its own process
    printed = capsys.readouterr().out
    assert "| alpha0.2_temperature5" in printed and "Best:" in printed
    assert len(list(cache.iterdir())) == 1  # the teacher ran once, before the trials

    names = ["alpha0.2_temperature5", "alpha0.7_temperature5"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["trial"] for r in rows] == names
    assert [float(r["alpha"]) for r in rows] == [0.2, 0.7] and all(r["epochs"] == "1" for r in rows)
    results = json.loads((out / "results.json").read_text())
    best = json.loads((out / "best.json").read_text())
    assert best["score"] == max(r["score"] for r in results["trials"]) and results["best"] == best["trial"]
    for name, alpha in zip(names, (0.2, 0.7), strict=True):
        run = json.loads((out / name / "run.json").read_text())
        assert run["loss"]["alpha"] == alpha and run["loss"]["temperature"] == 5.0
        assert run["sweep"]["label"] == f"pkd-skip alpha={alpha} temperature=5"
        assert json.loads((out / name / "result.json").read_text())["params"] == {"alpha": alpha, "temperature": 5.0}
    # `pkd report` reads the sweep directory: one row per trial
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "pkd-skip alpha=0.2 temperature=5" in report and "pkd-skip alpha=0.7 temperature=5" in report

    # Run again: both trials are finished, so nothing trains and the tables are the same.
    def no_training(*a, **k):
        raise AssertionError("a finished trial ran again")

    monkeypatch.setattr(pkd.trials, "_run_here", no_training)
    monkeypatch.setattr(pkd.trials.subprocess, "run", no_training)
    assert main([*args, "--jobs", "2", "--resume"]) == 0
    assert json.loads((out / "results.json").read_text()) == results
    md = (out / "results.md").read_text()
    assert "| best-epoch dev score | best epoch | last-epoch dev score |" in md
    assert [r["last_score"] for r in results["trials"]] == [
        json.loads((out / n / "result.json").read_text())["last"]["score"] for n in names]

    # Other settings with --resume: refused before any work, naming them, finished trials included
    capsys.readouterr()
    kept = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*args[:-1], "--epochs", "2", "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.epochs 1 (now 2)" in err and names[0] in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept
    assert main([*args, "--init-layers", "1,3", "--resume"]) == 2  # the trials' students started from 1, 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "init_layers [1, 2] (now [1, 3])" in err, err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == kept

    # A trial killed after its last checkpoint but before its result: resumed (in this process, --jobs 1) from
    # the checkpoint, so it trains no batch; the finished one is skipped.
    monkeypatch.undo()
    monkeypatch.setattr(pkd.train, "batch_loss", no_training)
    (out / names[1] / "result.json").unlink()
    before = (out / names[0] / "metrics.jsonl").stat().st_mtime_ns
    assert main([*args, "--jobs", "1", "--resume"]) == 0
    assert (out / names[0] / "metrics.jsonl").stat().st_mtime_ns == before
    assert json.loads((out / names[1] / "result.json").read_text())["score"] == results["trials"][1]["score"]
