"""The Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from pkd import deploy, inference
from pkd.augment import with_extra_rows
from pkd.cache import LiveTeacher, TeacherCache, default_cache_root, ensure_cache
from pkd.config import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    ExportConfig,
    LossConfig,
    RunConfig,
    TrainConfig,
    from_options,
)
from pkd.data import load_split, recorded_data_dir, resolve_task, split_files
from pkd.dist import check_device, is_main, prepare_out_dir_once, say
from pkd.encoding import EncodedSplit, encode_splits
from pkd.errors import UsageError
from pkd.io import write_text
from pkd.losses import Projection, layer_map_for, loss_for, pt_layers
from pkd.metrics import predictions_from_logits
from pkd.models import (
    default_teacher_path,
    load_classifier,
    load_config,
    load_tokenizer,
    resolve_model,
    tokenizer_fingerprint,
    vocabulary_fingerprint,
)
from pkd.patient import PROBES, choose_pooling, flat_warning, probe_spreads
from pkd.rundir import check_out_dir, library_versions, read_record, releases_out_dirs, write_result
from pkd.student import choose_init_layers, make_student
from pkd.tasks import RECIPE_MEASURED_ON, Recipe, Split, Task
from pkd.train import (
    TrainingJob,
    evaluate_parts,
    predict_logits,
    seed_everything,
    train,
)


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
    base = student_base(resolve_model(distill_cfg.teacher), distill_cfg)
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


def student_base(teacher_path: str, distill_cfg: DistillConfig) -> str | None:
    """The pre-trained checkpoint a teacher was fine-tuned from: --student-base, else its run.json's base_model."""
    return distill_cfg.student_base or read_record(teacher_path).get("base_model")


def _filled(given: object, filled: object, names: tuple[str, ...]) -> list[str]:
    """"name value" for each of `names` that `given` left None and `filled` has."""
    return [f"{n} {getattr(filled, n)}" for n in names if getattr(given, n) is None]


def finished(out: Path, result: dict) -> dict:
    """Mark a run finished (its result.json, pkd.rundir.write_result) and return its result."""
    if is_main():
        write_result(out, result)
    return result


