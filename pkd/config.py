"""Every option of pkd, declared once: its name, type, default and help, as a dataclass field.

As in transformers' run_glue.py, the `pkd` command builds its parser from these fields (pkd.cli), the API
takes these objects (pkd.api), and a sweep hands them to its trials; a new option is one field here. Each
config checks its own values, so a bad one is a one-line usage error before any work, from the CLI or the API.
Nothing here imports torch: `pkd --help` reads this module.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from pkd.errors import UsageError
from pkd.tasks import LABEL_KINDS

if TYPE_CHECKING:
    from pkd.tasks import Recipe

_Config = TypeVar("_Config")

METHODS = ("ft", "kd", "pkd-skip", "pkd-last", "pkd")  # "pkd" takes an explicit --layer-map
# --select (compare, report): which epoch's dev score a table shows, and the column header that says so.
SELECTIONS = {"best": "best-epoch dev score", "last": "last-epoch dev score"}


def parse_layer_map(text: str) -> list[int]:
    """'2,4' -> [2, 4]: teacher (or source) layer numbers, 1-based."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--layer-map {text}: expected comma-separated teacher layer numbers, e.g. 2,4") from None


def parse_methods(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


@dataclass
class TrainConfig:
    """The training loop's settings: the same for fine-tuning and every distillation method."""

    epochs: int | None = field(default=None, metadata={
        "help": "passes over the training data (default: the task's recipe, docs/recipes.md: 3 for teachers, "
                "4 for students)"})
    batch_size: int = field(default=32, metadata={
        "help": "global batch size (split across processes, so results do not depend on their number)"})
    eval_batch_size: int = field(default=128, metadata={"help": "batch size for dev evaluation"})
    lr: float | None = field(default=None, metadata={
        "help": "peak learning rate of AdamW (default: the task's recipe, docs/recipes.md: 5e-5 for teachers, "
                "2e-4 for GLUE students of all-MiniLM-L6-v2, the paper's 5e-5 for students of other checkpoints)"})
    weight_decay: float = field(default=0.01, metadata={
        "help": "AdamW weight decay (not on tensors of fewer than 2 dimensions: biases, norms)"})
    adam_eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps with a linear warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm (0: no clipping)"})
    seed: int = field(default=42, metadata={"help": "seed of the initialisation, data order and dropout"})
    max_seq_len: int | None = field(default=None, metadata={
        "help": "tokens per input, longer ones truncated (default: the task's recipe, docs/recipes.md: 128 for GLUE, "
                "512 for RACE)"})
    max_train_examples: int | None = field(default=None, metadata={
        "help": "use only the first N training examples (RACE: N questions from a fixed sample of passages)"})
    max_eval_examples: int | None = field(default=None, metadata={
        "help": "score only the first N dev examples (per MNLI part; RACE as for training)"})
    save_every: int = field(default=0, metadata={"help": "checkpoint every N optimizer steps (and each epoch)"})
    keep_checkpoints: int = field(default=0, metadata={
        "help": "checkpoints kept after the run finishes (default 0: the model, run.json and metrics.jsonl stay); "
                "while it runs, the newest 2 (or N) are kept for --resume"})
    precision: str = field(default="fp32", metadata={"help": "training precision", "choices": ("fp32", "bf16", "fp16")})
    grad_accum: int = field(default=1, metadata={"help": "batches per optimizer step"})
    group_by_length: bool | None = field(default=None, metadata={
        "help": "batch examples of similar length: less padding, about 2x faster (default: the task's recipe, "
                "docs/performance.md: on for single texts, where it measured a tie; off for pairs, where it cost "
                "accuracy on STS-B); --no-group-by-length keeps the plain shuffled order"})

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "max_seq_len", "grad_accum",
                     "max_train_examples", "max_eval_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} {value}: must be at least 1")
        for name in ("keep_checkpoints", "save_every"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 0")
        if self.lr is not None and not self.lr > 0:
            raise UsageError(f"--lr {self.lr}: must be > 0")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise UsageError(f"--precision {self.precision}: choose fp32, bf16 or fp16")

    def for_task(self, recipe: Recipe, student: bool) -> TrainConfig:
        """This config with what was not given (max_seq_len, epochs, lr, group_by_length) filled in from the task's
        recipe, for a student or for a fine-tuned teacher."""
        return replace(
            self,
            max_seq_len=self.max_seq_len or recipe.max_seq_len,
            epochs=self.epochs or (recipe.student_epochs if student else recipe.teacher_epochs),
            lr=self.lr or (recipe.student_lr if student else recipe.teacher_lr),
            group_by_length=recipe.group_by_length if self.group_by_length is None else self.group_by_length)


@dataclass(frozen=True)
class LossConfig:
    """L = (1 - alpha) * CE + alpha * KD + beta * PT (pkd.losses). The defaults are plain fine-tuning (CE alone);
    DistillConfig holds the distillation defaults."""

    alpha: float = field(default=0.0, metadata={"help": "weight of the KD term"})
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature T of the KD term"})
    beta: float = field(default=0.0, metadata={
        "help": "weight of PT, the original code's beta divided by the hidden size: 0.65 is the original 500 at "
                "hidden size 768 (BERT-base), and 250 at 384 (the default MiniLM teacher); see docs/method.md"})
    normalize: bool = field(default=True, metadata={
        "help": "match L2-normalised states in PT, the paper's choice (--no-normalize: raw states)"})
    pt_pooling: str = field(default="auto", metadata={
        "help": "the vector of each mapped layer that PT matches: cls (the paper's), mean (the attention-masked mean "
                "of the tokens), or auto: cls when every mapped teacher layer's [CLS] varies across training inputs, "
                "else mean (pkd.patient; the choice is printed and recorded in run.json)",
        "choices": ("auto", "cls", "mean")})

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError(f"--alpha {self.alpha}: must be in [0, 1]")
        if not self.temperature > 0:
            raise UsageError(f"--temperature {self.temperature}: must be > 0")
        if not self.beta >= 0:
            raise UsageError(f"--beta {self.beta}: must be >= 0")
        if self.pt_pooling not in ("auto", "cls", "mean"):
            raise UsageError(f"--pt-pooling {self.pt_pooling}: choose auto, cls or mean")


@dataclass(frozen=True)
class AugmentConfig:
    """Rows the teacher labels besides the training split (pkd.augment, docs/augment.md): the text of an unlabelled
    file, and N augmented copies of each training text. The student learns KD and PT on them, never CE."""

    unlabelled_file: str | None = field(default=None, metadata={
        "help": "text without labels (.csv, .tsv, .jsonl, .json or .parquet), in the text columns of the task (or "
                "--text-columns): the teacher labels each row once, in its cache; rows of the dev or test split are "
                "refused", "metavar": "PATH"})
    augment: int = field(default=0, metadata={
        "help": "N augmented copies of each training text, labelled by the teacher: each word replaced with "
                "probability --augment-p by one of its --augment-k nearest neighbours in the teacher's input "
                "embeddings (or --augment-model's predictions); the dev split is never augmented",
        "metavar": "N"})
    augment_p: float = field(default=0.4, metadata={"help": "probability that a word of a copy is replaced",
                                                     "metavar": "P"})
    augment_k: int = field(default=15, metadata={
        "help": "candidates per word: its nearest neighbours, or the masked LM's top predictions", "metavar": "K"})
    augment_seed: int = field(default=0, metadata={
        "help": "seed of the replacements; fixed rather than --seed, so that every seed and method of a "
                "comparison shares one augmented set and one teacher cache", "metavar": "SEED"})
    augment_model: str | None = field(default=None, metadata={
        "help": "a fill-mask checkpoint whose top-k predictions replace the words (TinyBERT's generator; slower): "
                "default the teacher's embedding neighbours, no extra model", "metavar": "NAME_OR_PATH"})

    def __post_init__(self) -> None:
        if self.augment < 0:
            raise UsageError(f"--augment {self.augment}: must be at least 0")
        if not 0 < self.augment_p <= 1:
            raise UsageError(f"--augment-p {self.augment_p}: must be in (0, 1]")
        if self.augment_k < 1:
            raise UsageError(f"--augment-k {self.augment_k}: must be at least 1")
        if self.augment_model is not None and self.augment == 0:
            raise UsageError(f"--augment-model {self.augment_model}: needs --augment N (copies per training text)")

    @property
    def active(self) -> bool:
        """Whether any row besides the training split's is asked for."""
        return self.augment > 0 or self.unlabelled_file is not None

    def applied(self) -> AugmentConfig:
        """These settings, or the defaults when they add no row (then p, k, seed and model change nothing, and a
        record of them must not make --resume refuse)."""
        return self if self.active else AugmentConfig()

    def inputs(self) -> list[tuple[str, str | None]]:
        """The paths it reads, by option."""
        return [("--unlabelled-file", self.unlabelled_file), ("--augment-model", self.augment_model)]


@dataclass
class DistillConfig:
    """What a student is, where it starts and what it learns from (checked against the teacher when loaded)."""

    teacher: str = field(metadata={"help": "fine-tuned teacher: run directory or checkpoint"})
    student_layers: int = field(metadata={"help": "layers of the student"})
    method: str = field(default="pkd-skip", metadata={
        "help": "ft, kd, pkd-skip, pkd-last, or pkd with an explicit --layer-map", "choices": METHODS})
    layer_map: list[int] | None = field(default=None, metadata={
        "help": "explicit teacher layers, e.g. 2,4", "parse": parse_layer_map})
    student_init: str | None = field(default=None, metadata={
        "help": "copy layers from the teacher's pre-trained base (paper) or the fine-tuned teacher (default: the "
                "task's recipe, docs/recipes.md: pretrained, but teacher for MRPC students of all-MiniLM-L6-v2; "
                "pretrained with --student-base)",
        "choices": ("pretrained", "teacher")})
    student_base: str | None = field(default=None, metadata={
        "help": "with --student-init pretrained: the pre-trained checkpoint (path or Hub name) the student's layers "
                "come from (default: the base_model in the teacher's run.json, written by `pkd finetune`)",
        "metavar": "NAME_OR_PATH"})
    init_layers: list[int] | None = field(default=None, metadata={
        "help": "which source layers the student starts from (default: the first M, or the first M-1 and the top "
                "one when the source's [CLS] is constant below its top layer; docs/recipes.md)",
        "parse": parse_layer_map})
    pt_projection: bool = field(default=False, metadata={
        "help": "learn a linear map when student and teacher hidden sizes differ"})
    live_teacher: bool = field(default=False, metadata={
        "help": "run the teacher every step instead of caching"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "teacher cache root (default: $PKD_CACHE or ~/.cache/pkd)"})
    loss: LossConfig = field(default_factory=lambda: LossConfig(alpha=0.7, temperature=10.0, beta=0.65))
    augmentation: AugmentConfig = field(default_factory=AugmentConfig, metadata={
        "title": "more text for the teacher to label (docs/augment.md)"})

    def inputs(self) -> list[tuple[str, str | None]]:
        """The models and files this student reads, by option (see RunConfig.inputs)."""
        return [("--teacher", self.teacher), ("--student-base", self.student_base), *self.augmentation.inputs()]

    def __post_init__(self) -> None:
        if self.method == "ft" and self.augmentation.active:
            raise UsageError("--augment / --unlabelled-file: --method ft has no teacher to label the extra rows; use "
                             "kd or a pkd method")
        if self.student_init not in (None, "pretrained", "teacher"):
            raise UsageError(f"--student-init {self.student_init}: choose pretrained or teacher")
        if self.student_base is not None and self.student_init == "teacher":
            raise UsageError(f"--student-base {self.student_base}: only used with --student-init pretrained")

    def for_task(self, recipe: Recipe) -> DistillConfig:
        """This config with the student's init filled in from the task's recipe when it was not given (a given
        --student-base means the pre-trained layers it names)."""
        if self.student_init is not None:
            return self
        return replace(self, student_init="pretrained" if self.student_base is not None else recipe.student_init)


@dataclass
class DataConfig:
    """A task defined by its data (pkd.files, docs/own-data.md): files or a dataset, which columns hold the texts,
    labels and ids, and how the labels read. Unset options come from the run.json of the model a command starts
    from (its teacher, or the run it scores), so only `pkd finetune` needs them."""

    train_file: str | None = field(default=None, metadata={
        "help": "training data as .csv, .tsv, .jsonl, .json or .parquet: a task defined by its data, instead of "
                "--task", "metavar": "PATH"})
    dev_file: str | None = field(default=None, metadata={
        "help": "dev data, the same format (default: a held-out --dev-fraction of --train-file)", "metavar": "PATH"})
    test_file: str | None = field(default=None, metadata={"help": "data to predict, labels optional",
                                                           "metavar": "PATH"})
    dataset: str | None = field(default=None, metadata={
        "help": "a directory written by datasets' save_to_disk, or a Hub dataset name, with train and optionally "
                "validation and test splits", "metavar": "NAME_OR_PATH"})
    dataset_config: str | None = field(default=None, metadata={"help": "the --dataset's configuration name"})
    text_columns: str | None = field(default=None, metadata={
        "help": "the text column, or two for a pair: A,B (default: guessed when unambiguous)", "metavar": "A[,B]"})
    label_column: str | None = field(default=None, metadata={"help": "the label column (default: label)"})
    id_column: str | None = field(default=None, metadata={
        "help": "a column of unique ids that predict writes (default: id when there is one, else the row number)"})
    label_kind: str | None = field(default=None, metadata={
        "help": "default: inferred from the training labels (numbers with a fraction: regression; a list or "
                "--label-sep: multi-label; else classification)", "choices": LABEL_KINDS})
    label_sep: str | None = field(default=None, metadata={
        "help": "multi-label from a string column: the separator between labels, e.g. '|'", "metavar": "SEP"})
    dev_fraction: float | None = field(default=None, metadata={
        "help": "without a dev file: the share of the training rows held out as dev, stratified by label "
                "(default 0.1)"})
    split_seed: int | None = field(default=None, metadata={"help": "seed of the dev hold-out (default 0)"})
    metric: str | None = field(default=None, metadata={
        "help": "the dev metric that picks the best epoch (default: accuracy, pearson or f1_micro by label kind)"})

    def __post_init__(self) -> None:
        if self.dev_fraction is not None and not 0 < self.dev_fraction < 1:
            raise UsageError(f"--dev-fraction {self.dev_fraction}: must be between 0 and 1")
        if self.label_kind is not None and self.label_kind not in LABEL_KINDS:
            raise UsageError(f"--label-kind {self.label_kind}: choose one of {', '.join(LABEL_KINDS)}")
        if self.train_file is not None and self.dataset is not None:
            raise UsageError(f"--train-file {self.train_file} and --dataset {self.dataset}: give one of them")

    def files(self) -> list[tuple[str, str | None]]:
        """The data paths given, by option."""
        return [("--train-file", self.train_file), ("--dev-file", self.dev_file), ("--test-file", self.test_file),
                ("--dataset", self.dataset)]

    @property
    def given(self) -> bool:
        """Whether any data option was given."""
        return any(getattr(self, f.name) is not None for f in fields(self))


@dataclass
class RunConfig:
    """Where a run reads its data and writes its results."""

    out: str = field(metadata={"help": "run directory"})
    task: str | None = field(default=None, metadata={
        "help": "a GLUE task (sst2, mnli, ...) or race, race-high, race-middle; for your own data, see --train-file "
                "and --dataset (default: the task of the model's run.json)"})
    data: DataConfig = field(default_factory=DataConfig, metadata={
        "title": "your own data, instead of --task (docs/own-data.md)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "glue_data directory, or for RACE a folder with train.jsonl.gz etc. (also found in its race/ or "
                "../race/); default: $PKD_DATA, else the Hub"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint in --out"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --out"})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "allow checkpoints that ship their own model code"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars"})

    def inputs(self) -> list[tuple[str, str | None]]:
        """The paths this run reads, by option: --out must stay clear of them (pkd.rundir.check_out_location)."""
        return [*self.data.files(), ("--data-dir", self.data_dir)]


@dataclass
class CompareConfig:
    """`pkd compare`: the methods, each trained from the same initialisation and data order per seed."""

    seeds: int = field(default=3, metadata={"help": "seeds per method: --seed, --seed + 1, ..."})
    methods: tuple[str, ...] = field(default=METHODS[:4], metadata={
        "help": "comma-separated methods", "parse": parse_methods})
    teacher_score: float | None = field(default=None, metadata={"help": "skip re-scoring the teacher on dev"})
    select: str = field(default="best", metadata={
        "help": "which epoch's dev score the table shows: the best one (the epoch picked on dev, whose model is "
                "saved: optimistic) or the last one", "choices": tuple(SELECTIONS)})
    export: str = field(default="none", metadata={
        "help": "also export each run to ONNX (fp32 or int8) in <run>/export-<precision>, scored on dev: the "
                "deployed variants in compare.json and in pkd report", "choices": ("none", "fp32", "int8")})

    def __post_init__(self) -> None:
        if self.export not in ("none", "fp32", "int8"):
            raise UsageError(f"--export {self.export}: choose none, fp32 or int8")


@dataclass
class SweepConfig:
    """`pkd sweep`: which combinations of values to try, and how many at a time."""

    grid: list[str] = field(metadata={"help": "values to try", "nargs": "+", "metavar": "NAME=V1,V2"})
    random_trials: int | None = field(default=None, metadata={
        "help": "run N combinations drawn from the grid (seeded by --seed) instead of all of it", "metavar": "N",
        "flag": "--random"})
    jobs: int = field(default=1, metadata={"help": "trials run at a time, each in its own process"})


FORMATS = ("onnx", "torch", "openvino")
QUANTIZATIONS = ("none", "int8")
# What an export computes in: fp32, int8 weights (dynamic quantization), bf16 weights and activations (PyTorch),
# or auto: every candidate this CPU runs, measured, the fastest within --max-drop points of fp32 kept (pkd.deploy).
PRECISIONS = ("fp32", "int8", "bf16", "auto")
# The precisions pkd exports each format at: ONNX Runtime's CPU kernels have no fast bf16. OpenVINO's int8 is
# static (NNCF's post-training quantization, calibrated on training examples), the others' dynamic.
FORMAT_PRECISIONS = {"onnx": ("fp32", "int8"), "torch": ("fp32", "int8", "bf16"),
                     "openvino": ("fp32", "int8", "bf16")}
DEFAULT_OPSET = 17
OPSETS = range(11, 21)  # eager attention exports from 11 (10 and below fail on a dynamic Slice); TorchScript: <= 20
INT8_MIN_OPSET = 11  # DynamicQuantizeLinear, which ONNX Runtime's dynamic quantization inserts
DEFAULT_MAX_DROP = 0.5  # dev points an auto candidate may lose against fp32
DEFAULT_AUTO_BATCH = 32


def record_precision(record: dict) -> str:
    """An export.json's precision: its "precision", or for an export written before there was one, its
    "quantize" (int8, else fp32)."""
    return record.get("precision") or ("int8" if record.get("quantize") == "int8" else "fp32")


def export_variant(record: dict) -> str:
    """The name `pkd bench --variants` gives the same kind of model as an export.json describes: ort, ort-int8,
    ort-opt-int8, torch-int8, torch-bf16, ov-bf16..."""
    engine = {"onnx": "ort", "openvino": "ov"}.get(record.get("format"), "torch")
    precision = record_precision(record)
    return engine + ("-opt" if record.get("optimize") else "") + ("" if precision == "fp32" else f"-{precision}")


@dataclass
class ExportConfig:
    """`pkd export`: what to write for serving (pkd.deploy), and the data of its parity check.

    --precision and --quantize name the same choice for int8 (--quantize int8 is the older spelling); after
    __post_init__, format, precision and quantize agree (bf16: format torch, quantize none; auto: format None, each
    candidate has its own)."""

    out: str = field(metadata={"help": "the export directory"})
    format: str | None = field(default=None, metadata={
        "help": "onnx (ONNX Runtime), torch, or openvino (an OpenVINO IR, read from the ONNX graph; pip install "
                "'pkd[openvino]'); default onnx, torch for --precision bf16; auto picks it"})
    precision: str | None = field(default=None, metadata={
        "help": "fp32, int8 (onnx, torch: dynamic, int8 weights, activations quantized per batch; openvino: static, "
                "NNCF-calibrated on training examples, VNNI/AMX int8 kernels), bf16 (PyTorch, bf16 weights: "
                "half the file; fast on CPUs with avx512_bf16 or AMX) or auto (builds the candidates this CPU "
                "runs, scores and times each, keeps the fastest within --max-drop points of fp32; docs/deploy.md). "
                "Default fp32, or --quantize's"})
    quantize: str = field(default="none", metadata={
        "help": "none or int8: the older spelling of --precision fp32 / int8 (default none)"})
    opset: int | None = field(default=None, metadata={
        "help": f"ONNX opset, {OPSETS.start}-{OPSETS.stop - 1} (default {DEFAULT_OPSET})"})
    optimize: bool = field(default=False, metadata={
        "help": "ONNX Runtime's transformer fusions (attention, LayerNorm, GELU) before quantization"})
    evaluate: bool = field(default=False, metadata={
        "help": "also score the export on the dev split, recorded in export.json (for pkd report)"})
    max_drop: float | None = field(default=None, metadata={
        "help": f"with --precision auto: the most dev points a candidate may lose against fp32 (default "
                f"{DEFAULT_MAX_DROP})"})
    batch_size: int | None = field(default=None, metadata={
        "help": f"with --precision auto: the batch size the candidates are timed at, besides 1; the fastest there "
                f"wins (default {DEFAULT_AUTO_BATCH})"})
    threads: int | None = field(default=None, metadata={
        "help": "with --precision auto: the torch and ONNX Runtime CPU threads the candidates are timed with; on a "
                "CPU shared with other work, fewer than its cores (default: torch's own)"})
    task: str | None = field(default=None, metadata={
        "help": "task of the parity batch and --evaluate (default: the run's)"})
    data_dir: str | None = field(default=None, metadata={"help": "as for training (default: $PKD_DATA, else the Hub)"})
    max_seq_len: int | None = field(default=None, metadata={"help": "tokens per input (default: the run's)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --out"})

    def __post_init__(self) -> None:
        if self.max_seq_len is not None and self.max_seq_len < 1:
            raise UsageError(f"--max-seq-len {self.max_seq_len}: must be at least 1")
        if self.format is not None and self.format not in FORMATS:
            raise UsageError(f"--format {self.format}: choose one of {', '.join(FORMATS)}")
        if self.quantize not in QUANTIZATIONS:
            raise UsageError(f"--quantize {self.quantize}: choose one of {', '.join(QUANTIZATIONS)}")
        self._resolve_precision()
        self._check_auto_options()
        if self.format == "torch":
            for name in ("opset", "optimize"):
                if getattr(self, name):
                    raise UsageError(f"--{name} applies to --format onnx only")
            return
        if self.optimize and self.format == "openvino":
            raise UsageError("--optimize applies to --format onnx only (OpenVINO fuses the graph itself)")
        if self.opset is None:
            self.opset = DEFAULT_OPSET
        if self.precision in ("int8", "auto") and self.opset < INT8_MIN_OPSET:
            raise UsageError(f"--opset {self.opset}: --precision {self.precision} needs opset {INT8_MIN_OPSET} or "
                             "higher (ONNX Runtime's dynamic quantization uses DynamicQuantizeLinear)")
        if self.opset not in OPSETS:
            raise UsageError(f"--opset {self.opset}: the exporter supports opsets {OPSETS.start}-{OPSETS.stop - 1}")

    def _resolve_precision(self) -> None:
        """precision from --quantize when not given; format from precision when not given."""
        if self.precision is None:
            self.precision = "int8" if self.quantize == "int8" else "fp32"
        elif self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)}")
        elif self.quantize == "int8" and self.precision != "int8":
            raise UsageError(f"--precision {self.precision} and --quantize int8: give one of them (--quantize int8 "
                             "is --precision int8)")
        self.quantize = "int8" if self.precision == "int8" else "none"
        if self.precision == "auto":
            if self.format is not None:
                raise UsageError(f"--format {self.format}: --precision auto picks the format; give one of them")
            return
        self.format = self.format or ("torch" if self.precision == "bf16" else "onnx")
        if self.precision not in FORMAT_PRECISIONS[self.format]:
            able = [f for f, precisions in FORMAT_PRECISIONS.items() if self.precision in precisions]
            raise UsageError(f"--precision {self.precision}: not with --format {self.format}; pass --format "
                             f"{' or '.join(able)}")

    def _check_auto_options(self) -> None:
        if self.precision != "auto":
            for name in ("max_drop", "batch_size", "threads"):
                if getattr(self, name) is not None:
                    raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: applies to --precision "
                                     "auto only")
            return
        if self.optimize:
            raise UsageError("--optimize: not with --precision auto (its ONNX candidates are the plain graphs)")
        self.max_drop = DEFAULT_MAX_DROP if self.max_drop is None else self.max_drop
        self.batch_size = DEFAULT_AUTO_BATCH if self.batch_size is None else self.batch_size
        if not self.max_drop >= 0:
            raise UsageError(f"--max-drop {self.max_drop}: must be >= 0 (dev points)")
        for name in ("batch_size", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")


def from_options(options: dict[str, Any], *classes: type, strict: bool = True) -> list:
    """Keyword options -> one instance of each class, each option going to the class that declares it (the loss
    weights to DistillConfig.loss). With strict, an option no class declares is a TypeError, as for any function;
    the CLI passes all its parsed options, strict=False."""
    left = dict(options)

    def build(cls: type):
        values = {}
        for f in fields(cls):
            nested = f.default_factory() if f.default_factory is not MISSING else None
            if f.name in left:
                values[f.name] = left.pop(f.name)
            elif is_dataclass(nested):  # its own fields, on top of its defaults here
                values[f.name] = replace(nested, **{g.name: left.pop(g.name) for g in fields(nested) if g.name in left})
        return cls(**values)

    built = [build(cls) for cls in classes]
    if strict and left:
        raise TypeError(f"unexpected option(s): {', '.join(sorted(left))}")
    return built


def config_from_dict(cls: type[_Config], data: dict[str, Any]) -> _Config:
    """The inverse of dataclasses.asdict for these configs (a nested config from its own dict)."""
    values = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        nested = f.default_factory() if f.default_factory is not MISSING else None
        values[f.name] = config_from_dict(type(nested), data[f.name]) if is_dataclass(nested) else data[f.name]
    return cls(**values)
