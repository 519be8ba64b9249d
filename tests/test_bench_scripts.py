"""bench/ is a suite: every Python script in it answers --help (its pkd imports resolve), the cheap ones run on tiny
inputs, the shell scripts parse, and every bench/ script the docs name exists; so a rename in pkd or a moved script
fails here rather than in a benchmark."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OWN_VENV = {"textbrewer_pkd.py"}  # runs in TextBrewer's own venv (torch, transformers, textbrewer), imports no pkd


def bench_files(pattern: str) -> list[Path]:
    """bench/'s own files: not bench/out, which holds what the scripts write (git-ignored), packages included."""
    return [p for p in BENCH.rglob(pattern) if "out" not in p.relative_to(BENCH).parts]


SCRIPTS = sorted(p.relative_to(ROOT) for p in bench_files("*.py") if p.name not in OWN_VENV)


def run(script: str | Path, *args: str) -> subprocess.CompletedProcess:
    """The script under this checkout's pkd (not whichever one the environment installed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True)


def test_the_suite_is_found():
    names = {p.name for p in SCRIPTS}
    assert {"distill_speed.py", "deploy_table.py", "race_table.py", "truncation.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_every_python_script_answers_help(script):
    done = run(script, "--help")
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("script", sorted(p.relative_to(ROOT) for p in BENCH.rglob("*.sh")), ids=str)
def test_every_shell_script_parses(script):
    done = subprocess.run(["bash", "-n", str(script)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_bench_script_the_docs_name_exists():
    texts = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *bench_files("*.sh"), *bench_files("*.py"),
             *bench_files("*.md"), *(ROOT / "pkd").glob("*.py")]
    named = {m for path in texts for m in re.findall(r"\bbench/[\w/.-]+?\.(?:sh|py)\b", path.read_text())}
    assert named and not sorted(p for p in named if not (ROOT / p).is_file())


def test_distill_speed_times_three_modes(tiny_bert):
    done = run(BENCH / "distill_speed.py", "--teacher", tiny_bert, "--steps", "1", "--batch-size", "2",
               "--seq-len", "8", "--student-layers", "2", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result["median_step_seconds"]) == {"a_finetune", "b_pkd_live_teacher", "c_pkd_cached"}
    assert all(t > 0 for t in result["median_step_seconds"].values()) and result["c_over_a"] > 0


def test_augment_speed_measures_the_generation(tiny_bert, glue_dir, tmp_path):
    done = run(BENCH / "augment_speed.py", "--data-dir", glue_dir, "--task", "mrpc", "--teacher", tiny_bert,
               "--copies", "3", "--max-examples", "20", "--json", "--out", tmp_path / "speed.json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result == json.loads((tmp_path / "speed.json").read_text())
    assert result["texts_generated"] == 20 * 3 * 2 and result["texts_per_second"] > 0
    assert result["neighbour_search_seconds"] >= 0 and result["peak_rss_mb"] > 0


def test_deploy_table_without_measurements(tmp_path):
    done = run(BENCH / "deploy_table.py", tmp_path)
    assert done.returncode == 0 and "## Demo models (SST-2)" in done.stdout and "not measured" in done.stdout


def test_truncation_table(glue_dir):
    done = run(BENCH / "investigations" / "truncation.py", glue_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == ["| sst2", "| mrpc", "| rte", "| stsb"] and rows[0][1] == "256"


def test_profile_distill_runs_and_its_phases_name_pkd_functions(tiny_teacher, glue_dir):
    done = run(BENCH / "investigations" / "profile_distill.py", "--teacher", tiny_teacher, "--data-dir", glue_dir,
               "--", "--max-train-examples", "32", "--max-eval-examples", "8", "--epochs", "1", "--max-seq-len", "16",
               "--student-layers", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| training loop (all of train()) |" in done.stdout
    # A phase is a function by its name (its time would read 0 s once renamed): each of pkd's must still exist.
    tree = ast.parse((BENCH / "investigations" / "profile_distill.py").read_text())
    phases = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", None) == "PHASES")
    for _, file, name in phases:
        if file.startswith("pkd/"):
            defined = {f.name for f in ast.walk(ast.parse((ROOT / file).read_text()))
                       if isinstance(f, ast.FunctionDef)}
            assert name in defined, f"{file} has no function {name}"


def test_bench_readme_names_every_script():
    """bench/README.md is the suite's index: a script added without a line there is found here."""
    index = (BENCH / "README.md").read_text()
    scripts = [p for p in bench_files("*") if p.suffix in (".sh", ".py")]
    assert scripts and not sorted(str(p.relative_to(BENCH)) for p in scripts if f"`{p.name}`" not in index)


def test_check_demo_fails_beyond_the_tolerance(tmp_path):
    """.ci/run's demo check: 0.3 points off passes, 0.4 fails loudly, and a missing accuracy fails."""
    recorded = tmp_path / "recorded.json"
    recorded.write_text(json.dumps({"accuracy": {"teacher": 82.91, "student": 81.65}}))

    def check(accuracy: dict) -> subprocess.CompletedProcess:
        new = tmp_path / "new.json"
        new.write_text(json.dumps({"accuracy": accuracy}))
        return subprocess.run([sys.executable, BENCH / "check_demo.py", new, recorded], capture_output=True, text=True)

    assert check({"teacher": 83.21, "student": 81.35}).returncode == 0
    failed = check({"teacher": 82.91, "student": 81.25})
    assert failed.returncode == 1 and "demo student: 81.25" in failed.stdout and "DIFFERS" in failed.stdout
    assert check({"teacher": 82.91}).returncode == 1


def test_verdict_bounds_rechecks_old_intervals_and_leaves_current_ones(tmp_path):
    """bench/verdict_bounds.py bounds the intervals of the statistic before issue 35; an interval computed by the
    current one (a row saying "recomputed", or a table after `<!-- intervals: current -->`) stands as printed."""
    table = ("| task | A vs B | A - B [95% interval] | per seed | verdict |\n|---|---|---|---|---|\n"
             "| MRPC | PKD vs KD | {cell} | +1.50, +1.60, +1.40 | better |\n")
    page = tmp_path / "page.md"
    page.write_text("# Old\n\nFrom bench/patient.sh:\n\n" + table.format(cell="+1.50 [+0.10, +2.90]")
                    + "\n# Recomputed\n\nFrom bench/patient.sh:\n\n"
                    + table.format(cell="+1.50 [+0.10, +2.90] (recomputed)")
                    + "\n# Current\n\n<!-- intervals: current -->\nFrom bench/patient.sh:\n\n"
                    + table.format(cell="+1.50 [+0.10, +2.90]"))
    done = run(BENCH / "verdict_bounds.py", page)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "page.md:" in line]
    verdicts = [[c.strip() for c in line.strip("|").split("|")][8] for line in rows]
    # sd(d_s) 0.10 over 3 seeds: the old interval's half-width 1.40 shrinks to at most 4.30 / 1.96 x 1.405 = 3.08,
    # which does not decide +1.50; the current statistic's interval decides it as printed
    assert verdicts == ["undecided without predictions", "current statistic: the printed interval stands",
                        "current statistic: the printed interval stands"], done.stdout
