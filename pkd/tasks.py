"""The task registry: what each task (GLUE and RACE) reads, how it is labelled, scored and trained by default
(its Recipe), and the types the readers produce (Example, Split). A task defined by the user's own data is a Task
too, with a FileSpec saying where its data is and how it reads (pkd.files builds both). No reading happens here:
pkd.glue, pkd.race and pkd.files read the files and the Hub, and pkd.data picks the reader for a task.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pkd.errors import UsageError


@dataclass(frozen=True)
class Recipe:
    """A task's training defaults: what `--epochs`, `--lr`, `--max-seq-len` and `--student-init` mean when they are
    not given.

    Measured with the default teacher (all-MiniLM-L6-v2) and 3-layer students; docs/recipes.md has the runs.
    Students get a higher learning rate than teachers: with the paper's 5e-5, a student started from the first
    layers of a pre-trained checkpoint spends its first hundreds of steps learning to route its input into [CLS]
    (SST-2 with 4,000 examples for 1 epoch: 75.57 at 5e-5, 78.10 at 2e-4; STS-B 2 epochs: Pearson 56.56 and 70.84).
    """

    max_seq_len: int = 128  # pair tasks need it: at 64, 20% of MRPC's and 37% of RTE's pairs lose their tail
    teacher_epochs: int = 3
    teacher_lr: float = 5e-5
    student_epochs: int = 4
    student_lr: float = 2e-4
    student_init: str = "pretrained"  # where a student's layers come from: the paper's pre-trained ones, or "teacher"
    # Batches of similar length (2x faster): measured a tie on single sentences (SST-2), and a cost on pairs
    # (STS-B, docs/performance.md), which keep the shuffled order.
    group_by_length: bool = True

    def paper(self) -> Recipe:
        """The paper's student settings (lr 5e-5, pre-trained layers, 4 epochs) with this recipe's max_seq_len and
        teacher settings: for students of a checkpoint the student values were not measured on."""
        return replace(self, student_lr=5e-5, student_epochs=4, student_init="pretrained")


# The checkpoint the recipes' student values (the 2e-4 learning rate, MRPC's teacher init and 2 epochs) were measured
# on, with 3-layer students (docs/recipes.md); students of any other checkpoint get Recipe.paper.
RECIPE_MEASURED_ON = "all-MiniLM-L6-v2"


LABEL_KINDS = ("classification", "regression", "multi-label")


@dataclass(frozen=True)
class FileSpec:
    """A task defined by its data (pkd.files): where the data is, which columns hold what, how the labels read, and
    how the dev split was made. run.json records it as "file_task", so later commands need no data flags."""

    train: str = ""  # file paths (absolute), or split names of `dataset`
    dev: str = ""  # "": the dev split is a held-out share of train
    test: str = ""
    dataset: str = ""  # a directory written by save_to_disk, or a Hub dataset name ("" for files)
    dataset_config: str = ""
    sha256: dict[str, str] = field(default_factory=dict, hash=False)  # split -> contents' sha256 (or fingerprint)
    text_columns: tuple[str, ...] = ()
    label_column: str = "label"
    id_column: str = ""
    label_kind: str = "classification"  # one of LABEL_KINDS
    labels: tuple[str, ...] = ()  # sorted; empty for regression
    label_sep: str = ""  # multi-label from a string column: the separator
    metric: str = ""  # the metric that picks the best epoch
    dev_fraction: float = 0.1
    split_seed: int = 0
    holdout: dict[str, object] = field(default_factory=dict, hash=False)  # rows and sha256 of the held-out indices

    @classmethod
    def from_record(cls, record: dict) -> FileSpec:
        """The inverse of dataclasses.asdict (JSON turns tuples into lists)."""
        known = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "text_columns": tuple(known.get("text_columns", ())),
                      "labels": tuple(known.get("labels", ()))})


@dataclass(frozen=True)
class Task:
    name: str
    folder: str  # directory name in glue_data
    text_columns: tuple[str, ...]  # header names (or positions as str digits for header-less files)
    label_column: str
    labels: tuple[str, ...] | None  # None means regression
    metrics: tuple[str, ...]
    header: bool = True
    test_text_columns: tuple[str, ...] | None = None  # when the test file names its columns differently
    hub_name: str = ""
    hub_text_columns: tuple[str, ...] = ()
    dev_files: tuple[str, ...] = ("dev",)  # MNLI scores matched and mismatched
    test_files: tuple[str, ...] = ("test",)
    choices: int = 0  # > 0: multiple choice, this many options per question (RACE)
    level: str | None = None  # RACE: keep only the passages of this level
    levels: tuple[str, ...] = ()  # RACE: levels whose accuracy is also reported on its own
    recipe: Recipe = Recipe()  # training defaults (the GLUE ones unless the task's entry says otherwise)
    multi_label: bool = False  # labels are a set: one sigmoid output per label
    score_metric: str = ""  # the metric that is "score" (picks the best epoch); "": the mean of `metrics`
    files: FileSpec | None = None  # a task defined by its data (pkd.files); None for the registry's tasks

    @property
    def default_max_seq_len(self) -> int:
        return self.recipe.max_seq_len

    @property
    def is_multiple_choice(self) -> bool:
        return self.choices > 0

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    @property
    def problem_type(self) -> str:
        """transformers' name for the head's kind (config.problem_type)."""
        if self.is_regression:
            return "regression"
        return "multi_label_classification" if self.multi_label else "single_label_classification"


# MRPC's 3-layer students from the pre-trained layers kept 89-90% of the teacher's accuracy and peaked by epoch 2 of
# 4; from the fine-tuned teacher's layers for 2 epochs they keep 92%, in half the time (docs/recipes.md).
MRPC_RECIPE = Recipe(student_epochs=2, student_init="teacher", group_by_length=False)
PAIR_RECIPE = Recipe(group_by_length=False)

GLUE_TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        # CoLA train/dev have no header: source, label, original label, sentence.
        Task("cola", "CoLA", ("3",), "1", ("0", "1"), ("mcc",), header=False,
             test_text_columns=("sentence",), hub_name="cola", hub_text_columns=("sentence",)),
        Task("sst2", "SST-2", ("sentence",), "label", ("0", "1"), ("accuracy",),
             hub_name="sst2", hub_text_columns=("sentence",)),
        Task("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1"), ("accuracy", "f1"),
             hub_name="mrpc", hub_text_columns=("sentence1", "sentence2"), recipe=MRPC_RECIPE),
        Task("stsb", "STS-B", ("sentence1", "sentence2"), "score", None, ("pearson", "spearman"),
             hub_name="stsb", hub_text_columns=("sentence1", "sentence2"), recipe=PAIR_RECIPE),
        Task("qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1"), ("accuracy", "f1"),
             hub_name="qqp", hub_text_columns=("question1", "question2"), recipe=PAIR_RECIPE),
        Task("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label",
             ("contradiction", "entailment", "neutral"), ("accuracy",),
             hub_name="mnli", hub_text_columns=("premise", "hypothesis"),
             dev_files=("dev_matched", "dev_mismatched"), test_files=("test_matched", "test_mismatched"),
             recipe=PAIR_RECIPE),
        Task("qnli", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment"), ("accuracy",),
             hub_name="qnli", hub_text_columns=("question", "sentence"), recipe=PAIR_RECIPE),
        Task("rte", "RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), ("accuracy",),
             hub_name="rte", hub_text_columns=("sentence1", "sentence2"), recipe=PAIR_RECIPE),
        Task("wnli", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1"), ("accuracy",),
             hub_name="wnli", hub_text_columns=("sentence1", "sentence2"), recipe=PAIR_RECIPE),
    ]
}

# RACE keeps the paper's learning rate for students too: its students were not re-measured (docs/race.md).
RACE_RECIPE = Recipe(max_seq_len=512, student_lr=5e-5, group_by_length=False)

# RACE: 4-way multiple choice over a passage; labels are the answer letters. "race" reports accuracy on
# all questions and on the high- and middle-school ones; race-high and race-middle train on one level.
RACE_TASKS: dict[str, Task] = {
    name: Task(name, "race", ("article", "question", "options"), "answers", ("A", "B", "C", "D"), ("accuracy",),
               hub_name=config, choices=4, level=level, levels=("high", "middle") if level is None else (),
               recipe=RACE_RECIPE)
    for name, level, config in (("race", None, "all"), ("race-high", "high", "high"),
                                ("race-middle", "middle", "middle"))
}

TASKS: dict[str, Task] = {**GLUE_TASKS, **RACE_TASKS}

_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "mnli-mm": "mnli", "race-all": "race",
            "race_high": "race-high", "race_middle": "race-middle"}


def get_task(name: str) -> Task:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in TASKS:
        raise UsageError(f"--task {name}: unknown task (choose from {', '.join(TASKS)})")
    return TASKS[key]


@dataclass
class Example:
    texts: tuple[str, ...]
    label: int | float | tuple[float, ...] | None  # None for unlabeled test data; multi-label: 0/1 per label
    index: str  # the id to write in a prediction file
    level: str | None = None  # RACE: "high" or "middle"


@dataclass
class Split:
    """One split of one task, from one source, with a fingerprint of its contents for the teacher cache."""

    task: Task
    name: str  # train, dev, dev_mismatched, test, ...
    examples: list[Example]
    source: str
    fingerprint: str
    # The last `teacher_only` examples have no gold label: rows of --unlabelled-file and augmented copies, which only
    # the teacher labels (pkd.augment). The student learns KD and PT on them, never CE (pkd.losses).
    teacher_only: int = 0

    @property
    def labeled(self) -> bool:
        return all(e.label is not None for e in self.examples)

    @property
    def gold(self) -> list[Example]:
        """The examples with a gold label: all but the teacher-only ones."""
        return self.examples[:len(self.examples) - self.teacher_only]
