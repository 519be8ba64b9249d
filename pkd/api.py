"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import copy
import json
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pkd import deploy, inference
from pkd.cache import LiveTeacher, TeacherCache, ensure_cache
from pkd.config import (
    SELECTIONS,
    CompareConfig,
    DataConfig,
    DistillConfig,
    ExportConfig,
    LossConfig,
    RunConfig,
    TrainConfig,
    from_options,
)
from pkd.data import load_split, recorded_data_dir, resolve_task, split_files
from pkd.dist import barrier, check_device, is_main, prepare_out_dir_once
from pkd.encoding import EncodedSplit
from pkd.errors import DataError, UsageError
from pkd.io import check_out_dir, check_resume, library_versions, read_jsonl, write_json, write_text
from pkd.losses import Projection, layer_map_for, loss_for
from pkd.metrics import compute_metrics, floor_score, gain_retention, predictions_from_logits
from pkd.models import (
    default_teacher_path,
    load_classifier,
    load_config,
    load_tokenizer,
    resolve_model,
    vocabulary_fingerprint,
)
from pkd.patient import PROBES, choose_pooling, flat_warning, probe_spreads
from pkd.stats import verdicts, verdicts_markdown
from pkd.student import choose_init_layers, make_student
from pkd.tasks import RECIPE_MEASURED_ON, Recipe, Task
from pkd.train import (
    evaluate_parts,
    predict_logits,
    predictions_file,
    run_record,
    seed_everything,
    train,
)


def _encode(task: Task, split: str, tokenizer: PreTrainedTokenizerBase, max_seq_len: int,
            data_dir: str | Path | None, limit: int | None = None) -> list[EncodedSplit]:
    return [EncodedSplit(part, tokenizer, max_seq_len) for part in load_split(task, split, data_dir, limit)]


def train_config(task: Task, train_cfg: TrainConfig, student: bool, recipe: Recipe | None = None) -> TrainConfig:
    """`train_cfg` with the task's recipe (pkd.tasks.Recipe, or `recipe`) where it gives no max_seq_len, epochs or lr,
    checked before any work against this device and process count (precision, batch sizes)."""
    cfg = train_cfg.for_task(recipe or task.recipe, student)
    check_device(cfg)
    return cfg


def student_configs(task: Task, distill_cfg: DistillConfig, train_cfg: TrainConfig) -> tuple[DistillConfig,
                                                                                              TrainConfig]:
    """A student's configs with the recipe of student_settings filled in where they give nothing."""
    return student_settings(task, distill_cfg, train_cfg)[:2]


def student_settings(task: Task, distill_cfg: DistillConfig,
                     train_cfg: TrainConfig) -> tuple[DistillConfig, TrainConfig, str]:
    """A student's configs with a recipe filled in where they give nothing (its init, max_seq_len, epochs, lr), and
    one line that names each value filled in and where it comes from ("" if none was).

    The task's recipe was measured on students of RECIPE_MEASURED_ON; students of another pre-trained checkpoint
    (--student-base, else the base_model in the teacher's run.json; unknown counts as another) get the paper's
    settings (Recipe.paper) instead."""
    base = distill_cfg.student_base
    run = Path(resolve_model(distill_cfg.teacher)) / "run.json"
    if base is None and run.is_file():
        base = json.loads(run.read_text()).get("base_model")
    measured = base is not None and resolve_model(base) == default_teacher_path()
    recipe = task.recipe if measured else task.recipe.paper()
    filled_distill, cfg = distill_cfg.for_task(recipe), train_config(task, train_cfg, student=True, recipe=recipe)
    filled = (_filled(train_cfg, cfg, ("lr", "epochs", "max_seq_len", "group_by_length"))
              + _filled(distill_cfg, filled_distill, ("student_init",)))
    where = (f"the task's recipe, measured on {RECIPE_MEASURED_ON} with 3-layer students (docs/recipes.md)"
             if measured else f"the paper's settings: no recipe was measured on students of "
             f"{base or 'a teacher with no recorded base_model'} (the recipes were, on {RECIPE_MEASURED_ON} with "
             "3-layer students; docs/recipes.md)")
    note = f"pkd: {task.name} students: {', '.join(filled)} from {where}" if filled else ""
    return filled_distill, cfg, note


