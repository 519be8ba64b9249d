"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pkd import deploy
from pkd.cache import LiveTeacher, TeacherCache, ensure_cache
from pkd.dist import barrier, is_main, prepare_out_dir_once
from pkd.errors import DataError, UsageError
from pkd.io import check_out_dir, library_versions, write_json, write_text
from pkd.losses import LossConfig, Projection, layer_map_for
from pkd.metrics import predictions_from_logits
from pkd.models import (
    EncodedSplit,
    load_classifier,
    load_tokenizer,
    resolve_model,
    tokenizer_fingerprint,
)
from pkd.student import make_student
from pkd.tasks import get_task, load_split, split_files
from pkd.train import TrainConfig, check_device, evaluate_parts, predict_logits, seed_everything, train


def _encode(task, split: str, tokenizer, cfg_len: int, data_dir, limit=None) -> list[EncodedSplit]:
    return [EncodedSplit(part, tokenizer, cfg_len) for part in load_split(task, split, data_dir, limit)]


def _train_config(task, train_options: dict) -> TrainConfig:
    """TrainConfig with the task's default max_seq_len (128; 512 for RACE) when none is given."""
    if train_options.get("max_seq_len") is None:
        train_options = {**train_options, "max_seq_len": task.default_max_seq_len}
    cfg = TrainConfig(**train_options)
    check_device(cfg)  # before any work: a precision or batch size this device / process count cannot take
    return cfg


def finetune(task: str, out: str | Path, model: str | None = None, data_dir: str | Path | None = None,
             overwrite: bool = False, resume: bool = False, trust_remote_code: bool = False, quiet: bool = False,
             **train_options) -> dict:
    """Fine-tune an encoder (default: the MiniLM-L6 teacher) on a GLUE task; returns the best dev metrics."""
    task_ = get_task(task)
    cfg = _train_config(task_, train_options)
    check_out_dir(out, overwrite, resume)
    source = resolve_model(model)
    tokenizer = load_tokenizer(source, trust_remote_code)
    train_data = _encode(task_, "train", tokenizer, cfg.max_seq_len, data_dir, cfg.max_train_examples)[0]
    dev = _encode(task_, "dev", tokenizer, cfg.max_seq_len, data_dir, cfg.max_eval_examples)
    seed_everything(cfg.seed)  # the new head's initialisation depends on the seed
    net = load_classifier(source, task_, trust_remote_code)
    out = prepare_out_dir_once(out, overwrite, resume)
    info = {"command": "finetune", "model": source, "base_model": source, "data": train_data.split.source,
            "versions": library_versions()}
    return train(net, tokenizer, task_, train_data, dev, cfg, out, resume=resume, run_info=info, quiet=quiet)


def _teacher_base(teacher: str) -> str:
    """The pre-trained checkpoint a fine-tuned teacher started from (recorded by `pkd finetune`)."""
    run = Path(teacher) / "run.json"
    if run.is_file():
        return json.loads(run.read_text()).get("base_model", teacher)
    return teacher


def prepare_distillation(teacher: str, task: str, student_layers: int, method: str,
                         layer_map: list[int] | None = None, student_init: str = "pretrained",
                         init_layers: list[int] | None = None, projection: bool = False,
                         trust_remote_code: bool = False):
    """Load and check the teacher, build the student and the layer map. Shared by distill and compare."""
    task_ = get_task(task)
    teacher_path = resolve_model(teacher)
    teacher_model = load_classifier(teacher_path, task_, trust_remote_code, require_head=True)
    tokenizer = load_tokenizer(teacher_path, trust_remote_code)
    depth = teacher_model.config.num_hidden_layers
    lmap = layer_map_for(method, depth, student_layers, layer_map)
    if student_init not in ("pretrained", "teacher"):
        raise UsageError(f"--student-init {student_init}: choose pretrained or teacher")
    source = resolve_model(_teacher_base(teacher_path)) if student_init == "pretrained" else teacher_path
    student_tok = load_tokenizer(source, trust_remote_code)
    if tokenizer_fingerprint(student_tok) != tokenizer_fingerprint(tokenizer):
        raise DataError(f"{source}: its tokenizer differs from the teacher's ({teacher_path}); "
                        "teacher and student must share one vocabulary")

    teacher_hidden = teacher_model.config.hidden_size

    def build_student(seed: int):
        seed_everything(seed)
        student = make_student(source, student_layers, task_, init_layers, trust_remote_code)
        proj = None
        hs, ht = student.config.hidden_size, teacher_hidden
        if lmap and hs != ht:
            if not projection:
                raise UsageError(f"student hidden size {hs} differs from the teacher's {ht}: pass --pt-projection "
                                 "to learn a linear map for the PT loss")
            proj = Projection(hs, ht, len(lmap))
        return student, proj

    return task_, teacher_path, teacher_model, tokenizer, source, lmap, build_student


