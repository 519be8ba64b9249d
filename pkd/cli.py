"""The `pkd` command line: a parser built from the config dataclasses (pkd.config), and one table that maps each
subcommand to one API function."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path

from pkd.config import (
    AugmentConfig,
    CompareConfig,
    DataConfig,
    DistillConfig,
    ExportConfig,
    LossConfig,
    RunConfig,
    SweepConfig,
    TrainConfig,
    from_options,
    parse_layer_map,
)
from pkd.errors import PkdError, UsageError
from pkd.version import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other usage error
        self.exit(2, f"pkd: error: {message}\n")


# ------------------------------------------------------------------------------------ options from fields


def add_fields(parser: argparse.ArgumentParser, cls: type, title: str | None = None, defaults: object | None = None,
               only: Sequence[str] | None = None, skip: Sequence[str] = ()) -> None:
    """One option per field of `cls` (nested configs included), with its type, default and help.

    defaults: an instance whose values are the defaults here (DistillConfig's loss weights, a command's epochs).
    """
    group = parser.add_argument_group(title) if title else parser
    for f in fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        default = getattr(defaults, f.name) if defaults is not None else (
            f.default_factory() if f.default_factory is not MISSING else f.default)
        if is_dataclass(default):  # a nested config (DistillConfig.loss): its fields, with its defaults here
            add_fields(parser, type(default), f.metadata.get("title") or (f.name if title else None), default)
            continue
        meta = f.metadata
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kwargs = {"help": meta.get("help", "")}
        if default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if f.type in ("bool", bool, "bool | None"):  # a switch; on (or the recipe's) by default: also its --no- form
            group.add_argument(flag, dest=f.name, default=default, help=kwargs["help"],
                               action=argparse.BooleanOptionalAction if default is not False else "store_true")
            continue
        kwargs["type"] = meta.get("parse") or _scalar(f.type)
        for key in ("choices", "nargs", "metavar"):
            if key in meta:
                kwargs[key] = meta[key]
        if "default" in kwargs and kwargs["default"] is not None and not isinstance(kwargs["default"], str) \
                and "parse" not in meta:
            kwargs["help"] += f" (default {kwargs['default']})"
        group.add_argument(flag, dest=f.name, **kwargs)


def _scalar(annotation: str | type) -> Callable[[str], object]:
    """The argparse type of a field annotated int, float or str (optionally `| None`)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return {"int": int, "float": float}.get(text.split("|")[0].strip().removeprefix("list[").rstrip("]"), str)


def configs(args: argparse.Namespace, *classes: type) -> list:
    """The parsed options as instances of the config classes that declare them."""
    return from_options(vars(args), *classes, strict=False)


# --------------------------------------------------------------------------------------------- config files


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=(
        "read options from a JSON or YAML file: option names as keys (dashes or underscores), flat or in sections "
        "such as train: or loss:; a run's own run.json (compare.json, sweep.json) re-runs it. Options on the command "
        "line win"))


class _Probe(_Parser):
    def error(self, message: str):  # the caller names the file the bad value came from
        raise UsageError(message)