def _filled(given: object, filled: object, names: tuple[str, ...]) -> list[str]:
    """"name value" for each of `names` that `given` left None and `filled` has."""
    return [f"{n} {getattr(filled, n)}" for n in names if getattr(given, n) is None]


def run_finetune(run: RunConfig, train_cfg: TrainConfig, model: str | None = None) -> dict:
    """Fine-tune an encoder (default: the MiniLM-L6 teacher) on a task; returns the best dev metrics."""
    task = resolve_task(run.task, run.data)
    cfg = train_config(task, train_cfg, student=False)
    filled = _filled(train_cfg, cfg, ("lr", "epochs", "max_seq_len", "group_by_length"))
    check_out_dir(run.out, run.overwrite, run.resume)
    source = resolve_model(model)
    tokenizer = load_tokenizer(source, run.trust_remote_code)
    train_data = _encode(task, "train", tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_train_examples)[0]
    dev = _encode(task, "dev", tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_eval_examples)
    seed_everything(cfg.seed)  # the new head's initialisation depends on the seed
    net = load_classifier(source, task, run.trust_remote_code)
    out = prepare_out_dir_once(run.out, run.overwrite, run.resume)
    info = {"command": "finetune", "model": source, "base_model": source, "data": train_data.split.source,
            "versions": library_versions()}
    say(f"pkd: {task.name} teacher: {', '.join(filled)} from the task's recipe (docs/recipes.md)" if filled else "")
    return train(net, tokenizer, task, train_data, dev, cfg, out, resume=run.resume, run_info=info,
                       quiet=run.quiet)


def finetune(task: str | None, out: str | Path, model: str | None = None, **options) -> dict:
    """run_finetune from keywords: each option is a field of RunConfig, DataConfig or TrainConfig (pkd.config);
    task None with train_file=... (or dataset=...) for a task defined by its data."""
    return run_finetune(*from_options({"task": task, "out": out, **options}, RunConfig, TrainConfig), model=model)


def student_source(teacher_path: str, distill_cfg: DistillConfig) -> str:
    """Where the student's layers come from: the fine-tuned teacher itself (--student-init teacher), or the
    pre-trained checkpoint it was fine-tuned from: --student-base, else the base_model of the teacher's run.json
    (written by `pkd finetune`). A teacher without one (a Hub checkpoint, one fine-tuned elsewhere) needs
    --student-base: falling back to the teacher itself would copy its fine-tuned layers under the label
    "pretrained"."""
    if distill_cfg.student_init == "teacher":
        return teacher_path
    base = distill_cfg.student_base
    run = Path(teacher_path) / "run.json"
    if base is None and run.is_file():
        base = json.loads(run.read_text()).get("base_model")
    if base is None:
        raise UsageError(f"--teacher {distill_cfg.teacher}: no run.json names the pre-trained checkpoint it was "
                         "fine-tuned from, which --student-init pretrained copies the student's layers from; pass "
                         "--student-base NAME_OR_PATH, or --student-init teacher")
    return resolve_model(base)


def check_widths(student_hidden: int, teacher_hidden: int, layer_map: list[int], projection: bool) -> None:
    """PT compares hidden states, so their widths must match, unless a learned projection maps between them."""
    if layer_map and student_hidden != teacher_hidden and not projection:
        raise UsageError(f"student hidden size {student_hidden} differs from the teacher's {teacher_hidden}: pass "
                         "--pt-projection to learn a linear map for the PT loss")


@dataclass
class Distillation:
    """A loaded and checked teacher, with what every student distilled from it shares."""

    task: Task
    teacher_path: str
    teacher: PreTrainedModel | None  # None once its outputs are cached and it is no longer needed
    teacher_hidden: int
    tokenizer: PreTrainedTokenizerBase
    student_source: str  # the checkpoint the students' layers are copied from
    layer_map: list[int]
    config: DistillConfig
    trust_remote_code: bool = False
    init_note: str = ""  # which layers the probe chose and why, said once the command's checks have passed

    def build_student(self, seed: int) -> tuple[PreTrainedModel, Projection | None]:
        """The student for `seed` (the same initialisation for every method), and its PT projection if it needs one."""
        seed_everything(seed)
        student = make_student(self.student_source, self.config.student_layers, self.task, self.config.init_layers,
                               self.trust_remote_code)
        student_hidden = student.config.hidden_size
        if not self.layer_map or student_hidden == self.teacher_hidden:
            return student, None
        check_widths(student_hidden, self.teacher_hidden, self.layer_map, self.config.pt_projection)
        return student, Projection(student_hidden, self.teacher_hidden, len(self.layer_map))


