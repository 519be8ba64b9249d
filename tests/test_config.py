"""Each option is declared once, in pkd.config: the CLI's options and the API's keywords come from its fields."""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest

from pkd.cli import build_parser, configs
from pkd.config import DistillConfig, LossConfig, RunConfig, TrainConfig, config_from_dict, from_options

BASE = {"finetune": ["--task", "sst2", "--out", "o"],
        "distill": ["--task", "sst2", "--out", "o", "--teacher", "t", "--student-layers", "2"],
        "compare": ["--task", "sst2", "--out", "o", "--teacher", "t", "--student-layers", "2"],
        "sweep": ["--task", "sst2", "--out", "o", "--teacher", "t", "--student-layers", "2", "--grid", "alpha=0.5"]}


@pytest.mark.parametrize("command", list(BASE))
def test_every_training_option_is_on_the_command_line_with_its_default(command):
    args = build_parser().parse_args([command, *BASE[command]])
    [cfg] = configs(args, TrainConfig)
    assert cfg == TrainConfig()  # epochs, lr and max_seq_len None: the task's recipe fills them in (pkd.api)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool) or f.type == "bool | None":  # a switch; one that is on (or the recipe's)
            # by default is turned off by its --no- form
            forms = [(flag, True)] + ([(flag.replace("--", "--no-", 1), False)] if f.default is not False else [])
            for given, expected in forms:
                changed = configs(build_parser().parse_args([command, *BASE[command], given]), TrainConfig)[0]
                assert getattr(changed, f.name) is expected, given
            continue
        value = "fp32" if f.name == "precision" else "3"
        changed = configs(build_parser().parse_args([command, *BASE[command], flag, value]), TrainConfig)[0]
        assert getattr(changed, f.name) == (value if f.name == "precision" else type(f.default or 1)(value)), f.name


def test_distillation_options_and_loss_weights_come_from_their_configs():
    args = build_parser().parse_args(["distill", *BASE["distill"], "--alpha", "0.5", "--no-normalize",
                                      "--layer-map", "2", "--method", "pkd"])
    run, distill = configs(args, RunConfig, DistillConfig)
    assert run == RunConfig(task="sst2", out="o")
    assert distill.loss == LossConfig(alpha=0.5, temperature=10.0, beta=0.65, normalize=False)
    assert (distill.method, distill.layer_map, distill.teacher, distill.student_layers) == ("pkd", [2], "t", 2)
    default = configs(build_parser().parse_args(["distill", *BASE["distill"]]), DistillConfig)[0]
    assert default == DistillConfig(teacher="t", student_layers=2)  # the same defaults as the API's


def test_keyword_options_go_to_the_config_that_declares_them():
    run, distill, train = from_options({"task": "sst2", "out": "o", "teacher": "t", "student_layers": 3,
                                        "beta": 1.3, "lr": 1e-4, "quiet": True}, RunConfig, DistillConfig, TrainConfig)
    assert run.quiet and train.lr == 1e-4 and distill.loss.beta == 1.3 and distill.loss.alpha == 0.7
    with pytest.raises(TypeError, match="unexpected option.*lrr"):
        from_options({"task": "sst2", "out": "o", "lrr": 1e-4}, RunConfig, TrainConfig)
    assert config_from_dict(DistillConfig, {"teacher": "t", "student_layers": 3,
                                            "loss": {"alpha": 0.1}}).loss == LossConfig(alpha=0.1)


def test_every_field_has_help():
    for cls in (TrainConfig, LossConfig, DistillConfig, RunConfig):
        for f in fields(cls):
            assert f.metadata.get("help") or f.default_factory is not MISSING, f"{cls.__name__}.{f.name}"