_METHOD_DEFAULTS = {"ft": (0.0, 0.0), "kd": (None, 0.0)}  # (alpha, beta) forced by the method


def loss_for(method: str, alpha: float, temperature: float, beta: float, normalize: bool = True) -> LossConfig:
    forced_alpha, forced_beta = _METHOD_DEFAULTS.get(method, (None, None))
    return LossConfig(alpha=alpha if forced_alpha is None else forced_alpha, temperature=temperature,
                      beta=beta if forced_beta is None else forced_beta, normalize=normalize)


def distill(teacher: str, task: str, student_layers: int, out: str | Path, method: str = "pkd-skip",
            layer_map: list[int] | None = None, alpha: float = 0.7, temperature: float = 10.0, beta: float = 0.65,
            normalize: bool = True, student_init: str = "pretrained", init_layers: list[int] | None = None,
            pt_projection: bool = False, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
            live_teacher: bool = False, overwrite: bool = False, resume: bool = False,
            trust_remote_code: bool = False, quiet: bool = False, **train_options) -> dict:
    """Distill a student of `student_layers` layers from a fine-tuned teacher; returns the best dev metrics."""
    cfg = _train_config(get_task(task), train_options)
    loss_cfg = loss_for(method, alpha, temperature, beta, normalize)
    check_out_dir(out, overwrite, resume)
    task_, teacher_path, teacher_model, tokenizer, source, lmap, build_student = prepare_distillation(
        teacher, task, student_layers, method, layer_map, student_init, init_layers, pt_projection,
        trust_remote_code)
    train_data = _encode(task_, "train", tokenizer, cfg.max_seq_len, data_dir, cfg.max_train_examples)[0]
    dev = _encode(task_, "dev", tokenizer, cfg.max_seq_len, data_dir, cfg.max_eval_examples)
    teacher_outputs = None
    if method != "ft":
        teacher_outputs = (LiveTeacher(teacher_model) if live_teacher else
                           ensure_cache(teacher_model, tokenizer, train_data, cfg.max_seq_len, lmap, cache_dir))
    student, proj = build_student(cfg.seed)
    info = {"command": "distill", "method": method, "teacher": teacher_path, "student_init": student_init,
            "student_source": source, "student_layers": student_layers,
            "init_layers": student.config.pkd_init["layers"], "base_model": source,
            "data": train_data.split.source, "cache": str(getattr(teacher_outputs, "path", "")),
            "versions": library_versions()}
    out = prepare_out_dir_once(out, overwrite, resume)
    return train(student, tokenizer, task_, train_data, dev, cfg, out, loss_cfg, teacher_outputs, lmap, proj,
                 resume=resume, run_info=info, quiet=quiet)


def build_cache(teacher: str, task: str, layers: list[int], data_dir: str | Path | None = None,
                cache_dir: str | Path | None = None, max_seq_len: int | None = None,
                max_train_examples: int | None = None, rebuild: bool = False,
                trust_remote_code: bool = False) -> TeacherCache:
    """Run the teacher once over the training split and store what distillation needs."""
    task_ = get_task(task)
    path = resolve_model(teacher)
    model = load_classifier(path, task_, trust_remote_code, require_head=True)
    tokenizer = load_tokenizer(path, trust_remote_code)
    depth = model.config.num_hidden_layers
    bad = [k for k in layers if not 1 <= k <= depth]
    if bad:
        raise UsageError(f"--layers: layer {bad[0]} is out of range 1..{depth}")
    max_seq_len = max_seq_len or task_.default_max_seq_len
    data = _encode(task_, "train", tokenizer, max_seq_len, data_dir, max_train_examples)[0]
    return ensure_cache(model, tokenizer, data, max_seq_len, layers, cache_dir, rebuild=rebuild)


