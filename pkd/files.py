"""Tasks defined by their data: the user's own CSV, TSV, JSON Lines, JSON or Parquet files, or a dataset written
by `save_to_disk` (or on the Hub), read through the datasets library's loaders into memory-mapped Arrow tables.

`file_task` reads the training labels once and makes the Task: which columns hold the texts, labels and ids
(guessed only when unambiguous), the label kind (classification, regression, multi-label), the sorted label list,
the metrics, and the held-out dev rows when there is no dev file. `load_file_split` turns a split into the same
Split and Examples the registry's tasks produce, after checking every row. The checks run column-wise on the Arrow
data, and only the rows a command uses become Python objects, so a 1M-row file costs its memory map rather than
1M Python objects (docs/performance.md). A run records its FileSpec in run.json ("file_task"); a command that
starts from that run rebuilds the task from the record and reads no labels to infer them.

Errors are one line naming the file, the row (1-based, data rows only: a header is not counted) and the column.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pkd.config import DataConfig
from pkd.errors import DataError, UsageError
from pkd.tasks import PAIR_RECIPE, Example, FileSpec, Recipe, Split, Task

if TYPE_CHECKING:
    import datasets

# suffix -> the datasets loader and its options
# (only an empty CSV field is missing: pandas' default would also read the texts "NA", "null" or "None" as missing)
CSV = {"keep_default_na": False, "na_values": [""]}
FORMATS: dict[str, tuple[str, dict]] = {
    ".csv": ("csv", CSV), ".tsv": ("csv", {**CSV, "delimiter": "\t"}), ".jsonl": ("json", {}), ".json": ("json", {}),
    ".parquet": ("parquet", {})}
# each label kind's dev metrics (pkd.metrics), and the one that picks the best epoch unless --metric says otherwise
KIND_METRICS = {"classification": ("accuracy", "f1_macro"), "regression": ("pearson", "spearman"),
                "multi-label": ("f1_micro", "f1_macro", "exact_match")}
DEFAULT_METRIC = {"classification": "accuracy", "regression": "pearson", "multi-label": "f1_micro"}
DEV_SPLITS = ("validation", "dev", "valid")  # a dataset's dev split, by the first of these names it has
# text columns guessed as a pair when both are there
PAIRS = (("sentence1", "sentence2"), ("text", "text_pair"), ("question", "sentence"), ("premise", "hypothesis"),
         ("question", "passage"), ("text1", "text2"))
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def data_cache_dir() -> Path:
    """Where the datasets library keeps its Arrow copies of the files: datasets/ under $PKD_CACHE, else under
    ~/.cache/pkd."""
    root = os.environ.get("PKD_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "pkd") / "datasets"


@dataclass(frozen=True)
class Table:
    """One split's rows, memory-mapped, with what errors call it and its contents' sha256 (the cache key's)."""

    data: datasets.Dataset
    source: str
    sha256: str

    @property
    def columns(self) -> list[str]:
        return list(self.data.column_names)

    def column(self, name: str) -> pa.ChunkedArray:
        return self.data.data.column(name)

    def class_names(self, name: str) -> tuple[str, ...] | None:
        """The names of a ClassLabel column (a datasets feature: integers with names), else None."""
        names = getattr(self.data.features[name], "names", None)
        return tuple(names) if names else None

    def is_json(self, name: str) -> bool:
        """A column of mixed JSON types, which datasets keeps as JSON text."""
        return type(self.data.features[name]).__name__ == "Json"


_TABLES: dict[tuple, Table] = {}  # each file is read once per process (keyed by path, size and mtime)


def _quiet_datasets() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def read_file(path: str | Path) -> Table:
    """A data file as a memory-mapped table, through the datasets loader its suffix names."""
    file = Path(path).expanduser()
    suffix = file.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{file}: unknown format {suffix or '(no suffix)'} (use .csv, .tsv, .jsonl, .json or "
                        ".parquet)")
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _TABLES:
        return _TABLES[key]
    if stat.st_size == 0:
        raise DataError(f"{file}: empty file, no header and no rows")
    digest = file_sha256(file, utf8=suffix != ".parquet")
    builder, options = FORMATS[suffix]
    _quiet_datasets()
    import datasets

    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # the loaders log what they raise: one line is ours
    try:
        ds = datasets.load_dataset(builder, data_files={"train": str(file.resolve())}, split="train",
                                   cache_dir=str(data_cache_dir()), **options)
    except Exception as e:  # the loaders raise anything from pandas, pyarrow and datasets
        raise DataError(load_error(file, builder, e)) from None
    finally:
        datasets.logging.set_verbosity(level)
    if len(ds) == 0:
        raise DataError(f"{file}: a header and no data rows")
    table = _TABLES[key] = Table(ds, str(file), digest)
    return table


def file_sha256(file: Path, utf8: bool) -> str:
    """The file's sha256; with utf8, also a check that it is UTF-8 text (a BOM is fine), naming the first bad byte."""
    h, decoder, offset = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), 0
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
            if utf8:
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as e:
                    at = offset - pending + e.start
                    raise DataError(f"{file}: not UTF-8 text (byte {at}: 0x{e.object[e.start]:02x}); convert it, "
                                    f"e.g. iconv -f cp1252 -t utf-8 {file.name} > utf8-{file.name}") from None
            offset += len(chunk)
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataError(f"{file}: not UTF-8 text (it ends inside a character, byte {offset - 1})") from None
    return h.hexdigest()