def prepare_distillation(task_name: str | None, distill_cfg: DistillConfig, trust_remote_code: bool = False,
                         data: DataConfig | None = None) -> Distillation:
    """Load and check the teacher, find the students' source and the layer map. Shared by distill and compare.
    The task: task_name, else the one `data` defines, else the teacher's run.json's (pkd.data.resolve_task)."""
    task = resolve_task(task_name, data, distill_cfg.teacher)
    teacher_path = resolve_model(distill_cfg.teacher)
    teacher = load_classifier(teacher_path, task, trust_remote_code, require_head=True)
    tokenizer = load_tokenizer(teacher_path, trust_remote_code)
    layer_map = layer_map_for(distill_cfg.method, teacher.config.num_hidden_layers, distill_cfg.student_layers,
                              distill_cfg.layer_map)
    source = student_source(teacher_path, distill_cfg)
    if vocabulary_fingerprint(load_tokenizer(source, trust_remote_code)) != vocabulary_fingerprint(tokenizer):
        raise DataError(f"{source}: its tokenizer differs from the teacher's ({teacher_path}); "
                        "teacher and student must share one vocabulary")
    check_widths(load_config(source, trust_remote_code).hidden_size, teacher.config.hidden_size, layer_map,
                 distill_cfg.pt_projection)
    note = ""
    if distill_cfg.init_layers is None:  # chosen once, said, and recorded in run.json for --resume to check
        layers, reason = choose_init_layers(source, distill_cfg.student_layers, task, trust_remote_code)
        note = f"pkd: student layers from {source}: {','.join(map(str, layers))}, {reason}"
        distill_cfg = replace(distill_cfg, init_layers=layers)
    return Distillation(task, teacher_path, teacher, teacher.config.hidden_size, tokenizer, source, layer_map,
                        distill_cfg, trust_remote_code, note)


def say(line: str) -> None:
    """One line for the person running pkd (stderr, main process only); nothing for an empty line."""
    if line and is_main():
        print(line, file=sys.stderr, flush=True)


def resolve_pooling(teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_data: EncodedSplit,
                    layers: list[int], loss: LossConfig) -> tuple[LossConfig, dict | None]:
    """`loss` with --pt-pooling resolved (auto: from how much the mapped layers' [CLS] targets vary over a probe of
    the training inputs; pkd.patient), and the probe's measurements with the line that says which and why (None
    when PT is off: no layer map, or beta 0). patient_signal prints that line, once the settings are checked."""
    if not layers or loss.beta == 0:
        return replace(loss, pt_pooling=choose_pooling(loss.pt_pooling, None)[0]), None
    probe = probe_spreads(teacher, train_data, tokenizer, sorted(set(layers)))
    pooling, reason = choose_pooling(loss.pt_pooling, probe)
    return replace(loss, pt_pooling=pooling), {"examples": min(len(train_data), PROBES), "reason": reason, **probe}


def patient_signal(cache: TeacherCache | None, layers: list[int], loss: LossConfig, probe: dict | None) -> dict | None:
    """run.json's and compare.json's record of how much each mapped layer's PT targets vary across the training
    examples (mean pairwise cosine, pkd.patient: from the whole cache, or from the probe when the teacher runs
    live), after printing the pooling's line and a warning when a layer's targets are the same for every input.
    None when PT is off."""
    if probe is None:
        return None
    layers = sorted(set(layers))
    spreads, examples = ((cache.spreads(layers), len(cache)) if cache is not None
                         else (probe[loss.pt_pooling], probe["examples"]))
    say(probe["reason"])
    say(flat_warning(spreads, loss.pt_pooling, examples))
    return {"pooling": loss.pt_pooling, "measure": "mean pairwise cosine of the normalised targets",
            "examples": examples, "layers": {str(k): round(c, 4) for k, c in spreads.items()},
            "probe": {p: {str(k): round(c, 4) for k, c in probe[p].items()} for p in ("cls", "mean")}}


