"""The CLI's bad-input catalogue: each mistake gives exactly one `pkd: error:` line naming the file:line or
the argument, exit code 2, and nothing written to --out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pkd.cli import main


def run_cli(capsys, argv: list) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything a fixture printed
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code: int, out: str, err: str, *needles: str) -> str:
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n")
    line = lines[0]
    assert line.startswith("pkd: error: ")
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in line
    return line


@pytest.fixture
def runs(tmp_path) -> Path:
    """The parent of every --out in these tests: it must not even be created."""
    return tmp_path / "runs"


@pytest.fixture
def bad_glue(glue_dir, tmp_path) -> Path:
    return Path(shutil.copytree(glue_dir, tmp_path / "glue"))


def _edit_line(lineno: int, fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        lines = path.read_bytes().split(b"\n")
        lines[lineno - 1] = fn(lines[lineno - 1])
        path.write_bytes(b"\n".join(lines))

    return edit


def _set_label(lineno: int, value: bytes) -> Callable[[Path], None]:
    return _edit_line(lineno, lambda line: line.rsplit(b"\t", 1)[0] + b"\t" + value)


def _keep_first_line(path: Path) -> None:
    path.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")


def _drop_first_field(line: bytes) -> bytes:
    return line.split(b"\t", 1)[1]


def _drop_first_line(path: Path) -> None:
    path.write_bytes(path.read_bytes().split(b"\n", 1)[1])


# (case id, task, file under the data dir, corruption, the line it names or None, what the message says)
DATA_CASES = [
    ("wrong-columns", "sst2", "SST-2/train.tsv", _edit_line(5, lambda s: s + b"\textra"), 5,
     "expected 2 tab-separated fields, found 3"),
    ("too-few-columns", "qnli", "QNLI/train.tsv", _edit_line(9, _drop_first_field), 9,
     "expected 4 tab-separated fields, found 3"),
    ("cola-header-less-columns", "cola", "CoLA/train.tsv", _edit_line(1, _drop_first_field), 1,
     "expected 4 tab-separated fields, found 3"),
    ("unknown-label", "sst2", "SST-2/train.tsv", _set_label(4, b"2"), 4, "unknown label '2'"),
    ("unknown-label-rte", "rte", "RTE/train.tsv", _set_label(3, b"entails"), 3, "unknown label 'entails'"),
    ("unknown-label-mnli-dev", "mnli", "MNLI/dev_mismatched.tsv", _set_label(7, b"-"), 7,
     "unknown label '-'"),
    ("label-not-a-number", "stsb", "STS-B/train.tsv", _set_label(2, b"high"), 2,
     "label 'high' is not a number"),
    ("label-not-finite", "stsb", "STS-B/dev.tsv", _set_label(6, b"nan"), 6, "not a finite number"),
    ("dev-file", "sst2", "SST-2/dev.tsv", _edit_line(7, lambda s: s + b"\tx"), 7, "found 3"),
    ("empty-file", "sst2", "SST-2/train.tsv", lambda p: p.write_bytes(b""), None, "empty file"),
    ("header-only", "mrpc", "MRPC/train.tsv", _keep_first_line, None, "no data rows"),
    ("missing-header", "sst2", "SST-2/train.tsv", _drop_first_line, 1,
     "missing header or column(s) sentence"),
    ("missing-header-mrpc", "mrpc", "MRPC/train.tsv", _drop_first_line, 1, "missing header"),
    ("missing-label-column", "sst2", "SST-2/train.tsv", _edit_line(1, lambda s: b"sentence\tlbl"), 1,
     "missing label column label"),
    ("non-utf8", "sst2", "SST-2/train.tsv", _edit_line(3, lambda s: s[:4] + b"\xff\xfe" + s[4:]), 3,
     "not valid UTF-8"),
    ("non-utf8-latin1", "rte", "RTE/dev.tsv", _edit_line(2, lambda s: s.replace(b"the", b"th\xe9")), 2,
     "not valid UTF-8"),
]


@pytest.mark.parametrize("case, task, name, corrupt, lineno, message", DATA_CASES,
                         ids=[c[0] for c in DATA_CASES])
def test_bad_data_file(capsys, tiny_bert, bad_glue, runs, case, task, name, corrupt, lineno, message):
    path = bad_glue / name
    corrupt(path)
    code, out, err = run_cli(capsys, ["finetune", "--task", task, "--model", tiny_bert,
                                      "--data-dir", bad_glue, "--out", runs / "out", "--quiet"])
    where = f"{path}:{lineno}:" if lineno else f"{path}:"
    assert_one_error(code, out, err, where, message)
    assert not runs.exists()


def test_missing_data_file(capsys, tiny_bert, bad_glue, runs):
    (bad_glue / "SST-2" / "train.tsv").unlink()
    code, out, err = run_cli(capsys, ["finetune", "--task", "sst2", "--model", tiny_bert,
                                      "--data-dir", bad_glue, "--out", runs / "out", "--quiet"])
    assert_one_error(code, out, err, str(bad_glue / "SST-2" / "train.tsv"), "file not found")
    assert not runs.exists()


def test_missing_mnli_dev_part(capsys, tiny_bert, bad_glue, runs):
    (bad_glue / "MNLI" / "dev_mismatched.tsv").unlink()
    code, out, err = run_cli(capsys, ["finetune", "--task", "mnli", "--model", tiny_bert,
                                      "--data-dir", bad_glue, "--out", runs / "out", "--quiet"])
    assert_one_error(code, out, err, "dev_mismatched.tsv", "file not found")
    assert not runs.exists()


def test_data_dir_not_a_directory(capsys, tiny_bert, tmp_path, runs):
    code, out, err = run_cli(capsys, ["finetune", "--task", "sst2", "--model", tiny_bert, "--data-dir",
                                      tmp_path / "nope", "--out", runs / "out"])
    assert_one_error(code, out, err, "--data-dir", "nope: not a directory")
    assert not runs.exists()


# --- tasks, splits, models ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["finetune", "distill", "evaluate", "cache"])
def test_unknown_task(capsys, tiny_bert, tiny_teacher, glue_dir, runs, command):
    argv = {"finetune": ["finetune", "--model", tiny_bert, "--out", runs / "out", "--data-dir", glue_dir],
            "distill": ["distill", "--teacher", tiny_teacher, "--student-layers", "2", "--out", runs / "out",
                        "--data-dir", glue_dir, "--cache-dir", runs / "cache"],
            "evaluate": ["evaluate", tiny_teacher, "--data-dir", glue_dir],
            "cache": ["cache", "--teacher", tiny_teacher, "--data-dir", glue_dir,
                      "--cache-dir", runs / "cache"],
            }[command]
    code, out, err = run_cli(capsys, [*argv, "--task", "glue10"])
    assert_one_error(code, out, err, "--task glue10: unknown task", "sst2")
    assert not runs.exists()


def test_unknown_split(capsys, tiny_teacher, glue_dir):
    code, out, err = run_cli(capsys, ["evaluate", tiny_teacher, "--task", "sst2", "--split", "validation",
                                      "--data-dir", glue_dir])
    assert_one_error(code, out, err, "--split validation: unknown split")


@pytest.mark.parametrize("command", ["finetune", "evaluate", "predict", "distill"])
def test_missing_model_path(capsys, glue_dir, runs, command):
    argv = {"finetune": ["finetune", "--model", "/nonexistent", "--out", runs / "out"],
            "evaluate": ["evaluate", "/nonexistent"],
            "predict": ["predict", "/nonexistent", "--out", runs / "pred.tsv"],
            "distill": ["distill", "--teacher", "/nonexistent", "--student-layers", "2",
                        "--out", runs / "out", "--cache-dir", runs / "cache"]}[command]
    code, out, err = run_cli(capsys, [*argv, "--task", "sst2", "--data-dir", glue_dir])
    assert_one_error(code, out, err, "/nonexistent: model path not found")
    assert not runs.exists()


def test_model_dir_without_config(capsys, glue_dir, tmp_path, runs):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    code, out, err = run_cli(capsys, ["finetune", "--task", "sst2", "--model", empty, "--data-dir", glue_dir,
                                      "--out", runs / "out"])
    assert_one_error(code, out, err, str(empty), "not a model directory")
    assert not runs.exists()


def test_evaluate_base_model_is_not_a_classifier(capsys, tiny_bert, glue_dir):
    code, out, err = run_cli(capsys, ["evaluate", tiny_bert, "--task", "sst2", "--data-dir", glue_dir])
    assert_one_error(code, out, err, str(tiny_bert), "not a sequence classifier", "pkd finetune")


def test_predict_base_model_writes_nothing(capsys, tiny_bert, glue_dir, runs):
    code, out, err = run_cli(capsys, ["predict", tiny_bert, "--task", "sst2", "--data-dir", glue_dir,
                                      "--out", runs / "pred.tsv"])
    assert_one_error(code, out, err, "not a sequence classifier")
    assert not runs.exists()


def test_distill_from_base_model(capsys, tiny_bert, glue_dir, runs):
    code, out, err = run_cli(capsys, ["distill", "--teacher", tiny_bert, "--task", "sst2",
                                      "--student-layers", "2", "--data-dir", glue_dir, "--out", runs / "out",
                                      "--cache-dir", runs / "cache"])
    assert_one_error(code, out, err, "not a sequence classifier")
    assert not runs.exists()


@pytest.mark.parametrize("task, needs", [("stsb", 1), ("mnli", 3)])
def test_evaluate_classifier_on_a_task_with_other_labels(capsys, tiny_teacher, glue_dir, task, needs):
    code, out, err = run_cli(capsys, ["evaluate", tiny_teacher, "--task", task, "--data-dir", glue_dir])
    assert_one_error(code, out, err, "has 2 labels", f"task {task} needs {needs}")


# --- --out --------------------------------------------------------------------------------------------------


def _occupied(runs: Path) -> Path:
    out = runs / "out"
    (out / "sub").mkdir(parents=True)
    (out / "keep.txt").write_text("precious\n")
    (out / "sub" / "model.bin").write_bytes(b"\x00\x01")
    return out


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", ["finetune", "distill", "compare"])
def test_out_not_empty_is_refused(capsys, tiny_bert, tiny_teacher, glue_dir, runs, command):
    out_dir = _occupied(runs)
    before = _snapshot(runs)
    student = ["--student-layers", "2", "--cache-dir", runs / "cache"]
    argv = {"finetune": ["finetune", "--model", tiny_bert],
            "distill": ["distill", "--teacher", tiny_teacher, *student],
            "compare": ["compare", "--teacher", tiny_teacher, *student],
            }[command]
    code, out, err = run_cli(capsys, [*argv, "--task", "sst2", "--data-dir", glue_dir, "--out", out_dir,
                                      "--quiet"])
    assert_one_error(code, out, err, f"--out {out_dir}", "not empty", "--overwrite")
    assert _snapshot(runs) == before
    assert sorted(p.name for p in runs.iterdir()) == ["out"]  # no cache, no temporary directory beside it
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt", "sub"]


HOLDER = """import sys
from pkd.rundir import prepare_out_dir
prepare_out_dir(sys.argv[1], resume=True)
print("held", flush=True)
sys.stdin.read()
"""


def test_an_out_another_process_writes_to_is_refused(capsys, tiny_teacher, glue_dir, runs):
    """Two commands on one --out (a --resume started while the first still runs) would interleave their epochs
    and checkpoints: while one process holds the directory, the other is refused before writing anything; once
    the holder ends, its lock is gone. A command run in this process releases its directories when it returns,
    so another process may use them next."""
    out_dir = runs / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    argv = ["distill", "--teacher", tiny_teacher, "--student-layers", "2", "--task", "sst2", "--data-dir", glue_dir,
            "--cache-dir", runs / "cache", "--epochs", "1", "--max-seq-len", "24", "--out", out_dir, "--resume",
            "--quiet"]
    try:
        assert holder.stdout.readline() == "held\n"
        assert_one_error(*run_cli(capsys, argv), f"--out {out_dir}: another process is writing to it")
        assert not any(out_dir.iterdir())
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    code, _, err = run_cli(capsys, argv)
    assert code == 0 and (out_dir / "result.json").is_file(), err
    again = subprocess.run([sys.executable, "-c", HOLDER, str(out_dir)], input="", capture_output=True, text=True,
                           env=env, timeout=60)
    assert again.returncode == 0 and again.stdout == "held\n", again.stderr[-2000:]


def test_out_is_a_file(capsys, tiny_bert, glue_dir, runs):
    runs.mkdir()
    target = runs / "out"
    target.write_text("not a directory\n")
    code, out, err = run_cli(capsys, ["finetune", "--task", "sst2", "--model", tiny_bert,
                                      "--data-dir", glue_dir, "--out", target])
    assert_one_error(code, out, err, f"--out {target}", "not a directory")
    assert target.read_text() == "not a directory\n"
    assert [p.name for p in runs.iterdir()] == ["out"]


# --- distillation options -----------------------------------------------------------------------------------


def _distill(tiny_teacher, glue_dir, runs, *extra) -> list:
    return ["distill", "--teacher", tiny_teacher, "--task", "sst2", "--data-dir", glue_dir,
            "--out", runs / "out", "--cache-dir", runs / "cache", "--quiet", *extra]


@pytest.mark.parametrize("option, value, message", [
    ("--alpha", "1.5", "--alpha 1.5: must be in [0, 1]"),
    ("--alpha", "-0.1", "--alpha -0.1: must be in [0, 1]"),
    ("--alpha", "nan", "--alpha nan"),
    ("--temperature", "0", "--temperature 0.0: must be > 0"),
    ("--temperature", "-2", "--temperature -2.0: must be > 0"),
    ("--temperature", "nan", "--temperature nan"),
    ("--beta", "-0.5", "--beta -0.5: must be >= 0"),
    ("--beta", "nan", "--beta nan"),
])
def test_distill_loss_weights(capsys, tiny_teacher, glue_dir, runs, option, value, message):
    argv = _distill(tiny_teacher, glue_dir, runs, "--student-layers", "2", f"{option}={value}")
    code, out, err = run_cli(capsys, argv)
    assert_one_error(code, out, err, message)
    assert not runs.exists()


def test_compare_checks_loss_weights_before_any_work(capsys, tiny_teacher, glue_dir, runs):
    code, out, err = run_cli(capsys, ["compare", "--teacher", tiny_teacher, "--task", "sst2",
                                      "--student-layers", "2", "--alpha=2", "--data-dir", glue_dir,
                                      "--out", runs / "out", "--cache-dir", runs / "cache"])
    assert_one_error(code, out, err, "--alpha 2.0: must be in [0, 1]")
    assert not runs.exists()


@pytest.mark.parametrize("layer_map, message", [
    ("2,5", "layer 5 is out of range 1..4"),
    ("0,2", "layer 0 is out of range 1..4"),
    ("2,-1", "layer -1 is out of range 1..4"),
    ("2,2", "--layer-map 2,2: has duplicates"),
    ("2", "--layer-map 2: needs 2 teacher layers for a 3-layer student"),
    ("1,2,3", "--layer-map 1,2,3: needs 2 teacher layers"),
    ("a,b", "--layer-map a,b: expected comma-separated teacher layer numbers"),
    ("2;4", "--layer-map 2;4: expected comma-separated"),
])
def test_layer_map(capsys, tiny_teacher, glue_dir, runs, layer_map, message):
    argv = _distill(tiny_teacher, glue_dir, runs, "--student-layers", "3", "--method", "pkd",
                    f"--layer-map={layer_map}")
    code, out, err = run_cli(capsys, argv)
    assert_one_error(code, out, err, message)
    assert not runs.exists()


def test_layer_map_with_a_method_that_has_none(capsys, tiny_teacher, glue_dir, runs):
    argv = _distill(tiny_teacher, glue_dir, runs, "--student-layers", "3", "--method", "kd",
                    "--layer-map", "2,4")
    assert_one_error(*run_cli(capsys, argv), "--layer-map: not used by --method kd")
    assert not runs.exists()


def test_method_pkd_needs_a_layer_map(capsys, tiny_teacher, glue_dir, runs):
    argv = _distill(tiny_teacher, glue_dir, runs, "--student-layers", "3", "--method", "pkd")
    assert_one_error(*run_cli(capsys, argv), "--method pkd needs --layer-map")
    assert not runs.exists()


@pytest.mark.parametrize("layers", ["4", "6"])
def test_student_not_shallower_than_teacher(capsys, tiny_teacher, glue_dir, runs, layers):
    code, out, err = run_cli(capsys, _distill(tiny_teacher, glue_dir, runs, "--student-layers", layers))
    assert_one_error(code, out, err, f"--student-layers {layers}", "shallower than the teacher (4 layers)")
    assert not runs.exists()


def test_student_of_zero_layers(capsys, tiny_teacher, glue_dir, runs):
    code, out, err = run_cli(capsys, _distill(tiny_teacher, glue_dir, runs, "--student-layers", "0"))
    assert_one_error(code, out, err, "--student-layers 0: must be at least 1")
    assert not runs.exists()


@pytest.mark.parametrize("method", ["pkd-skip", "pkd-last"])
def test_one_layer_student_with_pt(capsys, tiny_teacher, glue_dir, runs, method):
    """A 1-layer student has no layer to match: PT would silently be off and the run plain KD."""
    code, out, err = run_cli(capsys, _distill(tiny_teacher, glue_dir, runs, "--student-layers", "1",
                                              "--method", method))
    assert_one_error(code, out, err, "--student-layers 1", f"--method {method}", "--method kd")
    assert not runs.exists()


def test_compare_student_as_deep_as_teacher(capsys, tiny_teacher, glue_dir, runs):
    code, out, err = run_cli(capsys, ["compare", "--teacher", tiny_teacher, "--task", "sst2",
                                      "--student-layers", "4", "--data-dir", glue_dir, "--out", runs / "out",
                                      "--cache-dir", runs / "cache", "--quiet"])
    assert_one_error(code, out, err, "--student-layers 4", "shallower")
    assert not runs.exists()


def test_cache_layer_out_of_range(capsys, tiny_teacher, glue_dir, runs):
    code, out, err = run_cli(capsys, ["cache", "--teacher", tiny_teacher, "--task", "sst2", "--layers", "2,9",
                                      "--data-dir", glue_dir, "--cache-dir", runs / "cache"])
    assert_one_error(code, out, err, "--layers: layer 9 is out of range 1..4")
    assert not runs.exists()


@pytest.mark.parametrize("option", ["--epochs", "--max-eval-examples"])
def test_training_option_out_of_range(capsys, tiny_bert, glue_dir, runs, option):
    code, out, err = run_cli(capsys, ["finetune", "--task", "sst2", "--model", tiny_bert,
                                      "--data-dir", glue_dir, "--out", runs / "out", option, "0"])
    assert_one_error(code, out, err, f"{option} 0: must be at least 1")
    assert not runs.exists()


# --- argparse's own errors take the same form ---------------------------------------------------------------


@pytest.mark.parametrize("argv, needle", [
    (["distill", "--task", "sst2", "--out", "x"], "required: --teacher, --student-layers"),
    (["distill", "--teacher", "t", "--task", "sst2", "--student-layers", "2", "--out", "x", "--alpha", "abc"],
     "argument --alpha: invalid float value: 'abc'"),
    (["finetune", "--task", "sst2", "--out", "x", "--precision", "fp8"],
     "argument --precision: invalid choice"),
    (["train"], "invalid choice: 'train'"),
])
def test_argparse_errors(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 2
    assert_one_error(2, out, err, needle)
    assert list(tmp_path.iterdir()) == []


# --- through the installed console script -------------------------------------------------------------------


def _pkd_script() -> Path:
    script = Path(sys.executable).with_name("pkd")
    if not script.is_file():
        pytest.skip("no pkd console script beside this interpreter")
    return script


def _subprocess(argv: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([str(_pkd_script()), *map(str, argv)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_subprocess_unknown_task(tmp_path, runs):
    proc = _subprocess(["finetune", "--task", "glue10", "--out", runs / "out"], tmp_path)
    assert_one_error(proc.returncode, proc.stdout, proc.stderr, "--task glue10: unknown task")
    assert not runs.exists()


def test_subprocess_bad_bytes(tmp_path, tiny_bert, bad_glue, runs):
    path = bad_glue / "SST-2" / "train.tsv"
    _edit_line(6, lambda s: b"\x80" + s)(path)
    proc = _subprocess(["finetune", "--task", "sst2", "--model", tiny_bert, "--data-dir", bad_glue,
                        "--out", runs / "out", "--quiet"], tmp_path)
    assert_one_error(proc.returncode, proc.stdout, proc.stderr, f"{path}:6:", "not valid UTF-8")
    assert not runs.exists()


def test_evaluate_unlabeled_split(capsys, tiny_teacher, glue_dir):
    code, out, err = run_cli(capsys, ["evaluate", tiny_teacher, "--task", "sst2", "--split", "test",
                                      "--data-dir", glue_dir])
    assert_one_error(code, out, err, str(glue_dir / "SST-2" / "test.tsv"), "has no labels")


def test_predict_out_is_a_directory(capsys, tiny_teacher, glue_dir, runs):
    (runs / "pred.tsv").mkdir(parents=True)
    code, out, err = run_cli(capsys, ["predict", tiny_teacher, "--task", "sst2", "--data-dir", glue_dir,
                                      "--out", runs / "pred.tsv"])
    assert_one_error(code, out, err, f"--out {runs / 'pred.tsv'}", "is a directory")
    assert [p.name for p in runs.iterdir()] == ["pred.tsv"]
    assert list((runs / "pred.tsv").iterdir()) == []


def test_predict_bad_test_file_writes_nothing(capsys, tiny_teacher, bad_glue, runs):
    path = bad_glue / "SST-2" / "test.tsv"
    _edit_line(4, lambda s: s + b"\tx")(path)
    code, out, err = run_cli(capsys, ["predict", tiny_teacher, "--task", "sst2", "--data-dir", bad_glue,
                                      "--out", runs / "pred.tsv"])
    assert_one_error(code, out, err, f"{path}:4:", "expected 2 tab-separated fields, found 3")
    assert not runs.exists()


def test_predict_mnli_part_out_is_a_directory(capsys, tiny_teacher, glue_dir, runs):
    (runs / "pred-mm.tsv").mkdir(parents=True)
    code, out, err = run_cli(capsys, ["predict", tiny_teacher, "--task", "mnli", "--data-dir", glue_dir,
                                      "--out", runs / "pred.tsv"])
    assert_one_error(code, out, err, f"--out {runs / 'pred-mm.tsv'}", "is a directory")
    assert [p.name for p in runs.iterdir()] == ["pred-mm.tsv"]  # pred-m.tsv was not written either


def test_predict_good_input_still_writes(capsys, tiny_teacher, glue_dir, runs):
    """The control for the refusals above: the same command with good input succeeds and writes the file."""
    capsys.readouterr()
    assert main(["predict", str(tiny_teacher), "--task", "sst2", "--data-dir", str(glue_dir),
                 "--out", str(runs / "pred.tsv")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(runs / "pred.tsv") and "error" not in err
    rows = (runs / "pred.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction"
    assert [r.split("\t")[0] for r in rows[1:]] == [str(i) for i in range(10)]
    assert {r.split("\t")[1] for r in rows[1:]} <= {"0", "1"}


def test_pickled_weights_are_never_loaded(tmp_path, glue_dir, capsys):
    """A checkpoint whose weights exist only as a pickle (pytorch_model.bin) is refused before loading."""
    import torch
    from conftest import make_tiny_model
    from safetensors.torch import load_file

    src = make_tiny_model(tmp_path / "src")
    pickled = tmp_path / "pickled"
    shutil.copytree(src, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    out = tmp_path / "out"
    capsys.readouterr()  # drop what building the fixture printed
    code = main(["finetune", "--task", "sst2", "--model", str(pickled), "--data-dir", str(glue_dir),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "pytorch_model.bin" in err and "safetensors only" in err
    assert not out.exists()
