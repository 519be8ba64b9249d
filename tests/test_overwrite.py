"""--overwrite and --out touch only what pkd wrote (issue 35, item 1): a directory without pkd's marker files is
never deleted, and no --out may overlap the teacher, the source run, the data, the cache or the working directory.
Each refusal is one line, exit 2, with every file left as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_bad_input import assert_one_error, run_cli

from pkd.rundir import check_out_dir


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root and its bytes: what a refusal must leave unchanged."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def work(tiny_teacher, tmp_path) -> Path:
    """A user's folder: a copy of a finished run (work/student) beside unrelated notes (work/keep/notes.txt)."""
    root = tmp_path / "work"
    shutil.copytree(tiny_teacher, root / "student")
    (root / "keep").mkdir()
    (root / "keep" / "notes.txt").write_text("not pkd's\n")
    return root


def test_export_over_the_folder_of_its_source_run_is_refused(work, glue_dir, capsys):
    """The reproduced loss: `pkd export work/student --out work --overwrite` emptied work/."""
    before = tree(work)
    code, out, err = run_cli(capsys, ["export", work / "student", "--out", work, "--overwrite",
                                      "--data-dir", glue_dir])
    assert_one_error(code, out, err, f"--out {work}", "contains the source run")
    assert tree(work) == before


def test_overwrite_of_a_directory_pkd_did_not_write_is_refused(tiny_teacher, glue_dir, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    code, out, err = run_cli(capsys, ["distill", "--teacher", tiny_teacher, "--task", "sst2", "--student-layers", "2",
                                      "--data-dir", glue_dir, "--out", mine, "--overwrite", "--quiet"])
    assert_one_error(code, out, err, f"--out {mine}", "replaces only a directory pkd wrote", "nothing was touched")
    assert (mine / "thesis.tex").read_text() == "years of work\n"


def test_distill_into_the_folder_that_holds_the_teacher_is_refused(tiny_teacher, glue_dir, capsys):
    runs = Path(tiny_teacher).parent
    before = tree(runs)
    code, out, err = run_cli(capsys, ["distill", "--teacher", tiny_teacher, "--task", "sst2", "--student-layers", "2",
                                      "--data-dir", glue_dir, "--out", runs, "--overwrite", "--quiet"])
    assert_one_error(code, out, err, "contains --teacher")
    assert tree(runs) == before


def test_out_inside_the_teacher_or_the_data_is_refused(tiny_teacher, glue_dir, capsys):
    code, out, err = run_cli(capsys, ["distill", "--teacher", tiny_teacher, "--task", "sst2", "--student-layers", "2",
                                      "--data-dir", glue_dir, "--out", Path(tiny_teacher) / "student", "--quiet"])
    assert_one_error(code, out, err, "lies inside --teacher")
    code, out, err = run_cli(capsys, ["finetune", "--task", "sst2", "--data-dir", glue_dir,
                                      "--out", Path(glue_dir) / "SST-2" / "run", "--quiet"])
    assert_one_error(code, out, err, "lies inside --data-dir")


def test_out_dot_with_overwrite_leaves_the_working_directory_alone(tiny_teacher, glue_dir, tmp_path, monkeypatch,
                                                                   capsys):
    """`--out . --overwrite` emptied the working directory, then failed with a bare OSError."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.json").write_text("{}")  # even a directory that looks like pkd's
    (tmp_path / "data.csv").write_text("text,label\nx,1\n")
    before = tree(tmp_path)
    for out_dir in (".", ".."):
        code, out, err = run_cli(capsys, ["export", tiny_teacher, "--out", out_dir, "--overwrite"])
        assert_one_error(code, out, err, f"--out {out_dir}", "working directory")
    assert tree(tmp_path) == before


def test_out_may_not_be_or_contain_the_cache_but_may_lie_inside_it(tmp_path):
    cache = tmp_path / "cache"
    (cache / "entry").mkdir(parents=True)
    for out in (cache, tmp_path):
        with pytest.raises(Exception, match="the teacher cache"):
            check_out_dir(out, overwrite=True, nests=[("the teacher cache", cache)])
    check_out_dir(cache / "run", nests=[("the teacher cache", cache)])


def test_overwrite_replaces_a_run_pkd_wrote(tiny_teacher, tmp_path):
    """The rule's other half: a directory with run.json is pkd's, and --overwrite may replace it."""
    old = tmp_path / "old"
    shutil.copytree(tiny_teacher, old)
    assert check_out_dir(old, overwrite=True) == old


def test_predict_over_its_own_test_file_is_refused(tiny_teacher, tmp_path, capsys):
    data = tmp_path / "test.csv"
    data.write_text("text,label\nsome words,1\n")
    code, out, err = run_cli(capsys, ["predict", tiny_teacher, "--task", "sst2", "--test-file", data,
                                      "--out", data])
    assert_one_error(code, out, err, "is --test-file")
    assert data.read_text() == "text,label\nsome words,1\n"