def run_distill(run: RunConfig, distill_cfg: DistillConfig, train_cfg: TrainConfig) -> dict:
    """Distill a student from a fine-tuned teacher; returns the best dev metrics."""
    distill_cfg, cfg, note = student_settings(resolve_task(run.task, run.data, distill_cfg.teacher), distill_cfg,
                                              train_cfg)
    loss_cfg = loss_for(distill_cfg.method, distill_cfg.loss)
    check_out_dir(run.out, run.overwrite, run.resume)
    d = prepare_distillation(run.task, distill_cfg, run.trust_remote_code, run.data)
    train_data = _encode(d.task, "train", d.tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_train_examples)[0]
    dev = _encode(d.task, "dev", d.tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_eval_examples)
    say(note)
    say(d.init_note)
    loss_cfg, probe = resolve_pooling(d.teacher, d.tokenizer, train_data, d.layer_map, loss_cfg)
    teacher_outputs = None
    if distill_cfg.method != "ft":
        teacher_outputs = (LiveTeacher(d.teacher, loss_cfg.pt_pooling) if distill_cfg.live_teacher else
                           ensure_cache(d.teacher, d.tokenizer, train_data, cfg.max_seq_len, d.layer_map,
                                        distill_cfg.cache_dir, pooling=loss_cfg.pt_pooling))
    student, projection = d.build_student(cfg.seed)
    info = {"command": "distill", "method": distill_cfg.method, "teacher": d.teacher_path,
            "student_init": distill_cfg.student_init, "student_source": d.student_source,
            "student_layers": distill_cfg.student_layers, "init_layers": student.config.pkd_init["layers"],
            "base_model": d.student_source, "data": train_data.split.source,
            "cache": str(getattr(teacher_outputs, "path", "")), "versions": library_versions(),
            "pt_signal": patient_signal(None if distill_cfg.live_teacher else teacher_outputs, d.layer_map, loss_cfg,
                                        probe)}
    out = prepare_out_dir_once(run.out, run.overwrite, run.resume)
    return train(student, d.tokenizer, d.task, train_data, dev, cfg, out, loss_cfg, teacher_outputs,
                       d.layer_map, projection, resume=run.resume, run_info=info, quiet=run.quiet)


def distill(teacher: str, task: str, student_layers: int, out: str | Path, **options) -> dict:
    """run_distill from keywords: each option is a field of RunConfig, DistillConfig, LossConfig or TrainConfig."""
    return run_distill(*from_options({"task": task, "out": out, "teacher": teacher, "student_layers": student_layers,
                                      **options}, RunConfig, DistillConfig, TrainConfig))


def build_cache(teacher: str, task: str | None, layers: list[int] | None = None, data_dir: str | Path | None = None,
                cache_dir: str | Path | None = None, max_seq_len: int | None = None,
                max_train_examples: int | None = None, rebuild: bool = False,
                trust_remote_code: bool = False, data: DataConfig | None = None,
                pt_pooling: str = "auto") -> TeacherCache:
    """Run the teacher once over the training split and store what distillation needs (layers: default all;
    pt_pooling as --pt-pooling, auto resolved on the stored layers). task None: the task `data` defines, else the
    teacher's run.json's."""
    task_ = resolve_task(task, data, teacher)
    path = resolve_model(teacher)
    model = load_classifier(path, task_, trust_remote_code, require_head=True)
    tokenizer = load_tokenizer(path, trust_remote_code)
    depth = model.config.num_hidden_layers
    layers = list(range(1, depth + 1)) if layers is None else layers
    bad = [k for k in layers if not 1 <= k <= depth]
    if bad:
        raise UsageError(f"--layers: layer {bad[0]} is out of range 1..{depth}")
    max_seq_len = max_seq_len or task_.default_max_seq_len
    data = _encode(task_, "train", tokenizer, max_seq_len, data_dir, max_train_examples)[0]
    loss, probe = resolve_pooling(model, tokenizer, data, layers, LossConfig(beta=1.0, pt_pooling=pt_pooling))
    cache = ensure_cache(model, tokenizer, data, max_seq_len, layers, cache_dir, rebuild=rebuild,
                         pooling=loss.pt_pooling)
    patient_signal(cache, layers, loss, probe)  # the warning, if a stored layer's targets are all alike
    return cache