def load_error(file: Path, builder: str, error: BaseException) -> str:
    """The one-line message for a file the loader refused: the innermost cause's first line."""
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    text = (str(cause).strip().splitlines() or [""])[0][:200]
    if "corresponds to no data" in str(error) or "No columns to parse" in text:
        return f"{file}: no data rows"
    return f"{file}: cannot read as {builder} ({type(cause).__name__}: {text})"


_DATASETS: dict[tuple[str, str], Any] = {}


def read_dataset(name: str, config: str, split: str) -> Table | None:
    """A split of a saved dataset directory (load_from_disk) or a Hub dataset (load_dataset); None when it has no
    such split. split: train, dev (the first of DEV_SPLITS) or test."""
    key = (name, config)
    if key not in _DATASETS:
        _quiet_datasets()
        import datasets

        path = Path(name).expanduser()
        try:
            if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
                loaded = datasets.load_from_disk(str(path))
            elif path.exists() or name.startswith((".", "/", "~")):
                raise DataError(f"--dataset {name}: not a directory written by save_to_disk")
            else:
                loaded = datasets.load_dataset(name, config or None, cache_dir=str(data_cache_dir()))
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"--dataset {name}: cannot load ({type(e).__name__}: "
                            f"{(str(e).strip().splitlines() or [''])[0][:200]})") from None
        _DATASETS[key] = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    splits = _DATASETS[key]
    names = {"train": ("train",), "dev": DEV_SPLITS, "test": ("test",)}[split]
    found = next((n for n in names if n in splits), None)
    if found is None:
        return None
    ds = splits[found]
    if split != "test" and len(ds) == 0:
        raise DataError(f"{name}/{found}: no rows")
    return Table(ds, f"{name}/{found}", ds._fingerprint)


def source_table(spec: FileSpec, split: str) -> Table | None:
    """The table of a split: its file, or its dataset split; None when there is none (dev: held out of train)."""
    if spec.dataset:
        return read_dataset(spec.dataset, spec.dataset_config, split)
    path = getattr(spec, split)
    return read_file(path) if path else None


# ---------------------------------------------------------------------------------------------- columns


def check_columns(table: Table, wanted: tuple[str, ...], what: str) -> None:
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise DataError(f"{table.source}: no {what} column {', '.join(repr(c) for c in missing)} "
                        f"(columns: {', '.join(table.columns)})")


def guess_text_columns(table: Table, taken: tuple[str, ...]) -> tuple[str, ...]:
    """The text column(s) when the data leaves no doubt: a known pair of names, a column named text or sentence,
    or the only string column besides the label and id columns."""
    columns = [c for c in table.columns if c not in taken]
    for pair in PAIRS:
        if all(c in columns for c in pair):
            return pair
    for name in ("text", "sentence"):
        if name in columns:
            return (name,)
    strings = [c for c in columns if pa.types.is_string(table.column(c).type)
               or pa.types.is_large_string(table.column(c).type)]
    if len(strings) == 1:
        return (strings[0],)
    raise DataError(f"{table.source}: cannot tell which column holds the text (columns: {', '.join(table.columns)}); "
                    "pass --text-columns A or A,B")