@releases_out_dirs
def run_finetune(run: RunConfig, train_cfg: TrainConfig, model: str | None = None) -> dict:
    """Fine-tune an encoder (default: the MiniLM-L6 teacher) on a task; returns the best dev metrics."""
    task = resolve_task(run.task, run.data)
    cfg = train_config(task, train_cfg, student=False)
    filled = _filled(train_cfg, cfg, ("lr", "epochs", "max_seq_len", "group_by_length"))
    check_out_dir(run.out, run.overwrite, run.resume, [*run.inputs(), ("--model", model)])
    source = resolve_model(model)
    tokenizer = load_tokenizer(source, run.trust_remote_code)
    train_data = encode_splits(task, "train", tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_train_examples)[0]
    dev = encode_splits(task, "dev", tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_eval_examples)
    seed_everything(cfg.seed)  # the new head's initialisation depends on the seed
    net = load_classifier(source, task, run.trust_remote_code)
    out = prepare_out_dir_once(run.out, run.overwrite, run.resume)
    info = {"command": "finetune", "model": source, "base_model": source, "data": train_data.split.source,
            "versions": library_versions()}
    say(f"pkd: {task.name} teacher: {', '.join(filled)} from the task's recipe (docs/recipes.md)" if filled else "")
    return finished(out, train(TrainingJob(net, tokenizer, task, train_data, dev, cfg, out, resume=run.resume,
                                           run_info=info, quiet=run.quiet)))


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
    base = student_base(teacher_path, distill_cfg)
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
    tokenizer: PreTrainedTokenizerBase  # the teacher's: its cache and its dev score read the examples through it
    student_source: str  # the checkpoint the students' layers are copied from
    layer_map: list[int]
    config: DistillConfig
    trust_remote_code: bool = False
    init_note: str = ""  # which layers the probe chose and why, said once the command's checks have passed
    # The student's: the teacher's, unless --student-base has a vocabulary of its own (another family)
    student_tokenizer: PreTrainedTokenizerBase | None = None

    def __post_init__(self) -> None:
        if self.student_tokenizer is None:
            self.student_tokenizer = self.tokenizer

    @property
    def own_vocabulary(self) -> bool:
        """Whether the student reads text through another tokenizer than the teacher's."""
        return self.student_tokenizer is not self.tokenizer

    def for_student(self, parts: list[EncodedSplit], max_seq_len: int) -> list[EncodedSplit]:
        """The same examples, in the same order (each keeps its `idx` into the teacher's cache), as the student
        reads them: `parts` themselves when it shares the teacher's vocabulary."""
        if not self.own_vocabulary:
            return parts
        return [EncodedSplit(part.split, self.student_tokenizer, max_seq_len) for part in parts]

    def tokenizers(self) -> dict:
        """run.json's record of both tokenizers, which --resume compares."""
        return {"teacher": tokenizer_fingerprint(self.tokenizer),
                "student": tokenizer_fingerprint(self.student_tokenizer)}

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
    source_tokenizer = load_tokenizer(source, trust_remote_code)
    # Another vocabulary (a student of another family): the student reads each example through its own tokenizer,
    # and learns from the teacher's logits and pooled PT targets of the same example (by its index).
    own = vocabulary_fingerprint(source_tokenizer) != vocabulary_fingerprint(tokenizer)
    check_widths(load_config(source, trust_remote_code).hidden_size, teacher.config.hidden_size, layer_map,
                 distill_cfg.pt_projection)
    note = ""
    if distill_cfg.init_layers is None:  # chosen once, said, and recorded in run.json for --resume to check
        layers, reason = choose_init_layers(source, distill_cfg.student_layers, task, trust_remote_code)
        note = f"pkd: student layers from {source}: {','.join(map(str, layers))}, {reason}"
        distill_cfg = replace(distill_cfg, init_layers=layers)
    return Distillation(task, teacher_path, teacher, teacher.config.hidden_size, tokenizer, source, layer_map,
                        distill_cfg, trust_remote_code, note, source_tokenizer if own else None)


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


def training_rows(prepared: Distillation, run: RunConfig, cfg: TrainConfig, layers: int) -> tuple[Split, Split, dict]:
    """The training split; the same with the rows only the teacher labels appended (--unlabelled-file, --augment:
    pkd.augment; the split itself without them); and run.json's record of them. layers: how many the teacher cache
    stores, for the line that says what the extra rows cost."""
    split = load_split(prepared.task, "train", run.data_dir, cfg.max_train_examples)[0]
    extended, extra = with_extra_rows(split, prepared.config.augmentation, prepared.teacher, prepared.tokenizer,
                                      run.data_dir, run.data.text_columns, layers, prepared.trust_remote_code,
                                      progress=not run.quiet)
    return split, extended, extra


def check_student_out(run: RunConfig, distill_cfg: DistillConfig) -> None:
    """pkd.rundir.check_out_dir for a student's run: its --out clear of its data, teacher and student base, and of
    the teacher cache (which it may lie inside)."""
    cache = distill_cfg.cache_dir or str(default_cache_root())
    check_out_dir(run.out, run.overwrite, run.resume, [*run.inputs(), *distill_cfg.inputs()],
                  [("the teacher cache", cache)])