def evaluate(model: str, task: str | None, split: str = "dev", data_dir: str | Path | None = None,
             max_seq_len: int | None = None, batch_size: int = 128, trust_remote_code: bool = False,
             max_examples: int | None = None, data: DataConfig | None = None) -> dict:
    """Score a fine-tuned classifier (a run directory, checkpoint or export) on a labelled split. task None: the
    task `data` defines, else the one the model's run.json (export.json) records."""
    task_ = resolve_task(task, data, model)
    if max_examples is not None and max_examples < 1:
        raise UsageError(f"--max-examples {max_examples}: must be at least 1")
    path = resolve_model(model)
    net, tokenizer = _load_scorer(path, task_, trust_remote_code)
    max_seq_len = max_seq_len or inference.trained_max_seq_len(path, task_)
    parts = _encode(task_, split, tokenizer, max_seq_len, data_dir, max_examples)
    return evaluate_parts(net, parts, task_, tokenizer, batch_size)


def _load_scorer(path: str, task: Task, trust_remote_code: bool):
    """A run directory's or checkpoint's classifier, or an export directory's model (ONNX Runtime for ONNX), with
    its tokenizer: evaluate and predict score both through the same code."""
    if inference.is_export_dir(path):
        return inference.load_for_task(path, task)
    return (load_classifier(path, task, trust_remote_code, require_head=True),
            load_tokenizer(path, trust_remote_code))


def predict(model: str, task: str | None, out_file: str | Path, split: str = "test",
            data_dir: str | Path | None = None, max_seq_len: int | None = None, batch_size: int = 128,
            trust_remote_code: bool = False, data: DataConfig | None = None,
            probabilities: bool = False) -> list[Path]:
    """Write submission TSVs (index, prediction; RACE predicts A-D). MNLI writes one file per part, -m / -mm.
    A file task (task None: the model's recorded one, or `data`'s) writes id and label name (multi-label: the
    names joined by its --label-sep, else ","; regression: the value), and with `probabilities` one column per
    label (softmax, or each label's sigmoid for multi-label)."""
    task_ = resolve_task(task, data, model)
    out_file = Path(out_file)
    targets = [out_file] if len(split_files(task_, split)) == 1 else [
        out_file.with_name(f"{out_file.stem}-{suffix}{out_file.suffix}") for suffix in ("m", "mm")]
    for target in targets:  # refuse before any work, not at the end
        if target.is_dir():
            raise UsageError(f"--out {target}: is a directory")
    path = resolve_model(model)
    net, tokenizer = _load_scorer(path, task_, trust_remote_code)
    parts = _encode(task_, split, tokenizer, max_seq_len or inference.trained_max_seq_len(path, task_), data_dir)
    written = []
    for part, target in zip(parts, targets, strict=True):
        logits = predict_logits(net, part, tokenizer, batch_size)
        if task_.files is not None:
            write_text(target, prediction_rows(task_, part.split.examples, logits, probabilities))
            written.append(target)
            continue
        preds = predictions_from_logits(task_, logits)
        rows = ["index\tprediction"]
        for ex, p in zip(part.split.examples, preds, strict=True):
            rows.append(f"{ex.index}\t{p:.3f}" if task_.is_regression else f"{ex.index}\t{task_.labels[int(p)]}")
        write_text(target, "\n".join(rows) + "\n")
        written.append(target)
    return written


