"""`--config FILE` for the training commands: the flags' fields in a JSON or YAML file, the command line winning,
and a run's own run.json re-running it."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_TRAIN

from pkd.cli import build_parser, configs, main, with_config_file
from pkd.config import CompareConfig, DistillConfig, LossConfig, RunConfig, SweepConfig, TrainConfig
from pkd.errors import UsageError


def parse(argv: list[str]):
    return build_parser(argv[0], only=True).parse_args(with_config_file(argv))


def test_a_json_file_gives_options_flat_or_in_sections_and_the_command_line_wins(tmp_path):
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"task": "rte", "out": "o", "teacher": "t", "student-layers": 3, "layer_map": [2, 4],
                                "method": "pkd", "train": {"epochs": 5, "lr": 1e-4, "group_by_length": False},
                                "loss": {"alpha": 0.2, "normalize": False}}))
    run, distill, train = configs(parse(["distill", "--config", str(file)]), RunConfig, DistillConfig, TrainConfig)
    assert (run.task, run.out, distill.teacher, distill.student_layers) == ("rte", "o", "t", 3)
    assert distill.layer_map == [2, 4]
    assert (train.epochs, train.lr, train.group_by_length) == (5, 1e-4, False)
    assert distill.loss == LossConfig(alpha=0.2, temperature=10.0, beta=0.65, normalize=False)  # the rest: defaults
    run, distill, train = configs(parse(["distill", "--epochs", "2", "--config", str(file), "--group-by-length",
                                         "--out", "p", "--alpha", "0.9"]), RunConfig, DistillConfig, TrainConfig)
    assert (train.epochs, train.group_by_length, run.out, distill.loss.alpha) == (2, True, "p", 0.9)
    assert train.lr == 1e-4


def test_a_yaml_file_configures_a_sweep_and_a_compare(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("task: sst2\nout: o\nteacher: t\nstudent_layers: 2\ngrid: [\"alpha=0.2,0.5\", beta=1]\n"
                    "random_trials: 2\ntrain:\n  seed: 7\n")
    sweep, train = configs(parse(["sweep", "--config", str(file)]), SweepConfig, TrainConfig)
    assert (sweep.grid, sweep.random_trials, train.seed) == (["alpha=0.2,0.5", "beta=1"], 2, 7)
    file.write_text("task: sst2\nout: o\nteacher: t\nstudent_layers: 2\nmethods: [ft, kd]\nseeds: 5\n")
    [compare] = configs(parse(["compare", "--config", str(file), "--seeds", "2"]), CompareConfig)
    assert (compare.methods, compare.seeds) == (("ft", "kd"), 2)


@pytest.mark.parametrize("content, message", [
    ({"task": "sst2", "lrr": 1}, r"c.json: lrr is not an option of pkd finetune"),
    ({"train": {"epochz": 1}}, r"c.json: train.epochz is not an option"),
    ({"teacher": "t"}, r"c.json: teacher is not an option of pkd finetune"),  # distill's, not finetune's
    ({"epochs": "many"}, r"c.json: argument --epochs: invalid int value: 'many'"),
    ({"precision": "fp8"}, r"c.json: argument --precision: invalid choice"),
    ({"quiet": "yes"}, r"c.json: --quiet: expected true or false"),
    ([1, 2], r"c.json: expected option names"),
])
def test_a_bad_file_is_a_one_line_error_naming_it(tmp_path, content, message):
    file = tmp_path / "c.json"
    file.write_text(json.dumps(content))
    with pytest.raises(UsageError, match=message):
        parse(["finetune", "--config", str(file)])


def test_unreadable_files_and_commands_without_config_are_usage_errors(tmp_path, capsys):
    bad = tmp_path / "c.json"
    bad.write_text("{task: sst2")
    assert main(["finetune", "--config", str(bad)]) == 2
    assert main(["finetune", "--config", str(tmp_path / "none.yaml")]) == 2
    (tmp_path / "c.yaml").write_text("task: [sst2\n")
    assert main(["finetune", "--config", str(tmp_path / "c.yaml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    named = ["--config " + str(p) for p in (bad, tmp_path / "none.yaml", tmp_path / "c.yaml")]
    assert [line.split(": ")[2] for line in lines] == named
    assert "not valid JSON" in lines[0] and "no such file" in lines[1] and "not valid YAML" in lines[2]
    with pytest.raises(SystemExit):  # evaluate and the other scoring commands take no --config
        main(["evaluate", "m", "--task", "sst2", "--config", str(bad)])


def test_a_runs_run_json_reruns_it(tiny_teacher, glue_dir, tmp_path):
    """A distilled run's run.json, given as the config of a new run, makes the same run: the same settings in the
    new run.json and the same dev scores."""
    import pkd

    first = tmp_path / "first"
    pkd.distill(str(tiny_teacher), "sst2", 2, first, method="kd", data_dir=glue_dir, quiet=True,
                **{**TINY_TRAIN, "epochs": 1}, alpha=0.5, temperature=2.0)
    # finetune's own run.json configures a finetune, with its model; distill's keys are skipped there
    teacher = parse(["finetune", "--config", str(tiny_teacher / "run.json"), "--out", "x"])
    assert (teacher.task, teacher.model, teacher.epochs, teacher.lr) == ("sst2", json.loads(
        (tiny_teacher / "run.json").read_text())["model"], TINY_TRAIN["epochs"], TINY_TRAIN["lr"])
    second = tmp_path / "second"
    assert main(["distill", "--config", str(first / "run.json"), "--out", str(second), "--data-dir", str(glue_dir),
                 "--quiet"]) == 0
    old, new = (json.loads((d / "run.json").read_text()) for d in (first, second))
    for key in ("method", "teacher", "student_layers", "student_init", "init_layers", "train", "loss", "layer_map",
                "data_fingerprint"):
        assert new[key] == old[key], key
    assert new["result"]["score"] == pytest.approx(old["result"]["score"])


def test_a_comparisons_compare_json_reruns_it(tiny_teacher, glue_dir, tmp_path):
    import pkd

    first = tmp_path / "first"
    pkd.compare(str(tiny_teacher), "sst2", 2, first, methods=("ft", "kd"), seeds=2, data_dir=glue_dir, quiet=True,
                cache_dir=str(tmp_path / "cache"), **{**TINY_TRAIN, "epochs": 1}, beta=0.5)
    args = parse(["compare", "--config", str(first / "compare.json"), "--out", "x"])
    run, distill, train, compare = configs(args, RunConfig, DistillConfig, TrainConfig, CompareConfig)
    assert (compare.methods, compare.seeds, distill.teacher, distill.student_layers) == (
        ("ft", "kd"), 2, str(tiny_teacher), 2)
    assert (train.epochs, train.seed, distill.loss.beta) == (1, TINY_TRAIN["seed"], 0.5)
    second = tmp_path / "second"
    assert main(["compare", "--config", str(first / "compare.json"), "--out", str(second), "--data-dir",
                 str(glue_dir), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    old, new = (json.loads((d / "compare.json").read_text()) for d in (first, second))
    assert new["methods"] == old["methods"] and new["train"] == old["train"] and new["loss"] == old["loss"]


def test_a_sweeps_sweep_json_reruns_it(tiny_teacher, glue_dir, tmp_path):
    from pkd import trials

    first = tmp_path / "first"
    assert main(["sweep", "--teacher", str(tiny_teacher), "--task", "sst2", "--student-layers", "2", "--grid",
                 "alpha=0.2,0.5", "temperature=2", "--epochs", "1", "--batch-size", "16", "--max-seq-len", "24",
                 "--lr", "2e-3", "--seed", "0", "--data-dir", str(glue_dir), "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(first), "--quiet"]) == 0
    args = parse(["sweep", "--config", str(first / "sweep.json"), "--out", "x"])
    [search] = configs(args, SweepConfig)
    assert trials.parse_grid(search.grid) == {"alpha": [0.2, 0.5], "temperature": [2.0]}
    second = tmp_path / "second"
    assert main(["sweep", "--config", str(first / "sweep.json"), "--out", str(second), "--data-dir", str(glue_dir),
                 "--quiet"]) == 0
    trials = json.loads((first / "sweep.json").read_text())["trials"]
    assert trials == json.loads((second / "sweep.json").read_text())["trials"] and len(trials) == 2
    for name in trials:
        assert (json.loads((second / name / "result.json").read_text())["score"] ==
                json.loads((first / name / "result.json").read_text())["score"])