def evaluate(model: str, task: str, split: str = "dev", data_dir: str | Path | None = None,
             max_seq_len: int | None = None, batch_size: int = 128, trust_remote_code: bool = False,
             max_examples: int | None = None) -> dict:
    """Score a fine-tuned classifier (a run directory or checkpoint) on a labelled split."""
    task_ = get_task(task)
    if max_examples is not None and max_examples < 1:
        raise UsageError(f"--max-examples {max_examples}: must be at least 1")
    path = resolve_model(model)
    net, tokenizer = _load_scorer(path, task_, trust_remote_code)
    max_seq_len = max_seq_len or _run_max_len(path, task_)
    parts = _encode(task_, split, tokenizer, max_seq_len, data_dir, max_examples)
    return evaluate_parts(net, parts, task_, tokenizer, batch_size)


def _load_scorer(path: str, task, trust_remote_code: bool):
    """A run directory's or checkpoint's classifier, or an export directory's model (ONNX Runtime for ONNX), with
    its tokenizer: evaluate and predict score both through the same code."""
    if deploy.is_export_dir(path):
        return deploy.load_for_task(path, task)
    return (load_classifier(path, task, trust_remote_code, require_head=True),
            load_tokenizer(path, trust_remote_code))


def _run_max_len(path: str, task) -> int:
    """The max_seq_len a run trained with (an export directory records its source run's)."""
    if deploy.is_export_dir(path):
        return deploy.read_export(path).get("max_seq_len") or task.default_max_seq_len
    run = Path(path) / "run.json"
    return json.loads(run.read_text())["train"]["max_seq_len"] if run.is_file() else task.default_max_seq_len


def predict(model: str, task: str, out_file: str | Path, split: str = "test", data_dir: str | Path | None = None,
            max_seq_len: int | None = None, batch_size: int = 128, trust_remote_code: bool = False) -> list[Path]:
    """Write submission TSVs (index, prediction; RACE predicts A-D). MNLI writes one file per part, -m / -mm."""
    task_ = get_task(task)
    out_file = Path(out_file)
    targets = [out_file] if len(split_files(task_, split)) == 1 else [
        out_file.with_name(f"{out_file.stem}-{suffix}{out_file.suffix}") for suffix in ("m", "mm")]
    for target in targets:  # refuse before any work, not at the end
        if target.is_dir():
            raise UsageError(f"--out {target}: is a directory")
    path = resolve_model(model)
    net, tokenizer = _load_scorer(path, task_, trust_remote_code)
    parts = _encode(task_, split, tokenizer, max_seq_len or _run_max_len(path, task_), data_dir)
    written = []
    for part, target in zip(parts, targets, strict=True):
        preds = predictions_from_logits(task_, predict_logits(net, part, tokenizer, batch_size))
        rows = ["index\tprediction"]
        for ex, p in zip(part.split.examples, preds, strict=True):
            rows.append(f"{ex.index}\t{p:.3f}" if task_.is_regression else f"{ex.index}\t{task_.labels[int(p)]}")
        write_text(target, "\n".join(rows) + "\n")
        written.append(target)
    return written


def export(run: str | Path, out: str | Path, format: str = "onnx", quantize: str = "none",
           opset: int | None = None, optimize: bool = False, task: str | None = None,
           data_dir: str | Path | None = None, max_seq_len: int | None = None, evaluate_dev: bool = False,
           overwrite: bool = False) -> dict:
    """pkd.deploy.export (ONNX or PyTorch, fp32 or int8, parity-checked); with evaluate_dev, the export directory
    is also scored on the full dev split by `evaluate` - the code that scores runs - before it is renamed into
    place, and export.json records the metrics as "dev"."""
    def score(directory: Path, task_name: str) -> dict:
        return evaluate(str(directory), task_name, "dev", data_dir=data_dir, max_seq_len=max_seq_len)

    return deploy.export(run, out, format=format, quantize=quantize, opset=opset, optimize=optimize, task=task,
                         data_dir=data_dir, max_seq_len=max_seq_len, overwrite=overwrite,
                         score=score if evaluate_dev else None)