def label_probabilities(task: Task, logits: np.ndarray) -> np.ndarray:
    """[n, labels]: the softmax over the classes, or each label's sigmoid for multi-label."""
    if task.multi_label:
        return 1 / (1 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def prediction_rows(task: Task, examples: list, logits: np.ndarray, probabilities: bool = False) -> str:
    """A file task's predictions as TSV: id, the label name (multi-label: the names of the labels that are on,
    joined by its --label-sep, else ","; regression: the value), and with `probabilities` (not for regression)
    one p_<label> column per label."""
    preds = predictions_from_logits(task, logits)
    labels = task.labels or ()
    probs = label_probabilities(task, logits) if probabilities and labels else np.zeros((len(examples), 0))
    sep = task.files.label_sep or ","

    def shown(p: np.ndarray) -> str:
        if task.is_regression:
            return f"{p:.4f}"
        if task.multi_label:
            return sep.join(name for name, on in zip(labels, p, strict=True) if on)
        return labels[int(p)]

    rows = ["\t".join(["id", "prediction", *(f"p_{name}" for name in labels if probs.shape[1])])]
    for ex, p, q in zip(examples, preds, probs, strict=True):
        rows.append("\t".join([ex.index, shown(p), *(f"{x:.4f}" for x in q)]))
    return "\n".join(rows) + "\n"


def run_export(run: str | Path, cfg: ExportConfig) -> dict:
    """pkd.deploy.export (ONNX or PyTorch, fp32 or int8, parity-checked); with cfg.evaluate, the export directory
    is also scored on the full dev split by `evaluate` - the code that scores runs - before it is renamed into
    place, and export.json records the metrics as "dev". Without --data-dir or $PKD_DATA, a registry task's data
    is read from where the run read it (pkd.data.recorded_data_dir)."""
    cfg = replace(cfg, data_dir=cfg.data_dir or recorded_data_dir(run))

    def score(directory: Path, task_name: str) -> dict:  # the task: the one export.json records
        return evaluate(str(directory), None, "dev", data_dir=cfg.data_dir, max_seq_len=cfg.max_seq_len)

    return deploy.export(run, cfg, score=score if cfg.evaluate else None)


def export(run: str | Path, out: str | Path, **options) -> dict:
    """run_export from keywords: each option is a field of ExportConfig (format, quantize, opset, optimize,
    evaluate, task, data_dir, max_seq_len, overwrite)."""
    return run_export(run, *from_options({"out": str(out), **options}, ExportConfig))


def run_compare(run: RunConfig, distill_cfg: DistillConfig, train_cfg: TrainConfig, compare_cfg: CompareConfig) -> dict:
    """The methods (FT, KD, PKD-Skip and PKD-Last) on the same student initialisation and data order per seed.

    Each finished (method, seed) run is kept and skipped when the comparison is run again with --resume.
    """
    distill_cfg, cfg, note = student_settings(resolve_task(run.task, run.data, distill_cfg.teacher), distill_cfg,
                                              train_cfg)
    loss_for("pkd-skip", distill_cfg.loss)  # validates the weights before any work
    check_out_dir(run.out, run.overwrite, run.resume)
    # One load of the teacher and one student builder serve every method; only the layer map differs.
    methods = compare_cfg.methods
    with_map = next((m for m in methods if m not in ("ft", "kd")), methods[0])  # checks hidden sizes if PT is used
    d = prepare_distillation(run.task, replace(distill_cfg, method=with_map), run.trust_remote_code, run.data)
    depth = d.teacher.config.num_hidden_layers
    maps = {m: layer_map_for(m, depth, distill_cfg.student_layers) for m in methods}
    train_data = _encode(d.task, "train", d.tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_train_examples)[0]
    union = sorted({k for lm in maps.values() for k in lm})
    weights, probe = resolve_pooling(d.teacher, d.tokenizer, train_data, union, distill_cfg.loss)
    distill_cfg = replace(distill_cfg, loss=weights)

    def info(method: str) -> dict:
        return {"command": "compare", "method": method, "teacher": d.teacher_path,
                "student_init": distill_cfg.student_init, "student_source": d.student_source,
                "student_layers": distill_cfg.student_layers, "init_layers": d.config.init_layers,
                "base_model": d.student_source, "versions": library_versions()}

    runs = [(method, cfg.seed + i) for i in range(compare_cfg.seeds) for method in methods]
    if run.resume:  # every kept run, finished or not, must have been made with these settings; before any work
        for method, seed in runs:
            check_resume(Path(run.out) / f"{method}-seed{seed}", run_record(
                info(method), replace(cfg, seed=seed), loss_for(method, distill_cfg.loss), maps[method], d.task,
                train_data))
    say(note)
    say(d.init_note)
    cache = ensure_cache(d.teacher, d.tokenizer, train_data, cfg.max_seq_len, union, distill_cfg.cache_dir,
                         pooling=weights.pt_pooling)
    signal = patient_signal(cache, union, weights, probe)
    dev = _encode(d.task, "dev", d.tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_eval_examples)
    teacher_score = compare_cfg.teacher_score
    if teacher_score is None:
        teacher_score = evaluate_parts(d.teacher, dev, d.task, d.tokenizer, cfg.eval_batch_size)["score"]
    d.teacher = None  # free its memory: every student trains from the cache
    floor = floor_score(d.task, [e.label for e in train_data.split.examples], dev[0].split.examples)
    results: dict[str, list[float]] = {m: [] for m in methods}
    epochs: dict[str, list[int]] = {m: [] for m in methods}  # the selected epochs, whose predictions are compared
    deployed: dict[str, list[float]] = {m: [] for m in methods}
    out = prepare_out_dir_once(run.out, run.overwrite, run.resume)
    initial: dict[int, tuple] = {}  # this seed's student, built once and copied for each method (the same for all)
    labels = np.array([e.label for e in dev[0].split.examples])

    def summarise() -> dict:
        """compare.json and compare.md over the runs finished so far (all of them at the end), so that a long
        comparison shows its results as they come and an interrupted one keeps them."""
        finished = sum(len(v) for v in results.values())
        done_methods = tuple(m for m in methods if results[m])
        table = seed_statistics({m: results[m] for m in done_methods}, teacher_score, floor)
        if not is_main():
            return table
        common = min(len(results[m]) for m in done_methods)  # paired verdicts need the same seeds on both sides
        selected = {m: epochs[m][:common] for m in done_methods}
        pairs = verdicts(lambda p, y: compute_metrics(d.task, p, y)["score"], labels,
                         selected_predictions(out, done_methods, cfg.seed, selected))
        summary = {"task": d.task.name, "student_layers": distill_cfg.student_layers, "teacher": d.teacher_path,
                   "teacher_score": teacher_score, "floor_score": floor, "select": compare_cfg.select,
                   "runs_finished": finished, "runs_planned": len(runs),
                   "methods": table, "train": asdict(cfg),
                   "student_init": distill_cfg.student_init, "dev_examples": len(labels), "verdicts": pairs,
                   "loss": {"alpha": weights.alpha, "temperature": weights.temperature, "beta": weights.beta,
                            "pt_pooling": weights.pt_pooling}, "pt_signal": signal}
        markdown = "" if finished == len(runs) else (
            f"Partial: {finished} of {len(runs)} runs finished (`--resume` continues); verdicts over the first "
            f"{common} seed(s).\n\n")
        markdown += compare_markdown(d.task.name, distill_cfg.student_layers, teacher_score, floor, table,
                                     compare_cfg.select)
        markdown += ("\nPaired differences, 95% interval over training seeds and dev examples (pkd.stats):\n\n"
                     + verdicts_markdown(pairs))
        if compare_cfg.export != "none":  # the same runs, deployed: ONNX Runtime, scored on dev
            variant = "ort-int8" if compare_cfg.export == "int8" else "ort"
            deployed_table = seed_statistics({m: deployed[m] for m in done_methods}, teacher_score, floor)
            summary["deployed"] = {"variant": variant, "methods": deployed_table}
            markdown += f"\nDeployed as {variant} (export-{compare_cfg.export}/ in each run):\n\n" + \
                compare_markdown(d.task.name, distill_cfg.student_layers, teacher_score, floor, deployed_table)
        write_json(out / "compare.json", summary)
        write_text(out / "compare.md", markdown)
        return table

    for method, seed in runs:
        run_dir = out / f"{method}-seed{seed}"
        fresh = not (run_dir / "result.json").is_file()  # finished runs are kept and reused
        if fresh:
            if seed not in initial:
                initial = {seed: d.build_student(seed)}  # runs go seed by seed: the previous seed's is freed
            student, projection = copy.deepcopy(initial[seed])
            prepare_out_dir_once(run_dir, resume=True)  # an interrupted run continues from its checkpoint
            best = train(student, d.tokenizer, d.task, train_data, dev, replace(cfg, seed=seed), run_dir,
                         loss_for(method, distill_cfg.loss), None if method == "ft" else cache, maps[method],
                         projection, resume=True, run_info={**info(method), "cache": str(cache.path),
                                                            "teacher_score": teacher_score, "floor_score": floor,
                                                            "pt_signal": signal if maps[method] else None},
                         quiet=run.quiet)
            if is_main():
                write_json(run_dir / "result.json", best)
        record = selected_record(run_dir, compare_cfg.select)
        results[method].append(record["score"])
        epochs[method].append(record["epoch"])
        _export_compared(run_dir, compare_cfg.export, run.data_dir, deployed[method])
        if fresh and (method, seed) != runs[-1]:
            summarise()  # the tables so far, rewritten after every run
    table = summarise()
    barrier()  # every rank returns once the tables exist
    return table


def _export_compared(run_dir: Path, precision: str, data_dir: str | None, scores: list[float]) -> None:
    """`compare --export`: the finished run as ONNX (fp32 or int8) in run_dir/export-<precision>, scored on dev
    (kept when it exists, as the run is); its dev score joins `scores`."""
    if precision == "none" or not is_main():
        return
    target = run_dir / f"export-{precision}"
    if not inference.is_export_dir(target):
        run_export(run_dir, ExportConfig(out=str(target), quantize="int8" if precision == "int8" else "none",
                                         evaluate=True, data_dir=data_dir))
    scores.append(inference.read_export(target)["dev"]["score"])


def compare(teacher: str, task: str, student_layers: int, out: str | Path, **options) -> dict:
    """run_compare from keywords: each option is a field of RunConfig, DistillConfig, LossConfig, TrainConfig
    or CompareConfig."""
    return run_compare(*from_options({"task": task, "out": out, "teacher": teacher, "student_layers": student_layers,
                                      **options}, RunConfig, DistillConfig, TrainConfig, CompareConfig))


def selected_predictions(out: Path, methods: tuple[str, ...], first_seed: int,
                         epochs: dict[str, list[int]]) -> dict[str, list[np.ndarray]]:
    """Each method's dev predictions at its selected epoch, one array per seed; a method with a run that kept none
    (made before pkd saved them) is left out, so its pairs get no verdict."""
    found = {}
    for method in methods:
        files = [predictions_file(out / f"{method}-seed{first_seed + i}", epoch)
                 for i, epoch in enumerate(epochs[method])]
        if all(f.is_file() for f in files):
            found[method] = [np.load(f) for f in files]
    return found


def seed_statistics(results: dict[str, list[float]], teacher_score: float,
                    floor: float | None = None) -> dict[str, dict]:
    """Per method: its scores over seeds, their mean and sample std, the mean's retention of the teacher's score,
    and its retention of the teacher's gain over the majority-class floor (pkd.metrics.gain_retention)."""
    table = {}
    for method, scores in results.items():
        mean = float(np.mean(scores))
        table[method] = {"scores": scores, "mean": mean,
                         "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                         "retention": 100.0 * mean / teacher_score,
                         "gain_retention": gain_retention(mean, teacher_score, floor)}
    return table


def selected_record(run_dir: Path, select: str) -> dict:
    """A finished run's dev metrics ("epoch", "score", ...) at its best epoch (the one picked on dev, whose model
    is kept) or its last. A result.json from before the last epoch was recorded there: the last line of
    metrics.jsonl."""
    result = json.loads((run_dir / "result.json").read_text())
    if select == "best":
        return result
    return result.get("last") or read_jsonl(run_dir / "metrics.jsonl")[-1]


def compare_markdown(task: str, layers: int, teacher_score: float, floor: float | None, table: dict[str, dict],
                     select: str = "best") -> str:
    """compare.md: one row per method, as `pkd compare` prints it; the header says which epoch's score it shows,
    each seed's score stands beside the mean (with 2-3 seeds a std hides an outlier), and retention is given of
    the teacher's score and of its gain over the majority-class floor."""
    floor_text = f", majority-class floor {floor:.2f}" if floor is not None else ""
    lines = [f"{task}, {layers}-layer students (teacher {teacher_score:.2f}{floor_text})", "",
             f"| method | {SELECTIONS[select]} (mean ± std) | per seed | retention | gain over floor retained | runs |",
             "|---|---|---|---|---|---|"]
    for method, row in table.items():
        gain = row.get("gain_retention")
        per_seed = ", ".join(f"{s:.2f}" for s in row["scores"])
        lines.append(f"| {method} | {row['mean']:.2f} ± {row['std']:.2f} | {per_seed} | {row['retention']:.1f}% | "
                     f"{'-' if gain is None else f'{gain:.1f}%'} | {len(row['scores'])} |")
    return "\n".join(lines) + "\n"