def row_of(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """The first position where a boolean column is true (nulls count as false), or None."""
    at = pc.index(pc.fill_null(mask, False), True).as_py()
    return None if at < 0 else at


def as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else \
        pc.cast(column, pa.large_string())


def check_texts(table: Table, spec: FileSpec, rows: np.ndarray | None = None) -> None:
    """No text may be missing or blank."""
    for name in spec.text_columns:
        column = as_text(table.column(name))
        # a regex gives only the booleans: trimming first would copy every text
        blank = pc.or_kleene(pc.is_null(column), pc.match_substring_regex(column, r"^\s*$"))
        at = row_of(blank)
        if at is not None:
            raise DataError(f"{table.source}: row {at + 1}, column {name!r}: empty text")


def check_ids(table: Table, spec: FileSpec) -> None:
    if not spec.id_column:
        return
    column = as_text(table.column(spec.id_column))
    counts = pc.value_counts(column)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        value = repeated[0].as_py()
        first, second = np.flatnonzero(pc.fill_null(pc.equal(column, value), False).to_numpy(zero_copy_only=False))[:2]
        raise DataError(f"{table.source}: rows {first + 1} and {second + 1}, column {spec.id_column!r}: duplicate id "
                        f"{value!r}")


# ----------------------------------------------------------------------------------------------- labels


def numeric_mask(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.match_substring_regex(as_text(column), NUMBER)


def infer_labels(table: Table, column_name: str, kind: str | None, sep: str) -> tuple[str, tuple[str, ...]]:
    """The label kind (given, or read from the column's type and values) and the sorted label list."""
    column = table.column(column_name)
    where = f"{table.source}: column {column_name!r}"
    dtype = column.type
    is_list = pa.types.is_list(dtype) or pa.types.is_large_list(dtype)
    at = row_of(pc.is_null(column))
    # A multi-label row with no labels is the empty set: an empty CSV cell reads as null, like JSON Lines' [].
    if at is not None and not (kind == "multi-label" or (kind is None and (is_list or sep))):
        raise DataError(f"{table.source}: row {at + 1}, column {column_name!r}: empty label")
    if table.is_json(column_name):
        values = [json.loads(v) for v in column.to_pylist()]
        number = next(i for i, v in enumerate(values) if isinstance(v, int | float))
        text = next((i for i, v in enumerate(values) if isinstance(v, str)), None)
        if text is not None:
            raise DataError(f"{where}: mixed numeric and string labels (row {number + 1}: {values[number]!r}, "
                            f"row {text + 1}: {values[text]!r}); give every label as a string or every one as a "
                            "number")
        raise DataError(f"{where}: labels of mixed types; use strings, numbers or lists of strings")
    names = table.class_names(column_name)
    if names is not None and kind in (None, "classification"):  # a dataset's ClassLabel: its names, in its order
        return "classification", names
    if kind is None:
        if is_list or sep:
            kind = "multi-label"
        elif pa.types.is_floating(dtype):
            kind = "regression"
        elif pa.types.is_integer(dtype) or pa.types.is_boolean(dtype):
            kind = "classification"
        else:
            numeric = numeric_mask(column)
            some, every = pc.any(numeric).as_py(), pc.all(numeric).as_py()
            fractions = pc.any(pc.match_substring_regex(as_text(column), r"[.eE]")).as_py()
            if every:
                kind = "regression" if fractions else "classification"
            elif some and fractions:  # mostly numbers with a fraction: a score column with a typo
                bad = row_of(pc.invert(numeric))
                raise DataError(f"{table.source}: row {bad + 1}, column {column_name!r}: label "
                                f"{column[bad].as_py()!r} is not a number")
            elif some:
                number, text = row_of(numeric), row_of(pc.invert(numeric))
                raise DataError(f"{where}: mixed numeric and string labels (row {number + 1}: "
                                f"{column[number].as_py()!r}, row {text + 1}: {column[text].as_py()!r}); give "
                                "every label as a string or every one as a number")
            else:
                kind = "classification"
    if kind == "regression":
        regression_values(table, column_name)
        return kind, ()
    if kind == "multi-label":
        flat = label_sets(table, column_name, sep)[0]
        labels = sorted_labels(pc.unique(flat))
        if not labels:
            raise DataError(f"{where}: no labels in any row")
        return kind, labels
    labels = sorted_labels(pc.unique(column))
    if len(labels) < 2:
        raise DataError(f"{where}: only one class ({labels[0]!r}); a classifier needs at least two")
    return kind, labels


def sorted_labels(values: pa.Array) -> tuple[str, ...]:
    """Numbers in numeric order, strings in string order, as the strings that name them."""
    return tuple(str(v) for v in sorted(v for v in values.to_pylist() if v is not None and v != ""))


def regression_values(table: Table, name: str, rows: np.ndarray | None = None) -> np.ndarray:
    """The column as float64, every value checked to be a finite number."""
    column = table.column(name)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        bad = row_of(pc.invert(numeric_mask(column)))
        if bad is not None:
            raise DataError(f"{table.source}: row {bad + 1}, column {name!r}: label {column[bad].as_py()!r} is not a "
                            "number")
    values = pc.cast(as_text(column) if not pa.types.is_floating(column.type) else column,
                     pa.float64()).to_numpy()
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise DataError(f"{table.source}: row {bad[0] + 1}, column {name!r}: label is not a finite number")
    return values if rows is None else values[rows]


def label_sets(table: Table, name: str, sep: str) -> tuple[pa.Array, np.ndarray, int]:
    """A multi-label column flattened: each label as a string, the row it came from, and the number of rows."""
    column = table.column(name).combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        if not sep:
            raise DataError(f"{table.source}: column {name!r} holds no lists; pass --label-sep for labels in one "
                            "string, e.g. --label-sep '|'")
        column = pc.split_pattern(as_text(column), sep)
    flat = pc.utf8_trim_whitespace(pc.cast(pc.list_flatten(column), pa.large_string()))
    parents = pc.list_parent_indices(column).to_numpy()
    keep = pc.fill_null(pc.greater(pc.utf8_length(flat), 0), False)
    return pc.filter(flat, keep), parents[keep.to_numpy(zero_copy_only=False)], len(column)


def label_ids(table: Table, spec: FileSpec) -> np.ndarray:
    """Every row's class id in spec.labels; a label train never had is an error naming it."""
    name = spec.label_column
    column = table.column(name)
    at = row_of(pc.is_null(column))
    if at is not None:
        raise DataError(f"{table.source}: row {at + 1}, column {name!r}: empty label")
    if table.class_names(name) is not None:  # a ClassLabel's integers are the ids: names are checked, not ids
        column = pc.take(pa.array(table.class_names(name), pa.large_string()),
                         pc.if_else(pc.less(column, 0), None, column))
        at = row_of(pc.is_null(column))
        if at is not None:
            raise DataError(f"{table.source}: row {at + 1}, column {name!r}: no label (-1)")
    if table.is_json(name):
        column = pa.chunked_array([pa.array([str(json.loads(v)) for v in column.to_pylist()])])
    text = pc.cast(column, pa.large_string()) if not pa.types.is_boolean(column.type) else \
        pa.chunked_array([pa.array([str(v) for v in column.to_pylist()])])
    ids = pc.index_in(text, value_set=pa.array(spec.labels, pa.large_string()))
    bad = row_of(pc.is_null(ids))
    if bad is not None:
        raise DataError(f"{table.source}: row {bad + 1}, column {name!r}: label {text[bad].as_py()!r} is not one of "
                        f"the training labels ({', '.join(spec.labels)})")
    return ids.to_numpy().astype(np.int64)


def multi_hot(table: Table, spec: FileSpec) -> np.ndarray:
    """[rows, labels] of 0/1; a label train never had is an error naming it."""
    flat, parents, rows = label_sets(table, spec.label_column, spec.label_sep)
    ids = pc.index_in(flat, value_set=pa.array(spec.labels, pa.large_string()))
    bad = row_of(pc.is_null(ids))
    if bad is not None:
        raise DataError(f"{table.source}: row {parents[bad] + 1}, column {spec.label_column!r}: label "
                        f"{flat[bad].as_py()!r} is not one of the training labels ({', '.join(spec.labels)})")
    out = np.zeros((rows, len(spec.labels)), np.float32)
    out[parents, ids.to_numpy()] = 1.0
    return out


def labels_of(table: Table, spec: FileSpec) -> np.ndarray:
    """Every row's label, checked: class ids [n], values [n] or multi-hot [n, labels]."""
    if spec.label_kind == "regression":
        return regression_values(table, spec.label_column)
    if spec.label_kind == "multi-label":
        return multi_hot(table, spec)
    return label_ids(table, spec)


# ------------------------------------------------------------------------------------------- the dev split


def holdout_rows(strata: np.ndarray | None, n: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted rows held out as dev: `fraction` of each class, rounded (at least one row of each class stays in
    train; at least one row is held out), drawn with `seed`; without strata (regression, multi-label), of all rows."""
    rng = np.random.default_rng(seed)
    strata = np.zeros(n, np.int64) if strata is None else strata
    picked = []
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        k = min(len(rows) - 1, int(round(len(rows) * fraction)))
        picked.append(rng.permutation(rows)[:k])
    held = np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
    values, counts = np.unique(strata, return_counts=True)
    if len(held) == 0 and counts.max() > 1:  # a tiny file: one row of its largest class
        held = rng.permutation(np.flatnonzero(strata == values[counts.argmax()]))[:1]
    if len(held) == 0:
        raise DataError(f"--dev-fraction {fraction}: holds out no row of {n}; pass --dev-file or a larger fraction")
    return held


def digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(rows, np.int64).tobytes()).hexdigest()


def holdout_of(table: Table, spec: FileSpec) -> np.ndarray:
    strata = label_ids(table, spec) if spec.label_kind == "classification" else None
    return holdout_rows(strata, len(table.data), spec.dev_fraction, spec.split_seed)


# ------------------------------------------------------------------------------------------------ the task


def check_holdout(recorded: FileSpec, train_sha256: str | None, rows_sha256: str | None, source: str) -> None:
    """Refuse a training file whose contents (or hold-out rows) differ from what the run that made the dev hold-out
    recorded: the held-out rows would be recomputed, and the teacher's training rows would become dev rows (and dev
    rows training rows) without a word. Nothing to check for a run with a dev file, or one that recorded no
    hold-out."""
    if recorded.dev or not recorded.holdout:
        return
    was_sha, was_rows = recorded.sha256.get("train"), recorded.holdout.get("sha256")
    if was_sha and train_sha256 and was_sha != train_sha256:
        what = f"sha256 {train_sha256}, but the run recorded {was_sha}"
    elif was_rows and rows_sha256 and was_rows != rows_sha256:
        what = f"held-out dev rows digest {rows_sha256}, but the run recorded {was_rows}"
    else:
        return
    raise DataError(f"{source}: changed since the model's dev hold-out was drawn ({what}); its dev rows would move "
                    "into training and training rows into dev. Retrain the teacher on this file, or pass an explicit "
                    "--dev-file")


def make_task(spec: FileSpec) -> Task:
    """The Task a FileSpec defines; it takes the GLUE default recipe (pkd.tasks.Recipe), pairs of texts the pair
    tasks' (PAIR_RECIPE: the shuffled order)."""
    metrics = KIND_METRICS[spec.label_kind]
    if spec.label_kind == "classification" and len(spec.labels) == 2:
        metrics += ("mcc",)
    name = Path(spec.dataset).name if spec.dataset else Path(spec.train).stem
    return Task(name or "data", "", spec.text_columns, spec.label_column,
                None if spec.label_kind == "regression" else spec.labels, metrics,
                multi_label=spec.label_kind == "multi-label", score_metric=spec.metric, files=spec,
                recipe=PAIR_RECIPE if len(spec.text_columns) > 1 else Recipe())


def check_metric(metric: str, spec: FileSpec) -> None:
    allowed = KIND_METRICS[spec.label_kind] + (("mcc",) if spec.label_kind == "classification" else ())
    if metric not in allowed:
        raise UsageError(f"--metric {metric}: not a {spec.label_kind} metric (choose from {', '.join(allowed)})")


def resolve_path(path: str | None) -> str:
    return str(Path(path).expanduser().resolve()) if path else ""


def split_columns(text: str) -> tuple[str, ...]:
    """--text-columns A or A,B."""
    columns = tuple(c.strip() for c in text.split(",") if c.strip())
    if not 1 <= len(columns) <= 2:
        raise UsageError(f"--text-columns {text}: one column or a pair, A or A,B")
    return columns


def file_task(data: DataConfig, recorded: FileSpec | None = None) -> Task:
    """The task `data` defines, reading and checking its training labels; or, with `recorded` (a run's FileSpec),
    that task with the data options given here put in (files elsewhere, say), its labels unchanged."""
    given = {k: v for k, v in asdict(data).items() if v is not None}
    if recorded is not None:
        return make_task(recorded_with(recorded, given))
    if data.dataset is None and data.train_file is None:
        raise UsageError("--dev-file and --test-file need --train-file (or a model whose run.json records its data)")
    spec = FileSpec(train=resolve_path(data.train_file), dev=resolve_path(data.dev_file),
                    test=resolve_path(data.test_file), dataset=data.dataset or "",
                    dataset_config=data.dataset_config or "", label_sep=data.label_sep or "",
                    dev_fraction=0.1 if data.dev_fraction is None else data.dev_fraction,
                    split_seed=data.split_seed or 0)
    train = source_table(spec, "train")
    if train is None:
        raise DataError(f"--dataset {spec.dataset}: no train split")
    label = data.label_column or ("labels" if "label" not in train.columns and "labels" in train.columns else "label")
    check_columns(train, (label,), "label")
    id_column = data.id_column if data.id_column is not None else ("id" if "id" in train.columns else "")
    if id_column:
        check_columns(train, (id_column,), "id")
    if data.text_columns:
        texts = split_columns(data.text_columns)
        check_columns(train, texts, "text")
    else:
        texts = guess_text_columns(train, (label, id_column))
    kind, labels = infer_labels(train, label, data.label_kind, spec.label_sep)
    spec = replace(spec, text_columns=texts, label_column=label, id_column=id_column, label_kind=kind, labels=labels)
    metric = data.metric or DEFAULT_METRIC[kind]
    check_metric(metric, spec)
    spec = replace(spec, metric=metric)
    check_texts(train, spec)
    check_ids(train, spec)
    labels_of(train, spec)
    return make_task(with_sources(spec, ("train", "dev", "test")))


def with_sources(spec: FileSpec, splits: tuple[str, ...], holdout_too: bool = True) -> FileSpec:
    """`spec` with the sha256 of these splits' data and (holdout_too) the held-out dev rows (none with a dev file)
    brought up to date; the dev and test data must have the text columns."""
    checksums = dict(spec.sha256)
    for split in splits:
        table = source_table(spec, split)
        checksums.pop(split, None)
        if table is not None:
            checksums[split] = table.sha256
            check_columns(table, spec.text_columns, "text")
    if not holdout_too:
        return replace(spec, sha256=checksums)
    holdout: dict[str, object] = {}
    if source_table(spec, "dev") is None:
        train = source_table(spec, "train")
        held = holdout_of(train, spec)
        holdout = {"rows": len(held), "of": len(train.data), "sha256": digest(held)}
    return replace(spec, sha256=checksums, holdout=holdout)


def recorded_with(recorded: FileSpec, given: dict[str, Any]) -> FileSpec:
    """A run's FileSpec with the data options given to this command put in: files elsewhere, other columns, the
    hold-out or the selection metric. The labels stay the model's: a label kind or separator other than the
    recorded one is refused, and so (when its split is read) is a label the model does not have."""
    for name in ("label_kind", "label_sep"):
        if name in given and given[name] != getattr(recorded, name):
            raise UsageError(f"--{name.replace('_', '-')} {given[name]}: the model was trained with "
                             f"{getattr(recorded, name) or 'none'}")
    spec, changed = recorded, []
    for split in ("train", "dev", "test"):
        if f"{split}_file" in given:
            spec, changed = replace(spec, **{split: resolve_path(given[f"{split}_file"])}), [*changed, split]
    if "dataset" in given:
        spec = replace(spec, dataset=given["dataset"], dataset_config=given.get("dataset_config", ""),
                       train="train", dev="", test="")
        changed = ["train", "dev", "test"]
    if "metric" in given:
        check_metric(given["metric"], spec)
        spec = replace(spec, metric=given["metric"])
    if "text_columns" in given:
        spec = replace(spec, text_columns=split_columns(given["text_columns"]))
    spec = replace(spec, **{k: given[k] for k in ("label_column", "id_column", "dev_fraction", "split_seed")
                            if k in given})
    split_changed = "dev_fraction" in given or "split_seed" in given or bool({"train", "dev"} & set(changed))
    if changed or split_changed:
        spec = with_sources(spec, tuple(changed), holdout_too=split_changed)
    if not spec.dev:  # the dev split is still the recorded hold-out of train: it must be the same rows
        check_holdout(recorded, spec.sha256.get("train"), spec.holdout.get("sha256"), spec.train)
    return spec


def load_file_split(task: Task, split: str, limit: int | None = None) -> list[Split]:
    """A split of a file task as one Split (train, dev, test), every row of its table checked first; without a dev
    file, dev is the held-out rows of train and train is the rest. `limit`: only the first N examples."""
    spec = task.files
    if split not in ("train", "dev", "test"):
        raise UsageError(f"--split {split}: unknown split for {task.name} (train, dev, test)")
    table = source_table(spec, split)
    rows = None
    if split == "test" and table is None:
        raise UsageError(f"{task.name}: no test data; pass --test-file (or --dataset with a test split)")
    if split != "test" and (table is None or split == "train") and source_table(spec, "dev") is None:
        table = source_table(spec, "train")
        held = holdout_of(table, spec)
        check_holdout(spec, table.sha256, digest(held), table.source)  # the file may have changed in place
        rows = held if split == "dev" else np.setdiff1d(np.arange(len(table.data)), held)
    labeled = spec.label_column in table.columns and not (
        split == "test" and table.class_names(spec.label_column) is not None and  # the Hub's unlabeled test rows
        pc.all(pc.less(table.column(spec.label_column), 0)).as_py())
    if split != "test" and not labeled:
        check_columns(table, (spec.label_column,), "label")
    check_columns(table, spec.text_columns, "text")
    if spec.id_column:
        check_columns(table, (spec.id_column,), "id")
    check_texts(table, spec)
    check_ids(table, spec)
    labels = labels_of(table, spec) if labeled else None
    rows = np.arange(len(table.data)) if rows is None else rows
    if limit is not None:
        rows = rows[:limit]
    subset = table.data.select(rows)
    texts = [[str(v) for v in subset[c]] for c in spec.text_columns]
    ids = [str(v) for v in subset[spec.id_column]] if spec.id_column else [str(r) for r in rows]
    values: list = [None] * len(rows) if labels is None else (
        [tuple(v) for v in labels[rows].tolist()] if spec.label_kind == "multi-label" else labels[rows].tolist())
    examples = [Example(tuple(t), label, index)
                for t, label, index in zip(zip(*texts, strict=True), values, ids, strict=True)]
    held = "" if len(rows) == len(table.data) or split == "test" else " (held-out dev rows)" if split == "dev" \
        else " (without the held-out dev rows)"
    fingerprint = hashlib.sha256(json.dumps(
        {"data": table.sha256, "split": split, "rows": digest(rows), "texts": spec.text_columns,
         "label": spec.label_column, "kind": spec.label_kind, "labels": spec.labels, "sep": spec.label_sep},
        sort_keys=True).encode()).hexdigest()
    return [Split(task, split, examples, table.source + held, fingerprint)]


def recorded_spec(record: dict) -> FileSpec | None:
    """The FileSpec a run.json or export.json records ("file_task"), if any."""
    spec = record.get("file_task")
    return FileSpec.from_record(spec) if spec else None