@releases_out_dirs
def run_distill(run: RunConfig, distill_cfg: DistillConfig, train_cfg: TrainConfig) -> dict:
    """Distill a student from a fine-tuned teacher; returns the best dev metrics."""
    distill_cfg, cfg, note = student_settings(resolve_task(run.task, run.data, distill_cfg.teacher), distill_cfg,
                                              train_cfg)
    loss_cfg = loss_for(distill_cfg.method, distill_cfg.loss)
    check_student_out(run, distill_cfg)
    prepared = prepare_distillation(run.task, distill_cfg, run.trust_remote_code, run.data)
    task, tokenizer, layer_map = prepared.task, prepared.tokenizer, prepared.layer_map
    split, extra = training_rows(prepared, run, cfg, len(pt_layers(layer_map, loss_cfg)))[1:]
    teacher_data = EncodedSplit(split, tokenizer, cfg.max_seq_len)
    train_data = prepared.for_student([teacher_data], cfg.max_seq_len)[0]
    # distill scores only the student on dev: read it once, through the student's tokenizer
    dev = encode_splits(task, "dev", prepared.student_tokenizer, cfg.max_seq_len, run.data_dir, cfg.max_eval_examples)
    say(note)
    say(prepared.init_note)
    loss_cfg, probe = resolve_pooling(prepared.teacher, tokenizer, teacher_data, layer_map, loss_cfg)
    teacher_outputs = None
    if distill_cfg.method != "ft":
        own = prepared.own_vocabulary
        teacher_outputs = (LiveTeacher(prepared.teacher, loss_cfg.pt_pooling, teacher_data if own else None,
                                       tokenizer) if distill_cfg.live_teacher else
                           ensure_cache(prepared.teacher, tokenizer, teacher_data, cfg.max_seq_len,
                                        pt_layers(layer_map, loss_cfg), distill_cfg.cache_dir,
                                        pooling=loss_cfg.pt_pooling))
    student, projection = prepared.build_student(cfg.seed)
    info = {"command": "distill", "method": distill_cfg.method, "teacher": prepared.teacher_path,
            "student_init": distill_cfg.student_init, "student_source": prepared.student_source,
            "student_layers": distill_cfg.student_layers, "init_layers": student.config.pkd_init["layers"],
            "base_model": prepared.student_source, "tokenizers": prepared.tokenizers(),
            "data": train_data.split.source, "augment": extra,
            "cache": str(getattr(teacher_outputs, "path", "")), "versions": library_versions(),
            "pt_signal": patient_signal(None if distill_cfg.live_teacher else teacher_outputs, layer_map, loss_cfg,
                                        probe)}
    out = prepare_out_dir_once(run.out, run.overwrite, run.resume)
    return finished(out, train(TrainingJob(student, prepared.student_tokenizer, task, train_data, dev, cfg, out,
                                           loss_cfg, teacher_outputs, layer_map, projection, info, run.resume,
                                           run.quiet)))


def distill(teacher: str, task: str, student_layers: int, out: str | Path, **options) -> dict:
    """run_distill from keywords: each option is a field of RunConfig, DistillConfig, LossConfig or TrainConfig."""
    return run_distill(*from_options({"task": task, "out": out, "teacher": teacher, "student_layers": student_layers,
                                      **options}, RunConfig, DistillConfig, TrainConfig))