def _read_config(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--config {path}: no such file")
    if file.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise UsageError(f"--config {path}: reading YAML needs PyYAML (pip install pyyaml); or use JSON") from None
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.YAMLError as e:
            raise UsageError(f"--config {path}: not valid YAML: {str(e).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(file.read_text())
        except ValueError as e:
            raise UsageError(f"--config {path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected option names and their values")
    return data


def _run_record_settings(record: dict) -> dict:
    """The settings of a run's run.json (a comparison's compare.json, a sweep's sweep.json): its train, loss and
    augment sections and the options it records beside them, not what it records about the run (result, versions, data
    fingerprint, ...). The layer map of every method but pkd follows from the method, so only that one's is read;
    a pre-trained student's source is its --student-base; a comparison's methods are its table's rows, run over its
    seeds; a sweep's grid is its --grid."""
    settings = {**record.get("train", {}), **record.get("loss", {}), **(record.get("augment") or {}),
                **{k: v for k, v in record.items() if not isinstance(v, dict)}}
    if record.get("method") != "pkd":
        settings.pop("layer_map", None)
    if record.get("student_init") == "pretrained" and "student_source" in record:
        settings["student_base"] = record["student_source"]
    if "runs_planned" in record:
        settings["methods"] = list(record["methods"])
        settings["seeds"] = record["runs_planned"] // len(settings["methods"])
    if "trials" in record:
        settings["grid"] = [f"{name}={','.join(map(str, values))}" for name, values in record["grid"].items()]
        settings["random_trials"] = record.get("random")
    return settings


def _as_arguments(action: argparse.Action, value: object) -> list[str]:
    """A value from a config file as the command-line arguments that give it."""
    flag = action.option_strings[0]
    if action.nargs == 0:  # a switch: on is its flag; off is its --no- form, or nothing where off is the default
        if value not in (True, False):
            raise UsageError(f"{flag}: expected true or false, not {value!r}")
        return [flag] if value else [s for s in action.option_strings if s.startswith("--no-")][:1]
    if value is None:
        return []
    items = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    return [flag, *items] if action.nargs in ("+", "*") else [flag, ",".join(items)]


def config_arguments(path: str, command: str) -> list[str]:
    """The options in a config file as command-line arguments of `command`, each value checked by the command's
    own parser. A run's run.json (compare.json, sweep.json) gives its settings and its other entries are skipped; in
    any other file a key that is not an option of the command is an error."""
    probe = _Probe(prog=f"pkd {command}")
    COMMANDS[command].arguments(probe)
    actions = {a.dest: a for a in probe._actions if a.option_strings and a.dest != "help"}
    if actions.pop("config", None) is None:  # not a training command: its parser rejects --config
        return []
    data = _read_config(path)
    record = any(key in data for key in ("versions", "runs_planned", "trials"))  # run, compare, sweep.json
    if record:
        data = _run_record_settings(data)
    options = {}
    for key, value in data.items():
        section = isinstance(value, dict) and key.replace("-", "_") not in actions
        for name, item in (value.items() if section else [(key, value)]):
            dest = name.replace("-", "_")
            if dest in actions:
                options[dest] = item
            elif not record:
                raise UsageError(f"--config {path}: {key + '.' if section else ''}{name} is not an option of "
                                 f"pkd {command}")
    for action in actions.values():  # check the file's values alone: the command line may give the required ones
        action.required = False
    try:
        arguments = [text for dest, value in options.items() for text in _as_arguments(actions[dest], value)]
        probe.parse_args(arguments)
    except UsageError as e:
        raise UsageError(f"--config {path}: {e}") from None
    return arguments


def with_config_file(argv: list[str]) -> list[str]:
    """argv with the options of its --config file put before its own, so that those given on the command line win
    (argparse keeps an option's last value)."""
    if not argv or argv[0] not in COMMANDS:
        return argv
    pre = _Parser(prog=f"pkd {argv[0]}", add_help=False)
    pre.add_argument("--config")
    path = pre.parse_known_args(argv[1:])[0].config
    return argv if path is None else [argv[0], *config_arguments(path, argv[0]), *argv[1:]]


# ------------------------------------------------------------------------------------------ the commands


@dataclass(frozen=True)
class Command:
    help: str
    run: Callable[[argparse.Namespace], str]  # calls one API function; returns what to print
    arguments: Callable[[argparse.ArgumentParser], None]


def _print_best(best: dict, out: str | Path) -> str:
    return json.dumps({"best": best, "out": str(out)}) + "\n"


def _finetune_arguments(p: argparse.ArgumentParser) -> None:
    add_fields(p, RunConfig)
    p.add_argument("--model", default=None, help="checkpoint path or Hub name (default: all-MiniLM-L6-v2)")
    add_fields(p, TrainConfig, "training")
    add_config_option(p)


def _finetune(args: argparse.Namespace) -> str:
    from pkd import api

    return _print_best(api.run_finetune(*configs(args, RunConfig, TrainConfig), args.model),
                       args.out)


def _distill_arguments(p: argparse.ArgumentParser) -> None:
    add_fields(p, RunConfig)
    add_fields(p, DistillConfig, "distillation")
    add_fields(p, TrainConfig, "training")
    add_config_option(p)


def _distill(args: argparse.Namespace) -> str:
    from pkd import api

    return _print_best(api.run_distill(*configs(args, RunConfig, DistillConfig, TrainConfig)), args.out)


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    add_fields(p, RunConfig)
    add_fields(p, DistillConfig, "distillation", skip=("method", "layer_map", "live_teacher"))
    add_fields(p, CompareConfig, "comparison")
    add_fields(p, TrainConfig, "training")
    add_config_option(p)


def _compare(args: argparse.Namespace) -> str:
    from pkd.comparison import run_compare
    from pkd.rundir import COMPARE_MARKDOWN

    run_compare(*configs(args, RunConfig, DistillConfig, TrainConfig, CompareConfig))
    return (Path(args.out) / COMPARE_MARKDOWN).read_text()


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    from pkd import trials

    p.description = trials.__doc__
    add_fields(p, RunConfig)
    add_fields(p, DistillConfig, "distillation", skip=("live_teacher",))
    add_fields(p, SweepConfig, f"search (NAME is one of {', '.join(trials.PARAMS)})")
    add_fields(p, TrainConfig, "training")
    add_config_option(p)


def _sweep(args: argparse.Namespace) -> str:
    from pkd import trials

    trials.run_sweep(*configs(args, RunConfig, DistillConfig, TrainConfig, SweepConfig))
    return (Path(args.out) / "results.md").read_text()


def _cache_arguments(p: argparse.ArgumentParser) -> None:
    add_fields(p, DistillConfig, only=("teacher", "cache_dir", "augmentation"))
    add_fields(p, RunConfig, only=("task", "data_dir", "trust_remote_code", "data"))
    p.add_argument("--layers", type=parse_layer_map, default=None, help="teacher layers to store (default: all)")
    add_fields(p, LossConfig, only=("pt_pooling",))
    add_fields(p, TrainConfig, only=("max_seq_len", "max_train_examples"))
    p.add_argument("--rebuild", action="store_true", help="build it again even if it exists")
    p.add_argument("--verify", action="store_true", help="check the SHA-256 of every file of the cache (opening it "
                   "checks only their sizes)")


def _cache(args: argparse.Namespace) -> str:
    from pkd import api

    cache = api.build_cache(args.teacher, args.task, args.layers, data_dir=args.data_dir, cache_dir=args.cache_dir,
                            max_seq_len=args.max_seq_len, max_train_examples=args.max_train_examples,
                            rebuild=args.rebuild, trust_remote_code=args.trust_remote_code,
                            data=configs(args, DataConfig)[0], pt_pooling=args.pt_pooling,
                            augment=configs(args, AugmentConfig)[0])
    if args.verify:
        from pkd.cache import TeacherCache

        TeacherCache(cache.path, verify=True)
    return json.dumps({"cache": str(cache.path), "examples": len(cache),
                       "teacher_only": cache.meta.get("teacher_only", 0), "layers": cache.layers,
                       "pooling": cache.pooling, "spread": cache.spreads(cache.layers),
                       **({"verified": True} if args.verify else {})}) + "\n"


def _scoring_arguments(p: argparse.ArgumentParser, split: str) -> None:
    """What evaluate and predict share: a model, a task's split, and how to encode and batch it."""
    p.add_argument("model", help="run directory or checkpoint")
    add_fields(p, RunConfig, only=("task", "data_dir", "trust_remote_code", "data"))
    p.add_argument("--split", default=split)
    p.add_argument("--max-seq-len", type=int, default=None, help="default: the run's own")
    p.add_argument("--batch-size", type=int, default=128)


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    _scoring_arguments(p, "dev")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--max-examples", type=int, default=None,
                   help="score only the first N examples (RACE: N questions from a fixed sample of passages)")


def _evaluate(args: argparse.Namespace) -> str:
    from pkd import api

    metrics = api.evaluate(args.model, args.task, args.split, data_dir=args.data_dir, max_seq_len=args.max_seq_len,
                           batch_size=args.batch_size, trust_remote_code=args.trust_remote_code,
                           max_examples=args.max_examples, data=configs(args, DataConfig)[0])
    if args.json:
        return json.dumps(metrics) + "\n"
    return "".join(f"{k:>12}  {v:.2f}\n" for k, v in metrics.items())


def _predict_arguments(p: argparse.ArgumentParser) -> None:
    _scoring_arguments(p, "test")
    p.add_argument("--out", required=True, help="output TSV")
    p.add_argument("--probabilities", action="store_true",
                   help="your own data: also one column per label with its probability")


def _predict(args: argparse.Namespace) -> str:
    from pkd import api

    paths = api.predict(args.model, args.task, args.out, args.split, data_dir=args.data_dir,
                        max_seq_len=args.max_seq_len, batch_size=args.batch_size,
                        trust_remote_code=args.trust_remote_code, data=configs(args, DataConfig)[0],
                        probabilities=args.probabilities)
    return "".join(f"{p}\n" for p in paths)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("See pkd.deploy: formats, precisions (fp32, int8, bf16, auto: the fastest candidate within "
                     "--max-drop points of fp32, measured on this CPU), the parity check and why this exporter.")
    p.add_argument("run", help="run directory or checkpoint (a sequence classifier or a multiple-choice model)")
    add_fields(p, ExportConfig)


def _export(args: argparse.Namespace) -> str:
    from pkd import api

    record = api.run_export(args.run, *configs(args, ExportConfig))
    shown = {"out": args.out, "precision": record["precision"], "size_bytes": record["size_bytes"],
             "parity": record["parity"]}
    summary = json.dumps({**shown, **({"dev": record["dev"]} if "dev" in record else {})}) + "\n"
    if "auto" not in record:
        return summary
    from pkd import deploy

    auto = record["auto"]
    return (f"CPU: {auto['cpu']} ({auto['cpu_features']}); {auto['threads']} threads, {auto['seq_len']} tokens, "
            f"medians of {auto['repeats']} interleaved rounds; dev: the first {auto['dev_examples']} examples\n\n"
            f"{deploy.auto_table(auto)}\nchosen: {auto['reason']}\n{summary}")


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    from pkd import bench

    p.description = bench.DESCRIPTION
    bench.add_arguments(p)


def _bench(args: argparse.Namespace) -> str:
    from pkd import bench

    return bench.run_cli(args)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    from pkd import report

    p.description = report.__doc__
    report.add_arguments(p)


def _report(args: argparse.Namespace) -> str:
    from pkd import report

    return report.run_cli(args)


COMMANDS: dict[str, Command] = {
    "finetune": Command("fine-tune a teacher (or any encoder) on a task", _finetune, _finetune_arguments),
    "distill": Command("distill a shallower student from a fine-tuned teacher", _distill, _distill_arguments),
    "compare": Command("FT, KD, PKD-Skip and PKD-Last over seeds, as one table", _compare, _compare_arguments),
    "cache": Command("build the teacher-output cache for a task", _cache, _cache_arguments),
    "evaluate": Command("score a model on a labelled split", _evaluate, _evaluate_arguments),
    "predict": Command("write a submission file (index, prediction)", _predict, _predict_arguments),
    "export": Command("a run as ONNX or PyTorch, fp32, int8, bf16 or the fastest here, checked against it", _export,
                      _export_arguments),
    "bench": Command("parameters, size, memory and speed of models, side by side", _bench, _bench_arguments),
    "report": Command("Markdown and HTML report with tables and plots over runs", _report, _report_arguments),
    "sweep": Command("grid or random search over distillation hyperparameters", _sweep, _sweep_arguments),
}


def build_parser(command: str | None = None, only: bool = False) -> argparse.ArgumentParser:
    """The whole parser; with `only`, the options of `command` alone (none for `pkd --help` or `pkd --version`),
    since some subcommands' options (bench) import torch, and the others need not wait for it."""
    parser = _Parser(prog="pkd", description="Patient Knowledge Distillation for BERT-style encoders.")
    parser.add_argument("--version", action="version", version=f"pkd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, spec in COMMANDS.items():
        p = sub.add_parser(name, help=spec.help, formatter_class=argparse.RawDescriptionHelpFormatter)
        if not only or name == command:
            spec.arguments(p)
    return parser


def _rank0_prints():
    """Under `accelerate launch` every rank runs the command; only rank 0 prints its result."""
    from pkd import dist

    if dist.launched() and not dist.is_main():
        return contextlib.redirect_stdout(io.StringIO())
    return contextlib.nullcontext()


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    finished = False
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        command = argv[0] if argv and argv[0] in COMMANDS else None
        # a type= converter (--layer-map) may raise a UsageError
        args = build_parser(command, only=True).parse_args(with_config_file(argv))
        from pkd.models import quiet_transformers

        quiet_transformers()
        with _rank0_prints():
            print(COMMANDS[args.command].run(args), end="")
        finished = True
        return 0
    except PkdError as e:
        print(f"pkd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("pkd: interrupted", file=sys.stderr)
        return 130
    finally:
        from pkd.dist import shutdown

        shutdown(finished)


if __name__ == "__main__":
    sys.exit(main())