def compare(teacher: str, task: str, student_layers: int, out: str | Path, seeds: int = 3,
            methods: tuple[str, ...] = ("ft", "kd", "pkd-skip", "pkd-last"), alpha: float = 0.7,
            temperature: float = 10.0, beta: float = 0.65, student_init: str = "pretrained",
            data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
            teacher_score: float | None = None, overwrite: bool = False, resume: bool = False, quiet: bool = False,
            **train_options) -> dict:
    """FT, KD, PKD-Skip and PKD-Last on the same student initialisation and data order per seed.

    Each finished (method, seed) run is kept and skipped when the comparison is run again with --resume.
    """
    cfg = _train_config(get_task(task), train_options)
    loss_for("pkd-skip", alpha, temperature, beta)  # validates the weights before any work
    check_out_dir(out, overwrite, resume)
    # One load of the teacher and one student builder serve every method; only the layer map differs.
    with_map = next((m for m in methods if m not in ("ft", "kd")), methods[0])  # checks hidden sizes if PT is used
    task_, teacher_path, teacher_model, tokenizer, _, _, build_student = prepare_distillation(
        teacher, task, student_layers, with_map, student_init=student_init)
    depth = teacher_model.config.num_hidden_layers
    maps = {m: layer_map_for(m, depth, student_layers) for m in methods}
    train_data = _encode(task_, "train", tokenizer, cfg.max_seq_len, data_dir, cfg.max_train_examples)[0]
    union = sorted({k for lm in maps.values() for k in lm})
    cache = ensure_cache(teacher_model, tokenizer, train_data, cfg.max_seq_len, union, cache_dir)
    dev = _encode(task_, "dev", tokenizer, cfg.max_seq_len, data_dir, cfg.max_eval_examples)
    if teacher_score is None:
        teacher_score = evaluate_parts(teacher_model, dev, task_, tokenizer, cfg.eval_batch_size)["score"]
    del teacher_model
    results: dict[str, list[float]] = {m: [] for m in methods}
    out = prepare_out_dir_once(out, overwrite, resume)
    for seed_i in range(seeds):
        seed = cfg.seed + seed_i
        for method in methods:
            run_dir = out / f"{method}-seed{seed}"
            done = run_dir / "result.json"
            if done.is_file():
                results[method].append(json.loads(done.read_text())["score"])
                continue
            run_cfg = TrainConfig(**{**asdict(cfg), "seed": seed})
            lmap = maps[method]
            student, proj = build_student(seed)
            info = {"command": "compare", "method": method, "teacher": teacher_path, "student_init": student_init,
                    "student_source": student.config.pkd_init["source"], "student_layers": student_layers,
                    "base_model": student.config.pkd_init["source"], "cache": str(cache.path),
                    "teacher_score": teacher_score, "versions": library_versions()}
            prepare_out_dir_once(run_dir, resume=True)  # an interrupted run continues from its checkpoint
            best = train(student, tokenizer, task_, train_data, dev, run_cfg, run_dir,
                         loss_for(method, alpha, temperature, beta), None if method == "ft" else cache, lmap,
                         proj, resume=True, run_info=info, quiet=quiet)
            if is_main():
                write_json(done, best)
            results[method].append(best["score"])
    table = summarize(results, teacher_score)
    if is_main():
        write_json(out / "compare.json", {"task": task_.name, "student_layers": student_layers,
                                          "teacher": teacher_path, "teacher_score": teacher_score,
                                          "methods": table, "train": asdict(cfg), "student_init": student_init,
                                          "loss": {"alpha": alpha, "temperature": temperature, "beta": beta}})
        write_text(out / "compare.md", format_table(task_.name, student_layers, teacher_score, table))
    barrier()  # every rank returns once the tables exist
    return table


def summarize(results: dict[str, list[float]], teacher_score: float) -> dict[str, dict]:
    table = {}
    for method, scores in results.items():
        mean = float(np.mean(scores))
        table[method] = {"scores": scores, "mean": mean,
                         "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                         "retention": 100.0 * mean / teacher_score}
    return table


def format_table(task: str, layers: int, teacher_score: float, table: dict[str, dict]) -> str:
    lines = [f"{task}, {layers}-layer students (teacher {teacher_score:.2f})", "",
             "| method | dev score (mean ± std) | retention | runs |", "|---|---|---|---|"]
    for method, row in table.items():
        lines.append(f"| {method} | {row['mean']:.2f} ± {row['std']:.2f} | {row['retention']:.1f}% | "
                     f"{len(row['scores'])} |")
    return "\n".join(lines) + "\n"