def build_cache(teacher: str, task: str | None, layers: list[int] | None = None, data_dir: str | Path | None = None,
                cache_dir: str | Path | None = None, max_seq_len: int | None = None,
                max_train_examples: int | None = None, rebuild: bool = False,
                trust_remote_code: bool = False, data: DataConfig | None = None,
                pt_pooling: str = "auto", augment: AugmentConfig | None = None) -> TeacherCache:
    """Run the teacher once over the training split and store what distillation needs (layers: default all;
    pt_pooling as --pt-pooling, auto resolved on the stored layers), with the rows `augment` adds (--unlabelled-file,
    --augment: pkd.augment). task None: the task `data` defines, else the teacher's run.json's."""
    resolved_task = resolve_task(task, data, teacher)
    path = resolve_model(teacher)
    model = load_classifier(path, resolved_task, trust_remote_code, require_head=True)
    tokenizer = load_tokenizer(path, trust_remote_code)
    depth = model.config.num_hidden_layers
    layers = list(range(1, depth + 1)) if layers is None else layers
    bad = [k for k in layers if not 1 <= k <= depth]
    if bad:
        raise UsageError(f"--layers: layer {bad[0]} is out of range 1..{depth}")
    max_seq_len = max_seq_len or resolved_task.default_max_seq_len
    split = load_split(resolved_task, "train", data_dir, max_train_examples)[0]
    split = with_extra_rows(split, augment or AugmentConfig(), model, tokenizer, data_dir,
                            (data or DataConfig()).text_columns, len(layers), trust_remote_code)[0]
    data = EncodedSplit(split, tokenizer, max_seq_len)
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
    resolved_task = resolve_task(task, data, model)
    if max_examples is not None and max_examples < 1:
        raise UsageError(f"--max-examples {max_examples}: must be at least 1")
    path = resolve_model(model)
    net, tokenizer = _load_scorer(path, resolved_task, trust_remote_code)
    max_seq_len = max_seq_len or inference.trained_max_seq_len(path, resolved_task)
    parts = encode_splits(resolved_task, split, tokenizer, max_seq_len, data_dir, max_examples)
    return evaluate_parts(net, parts, resolved_task, tokenizer, batch_size)


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
    resolved_task = resolve_task(task, data, model)
    out_file = Path(out_file)
    targets = [out_file] if len(split_files(resolved_task, split)) == 1 else [
        out_file.with_name(f"{out_file.stem}-{suffix}{out_file.suffix}") for suffix in ("m", "mm")]
    for target in targets:  # refuse before any work, not at the end
        if target.is_dir():
            raise UsageError(f"--out {target}: is a directory")
        for option, path in (data.files() if data else []):
            if path and Path(path).exists() and target.resolve() == Path(path).resolve():
                raise UsageError(f"--out {target}: is {option}; predictions would replace the data they are made of")
    path = resolve_model(model)
    net, tokenizer = _load_scorer(path, resolved_task, trust_remote_code)
    max_seq_len = max_seq_len or inference.trained_max_seq_len(path, resolved_task)
    parts = encode_splits(resolved_task, split, tokenizer, max_seq_len, data_dir)
    written = []
    for part, target in zip(parts, targets, strict=True):
        logits = predict_logits(net, part, tokenizer, batch_size)
        if resolved_task.files is not None:
            write_text(target, prediction_rows(resolved_task, part.split.examples, logits, probabilities))
            written.append(target)
            continue
        preds = predictions_from_logits(resolved_task, logits)
        rows = ["index\tprediction"]
        for ex, p in zip(part.split.examples, preds, strict=True):
            shown = f"{p:.3f}" if resolved_task.is_regression else resolved_task.labels[int(p)]
            rows.append(f"{ex.index}\t{shown}")
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


def run_export(source: str | Path, cfg: ExportConfig) -> dict:
    """pkd.deploy.export (ONNX or PyTorch; fp32, int8, bf16 or auto; parity-checked); with cfg.evaluate, the export
    directory is also scored on the full dev split by `evaluate` - the code that scores runs - before it is renamed
    into place, and export.json records the metrics as "dev". --precision auto scores each candidate the same way,
    on the first deploy.AUTO_DEV_EXAMPLES dev examples. Without --data-dir or $PKD_DATA, a registry task's data
    is read from where the run read it (pkd.data.recorded_data_dir)."""
    cfg = replace(cfg, data_dir=cfg.data_dir or recorded_data_dir(source))

    def score(directory: Path, task_name: str, max_examples: int | None = None) -> dict:
        # the task: the one export.json records
        return evaluate(str(directory), None, "dev", data_dir=cfg.data_dir, max_seq_len=cfg.max_seq_len,
                        max_examples=max_examples)

    return deploy.export(source, cfg, score=score if cfg.evaluate or cfg.precision == "auto" else None)


def export(source: str | Path, out: str | Path, **options) -> dict:
    """run_export of a run directory or checkpoint `source`, from keywords: each option is a field of ExportConfig
    (format, precision, quantize, opset, optimize, evaluate, max_drop, batch_size, task, data_dir, max_seq_len,
    overwrite)."""
    return run_export(source, *from_options({"out": str(out), **options}, ExportConfig))
