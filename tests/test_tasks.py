"""The GLUE readers: local glue_data TSVs for all nine tasks, the Hub path, and robustness to arbitrary
bytes."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pkd.data import load_split, resolve_data_dir
from pkd.errors import DataError, UsageError
from pkd.glue import read_tsv
from pkd.tasks import GLUE_TASKS, Split, get_task

N_TRAIN, N_DEV, N_TEST = 256, 24, 10  # what conftest.write_glue writes by default

# Written here independently of pkd.tasks: folder, text columns (names, or positions for header-less CoLA),
# label column, and how each label string maps to our int (None = regression, a float).
SPEC = {
    "cola": ("CoLA", (3,), 1, {"0": 0, "1": 1}),
    "sst2": ("SST-2", ("sentence",), "label", {"0": 0, "1": 1}),
    "mrpc": ("MRPC", ("#1 String", "#2 String"), "Quality", {"0": 0, "1": 1}),
    "stsb": ("STS-B", ("sentence1", "sentence2"), "score", None),
    "qqp": ("QQP", ("question1", "question2"), "is_duplicate", {"0": 0, "1": 1}),
    "mnli": ("MNLI", ("sentence1", "sentence2"), "gold_label",
             {"contradiction": 0, "entailment": 1, "neutral": 2}),
    "qnli": ("QNLI", ("question", "sentence"), "label", {"entailment": 0, "not_entailment": 1}),
    "rte": ("RTE", ("sentence1", "sentence2"), "label", {"entailment": 0, "not_entailment": 1}),
    "wnli": ("WNLI", ("sentence1", "sentence2"), "label", {"0": 0, "1": 1}),
}
ALL_TASKS = sorted(SPEC)
assert set(SPEC) == set(GLUE_TASKS)


def _raw_rows(path: Path, header: bool) -> tuple[list[str] | None, list[list[str]]]:
    text = path.read_text(encoding="utf-8")
    text = text.removeprefix("\ufeff")
    lines = text.rstrip("\n").split("\n")
    rows = [line.split("\t") for line in lines]
    return (rows[0], rows[1:]) if header else (None, rows)


def _expected(task: str, path: Path, labeled: bool = True):
    """(texts, label, index) for every row, from the raw file and the SPEC above."""
    folder, text_cols, label_col, mapping = SPEC[task]
    is_test = not labeled
    header, rows = _raw_rows(path, header=task != "cola" or is_test)
    if is_test and task == "cola":
        text_cols = ("sentence",)
    out = []
    for n, row in enumerate(rows):
        if header is None:
            texts = tuple(row[c] for c in text_cols)
            raw_label, index = row[label_col], str(n)
        else:
            texts = tuple(row[header.index(c)] for c in text_cols)
            raw_label = row[header.index(label_col)] if labeled else None
            key = "index" if "index" in header else ("id" if "id" in header else None)
            index = row[header.index(key)] if key else str(n)
        if raw_label is None:
            label = None
        elif mapping is None:
            label = float(raw_label)
        else:
            label = mapping[raw_label]
        out.append((texts, label, index))
    return out


def _as_tuples(split: Split):
    return [(e.texts, e.label, e.index) for e in split.examples]


@pytest.mark.parametrize("task", ALL_TASKS)
def test_train_split_every_task(glue_dir, task):
    folder, text_cols, _, mapping = SPEC[task]
    (split,) = load_split(get_task(task), "train", glue_dir)
    assert split.name == "train"
    assert len(split.examples) == N_TRAIN
    assert split.labeled
    assert Path(split.source) == glue_dir / folder / "train.tsv"
    assert all(len(e.texts) == len(text_cols) for e in split.examples)
    assert all(isinstance(t, str) and t for e in split.examples for t in e.texts)
    assert _as_tuples(split) == _expected(task, glue_dir / folder / "train.tsv")
    labels = {e.label for e in split.examples}
    if mapping is None:
        assert all(isinstance(x, float) for x in labels)
    else:
        assert all(type(x) is int for x in labels)
        assert labels <= set(range(len(mapping)))
        assert len(labels) >= 2  # both classes occur in 256 random rows


@pytest.mark.parametrize("task", ALL_TASKS)
def test_dev_split_every_task(glue_dir, task):
    folder = SPEC[task][0]
    parts = load_split(get_task(task), "dev", glue_dir)
    names = ["dev_matched", "dev_mismatched"] if task == "mnli" else ["dev"]
    assert [p.name for p in parts] == names
    for part in parts:
        assert len(part.examples) == N_DEV
        assert part.labeled
        assert _as_tuples(part) == _expected(task, glue_dir / folder / f"{part.name}.tsv")


def test_mnli_dev_parts_are_separately_addressable(glue_dir):
    mnli = get_task("mnli")
    (matched,) = load_split(mnli, "dev_matched", glue_dir)
    (mismatched,) = load_split(mnli, "dev_mismatched", glue_dir)
    assert Path(matched.source).name == "dev_matched.tsv"
    assert Path(mismatched.source).name == "dev_mismatched.tsv"
    assert matched.fingerprint != mismatched.fingerprint  # different contents


@pytest.mark.parametrize("task", ALL_TASKS)
def test_unlabeled_test_split_every_task(glue_dir, task):
    folder = SPEC[task][0]
    parts = load_split(get_task(task), "test", glue_dir)
    assert [p.name for p in parts] == (["test_matched", "test_mismatched"] if task == "mnli" else ["test"])
    for part in parts:
        assert len(part.examples) == N_TEST
        assert not part.labeled
        assert all(e.label is None for e in part.examples)
        assert [e.index for e in part.examples] == [str(i) for i in range(N_TEST)]
        assert _as_tuples(part) == _expected(task, glue_dir / folder / f"{part.name}.tsv", labeled=False)


def test_test_index_column_is_kept_not_the_row_position(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_text("index\tsentence1\tsentence2\n17\ta\tb\n3\tc\td\n", encoding="utf-8")
    split = read_tsv(get_task("rte"), path, "test")
    assert [(e.texts, e.label, e.index) for e in split.examples] == [
        (("a", "b"), None, "17"), (("c", "d"), None, "3")]


def test_rte_and_qnli_label_names(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot_entailment\n1\tc\td\tentailment\n")
    assert [e.label for e in read_tsv(get_task("rte"), path, "dev").examples] == [1, 0]
    path.write_text("index\tquestion\tsentence\tlabel\n0\ta\tb\tentailment\n1\tc\td\tnot_entailment\n")
    assert [e.label for e in read_tsv(get_task("qnli"), path, "dev").examples] == [0, 1]


def test_mnli_reads_gold_label_not_the_annotator_columns(tmp_path):
    head = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
            "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
    rows = ["0\t1\t1n\tfic\t-\t-\t-\t-\tp0\th0\tneutral\tneutral\tentailment\tneutral\tneutral\tentailment",
            "1\t1\t1n\tfic\t-\t-\t-\t-\tp1\th1\tentailment\tentailment\tentailment\tentailment\tneutral\tcontradiction",
            "2\t1\t1n\tfic\t-\t-\t-\t-\tp2\th2\tcontradiction\tneutral\tneutral\tneutral\tneutral\tneutral"]
    path = tmp_path / "dev_matched.tsv"
    path.write_text(head + "\n" + "\n".join(rows) + "\n")
    split = read_tsv(get_task("mnli"), path, "dev_matched")
    assert [(e.texts, e.label, e.index) for e in split.examples] == [
        (("p0", "h0"), 1, "0"), (("p1", "h1"), 0, "1"), (("p2", "h2"), 2, "2")]


def test_stsb_scores_are_floats(tmp_path):
    path = tmp_path / "dev.tsv"
    head = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    path.write_text(head + "\n0\tm\tf\t2012\t0\tn\tn\ta\tb\t3.800\n1\tm\tf\t2012\t1\tn\tn\tc\td\t0\n")
    labels = [e.label for e in read_tsv(get_task("stsb"), path, "dev").examples]
    assert labels == [3.8, 0.0] and all(isinstance(x, float) for x in labels)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_stsb_non_finite_score_is_rejected(tmp_path, value):
    path = tmp_path / "train.tsv"
    path.write_text(f"index\tsentence1\tsentence2\tscore\n0\ta\tb\t1.0\n1\tc\td\t{value}\n")
    with pytest.raises(DataError, match=rf"{path.name}:3: .*{value}"):
        read_tsv(get_task("stsb"), path, "train")


def test_mrpc_bom_header(glue_dir):
    raw = (glue_dir / "MRPC" / "train.tsv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfQuality\t")  # the fixture really has the BOM
    (split,) = load_split(get_task("mrpc"), "train", glue_dir)
    assert split.examples[0].label == int(raw.split(b"\n")[1].split(b"\t")[0])
    assert not any("\ufeff" in t for e in split.examples for t in e.texts)


def test_bom_on_header_less_cola_first_row(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("\ufeffgj04\t1\t\tthe cat sat .\ngj04\t0\t*\tcat the sat .\n".encode())
    split = read_tsv(get_task("cola"), path, "train")
    assert [(e.texts, e.label, e.index) for e in split.examples] == [
        (("the cat sat .",), 1, "0"), (("cat the sat .",), 0, "1")]


def test_cola_is_header_less(glue_dir):
    first = (glue_dir / "CoLA" / "train.tsv").read_text().split("\n")[0].split("\t")
    (split,) = load_split(get_task("cola"), "train", glue_dir)
    # The first line is data, not a header: it is the first example.
    assert split.examples[0].texts == (first[3],)
    assert split.examples[0].label == int(first[1])
    assert len(split.examples) == N_TRAIN


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"sentence\tlabel\r\na b\t1\r\nc d\t0\r\n")
    split = read_tsv(get_task("sst2"), path, "train")
    assert [(e.texts, e.label) for e in split.examples] == [(("a b",), 1), (("c d",), 0)]


def test_limit(glue_dir):
    task = get_task("sst2")
    (full,) = load_split(task, "train", glue_dir)
    (five,) = load_split(task, "train", glue_dir, limit=5)
    assert _as_tuples(five) == _as_tuples(full)[:5]
    assert five.fingerprint != full.fingerprint  # the teacher cache must not confuse them
    (big,) = load_split(task, "train", glue_dir, limit=10_000)
    assert len(big.examples) == N_TRAIN
    parts = load_split(get_task("mnli"), "dev", glue_dir, limit=3)
    assert [len(p.examples) for p in parts] == [3, 3]


def test_fingerprint_follows_contents(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\na\t1\n")
    first = read_tsv(get_task("sst2"), path).fingerprint
    assert read_tsv(get_task("sst2"), path).fingerprint == first
    path.write_text("sentence\tlabel\na\t0\n")
    assert read_tsv(get_task("sst2"), path).fingerprint != first


@pytest.mark.parametrize("alias, name", [("SST-2", "sst2"), ("sst-2", "sst2"), ("STS-B", "stsb"),
                                         ("MNLI", "mnli"), ("mnli-mm", "mnli"), ("CoLA", "cola"),
                                         ("RTE", "rte")])
def test_aliases(alias, name):
    assert get_task(alias) is GLUE_TASKS[name]


def test_alias_reads_the_same_data(glue_dir):
    a = load_split(get_task("SST-2"), "dev", glue_dir)[0]
    b = load_split(get_task("sst2"), "dev", glue_dir)[0]
    assert _as_tuples(a) == _as_tuples(b)


def test_unknown_task_and_split():
    with pytest.raises(UsageError, match="--task sts: unknown task"):
        get_task("sts")
    with pytest.raises(UsageError, match="--split validation: unknown split"):
        load_split(get_task("sst2"), "validation", "/")


def test_task_shapes():
    assert {n: t.num_labels for n, t in GLUE_TASKS.items()} == {
        "cola": 2, "sst2": 2, "mrpc": 2, "stsb": 1, "qqp": 2, "mnli": 3, "qnli": 2, "rte": 2, "wnli": 2}
    assert [n for n, t in GLUE_TASKS.items() if t.is_regression] == ["stsb"]


def test_task_folder_given_directly(glue_dir):
    """--data-dir may point at one task's folder instead of the glue_data root."""
    (split,) = load_split(get_task("rte"), "dev", glue_dir / "RTE")
    assert len(split.examples) == N_DEV


def test_missing_file_names_the_expected_path(tmp_path):
    with pytest.raises(DataError, match=r"RTE/dev\.tsv: file not found"):
        load_split(get_task("rte"), "dev", tmp_path)


# --- where the data comes from ------------------------------------------------------------------------------


def test_resolve_data_dir(glue_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("PKD_DATA", raising=False)
    assert resolve_data_dir(None) is None
    assert resolve_data_dir(glue_dir) == glue_dir
    assert resolve_data_dir(str(glue_dir)) == glue_dir
    monkeypatch.setenv("PKD_DATA", str(glue_dir))
    assert resolve_data_dir(None) == glue_dir
    assert resolve_data_dir(tmp_path) == tmp_path  # an explicit --data-dir wins over $PKD_DATA
    monkeypatch.setenv("PKD_DATA", "")
    assert resolve_data_dir(None) is None  # empty means unset
    with pytest.raises(UsageError, match=r"--data-dir .*nope: not a directory"):
        resolve_data_dir(tmp_path / "nope")
    monkeypatch.setenv("PKD_DATA", str(tmp_path / "gone"))
    with pytest.raises(UsageError, match=r"\$PKD_DATA .*gone: not a directory"):
        resolve_data_dir(None)


def test_load_split_uses_pkd_data(glue_dir, monkeypatch):
    import datasets

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub must not be used when $PKD_DATA is set")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    monkeypatch.setenv("PKD_DATA", str(glue_dir))
    (split,) = load_split(get_task("sst2"), "dev", None)
    assert Path(split.source) == glue_dir / "SST-2" / "dev.tsv"
    assert len(split.examples) == N_DEV


def _fake_hub(monkeypatch, tables: dict[tuple[str, str], dict], features):
    """Replace datasets.load_dataset with in-memory nyu-mll/glue tables keyed by (config, split)."""
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(tables[(name, split)], features=features)

    monkeypatch.delenv("PKD_DATA", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_mnli_maps_label_names_into_tsv_order(monkeypatch):
    from datasets import ClassLabel, Features, Value

    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"]),
                         "idx": Value("int32")})
    table = {"premise": ["p0", "p1", "p2", "p3"], "hypothesis": ["h0", "h1", "h2", "h3"],
             "label": [0, 1, 2, 0], "idx": [10, 11, 12, 13]}
    calls = _fake_hub(monkeypatch, {("mnli", "train"): table, ("mnli", "validation_matched"): table,
                                    ("mnli", "validation_mismatched"): table}, features)
    (train,) = load_split(get_task("mnli"), "train", None)
    assert calls == [("nyu-mll/glue", "mnli", "train")]
    # Hub entailment(0) / neutral(1) / contradiction(2) -> ours contradiction(0) / entailment(1) / neutral(2).
    assert [(e.texts, e.label, e.index) for e in train.examples] == [
        (("p0", "h0"), 1, "10"), (("p1", "h1"), 2, "11"), (("p2", "h2"), 0, "12"), (("p3", "h3"), 1, "13")]
    assert train.labeled and train.source == "hub:nyu-mll/glue/mnli/train"
    parts = load_split(get_task("mnli"), "dev", None, limit=2)
    assert calls[1:] == [("nyu-mll/glue", "mnli", "validation_matched"),
                         ("nyu-mll/glue", "mnli", "validation_mismatched")]
    assert [p.name for p in parts] == ["dev_matched", "dev_mismatched"]
    assert [[e.label for e in p.examples] for p in parts] == [[1, 2], [1, 2]]


def test_hub_unlabeled_test_rows_become_none(monkeypatch):
    from datasets import ClassLabel, Features, Value

    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["entailment", "neutral", "contradiction"]),
                         "idx": Value("int32")})
    table = {"premise": ["p0", "p1"], "hypothesis": ["h0", "h1"], "label": [-1, -1], "idx": [0, 1]}
    tables = {("mnli", "test_matched"): table, ("mnli", "test_mismatched"): table}
    calls = _fake_hub(monkeypatch, tables, features)
    parts = load_split(get_task("mnli"), "test", None)
    assert [c[2] for c in calls] == ["test_matched", "test_mismatched"]
    for part in parts:
        assert [(e.label, e.index) for e in part.examples] == [(None, "0"), (None, "1")]
        assert not part.labeled


@pytest.mark.parametrize("task, names, text_cols, hub_labels, ours", [
    ("rte", ["entailment", "not_entailment"], ("sentence1", "sentence2"), [0, 1, -1], [0, 1, None]),
    ("qnli", ["entailment", "not_entailment"], ("question", "sentence"), [1, 0], [1, 0]),
    ("wnli", ["not_entailment", "entailment"], ("sentence1", "sentence2"), [0, 1], [0, 1]),
    ("sst2", ["negative", "positive"], ("sentence",), [1, 0], [1, 0]),
    ("cola", ["unacceptable", "acceptable"], ("sentence",), [0, 1], [0, 1]),
    ("mrpc", ["not_equivalent", "equivalent"], ("sentence1", "sentence2"), [1, 0], [1, 0]),
    ("qqp", ["not_duplicate", "duplicate"], ("question1", "question2"), [0, 1], [0, 1]),
])
def test_hub_classification_tasks(monkeypatch, task, names, text_cols, hub_labels, ours):
    from datasets import ClassLabel, Features, Value

    features = Features({**{c: Value("string") for c in text_cols}, "label": ClassLabel(names=names),
                         "idx": Value("int32")})
    n = len(hub_labels)
    table = {**{c: [f"{c}{i}" for i in range(n)] for c in text_cols},
             "label": hub_labels, "idx": list(range(n))}
    _fake_hub(monkeypatch, {(task, "validation"): table}, features)
    (dev,) = load_split(get_task(task), "dev", None)
    assert [e.label for e in dev.examples] == ours
    assert [e.texts for e in dev.examples] == [tuple(f"{c}{i}" for c in text_cols) for i in range(n)]


def test_hub_stsb_regression(monkeypatch):
    from datasets import Features, Value

    features = Features({"sentence1": Value("string"), "sentence2": Value("string"),
                         "label": Value("float32"), "idx": Value("int32")})
    table = {"sentence1": ["a", "b", "c"], "sentence2": ["d", "e", "f"], "label": [4.5, 0.0, -1.0],
             "idx": [0, 1, 2]}
    _fake_hub(monkeypatch, {("stsb", "validation"): table}, features)
    (dev,) = load_split(get_task("stsb"), "dev", None)
    assert [e.label for e in dev.examples] == [4.5, 0.0, None]


def test_hub_failure_is_one_data_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network\nsecond line")

    monkeypatch.delenv("PKD_DATA", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as info:
        load_split(get_task("rte"), "dev", None)
    msg = str(info.value)
    assert "nyu-mll/glue rte dev" in msg and "--data-dir" in msg and "\n" not in msg


# --- the real data, where this machine has it ---------------------------------------------------------------

SHARED = Path("/work/shared/data/glue")


@pytest.mark.skipif(not SHARED.is_dir(), reason="no shared GLUE data on this machine")
@pytest.mark.parametrize("task, split, rows", [("sst2", "dev", 872), ("mrpc", "train", 3668),
                                               ("rte", "dev", 277), ("qnli", "dev", 5463)])
def test_real_glue_sizes(task, split, rows):
    t = get_task(task)
    if not (SHARED / t.folder / f"{split}.tsv").is_file():
        pytest.skip(f"{t.folder}/{split}.tsv not present")
    (part,) = load_split(t, split, SHARED)
    assert len(part.examples) == rows
    assert part.labeled
    assert {e.label for e in part.examples} == {0, 1}
    assert all(len(e.texts) == len(t.text_columns) for e in part.examples)


# --- arbitrary bytes: a Split or a DataError, nothing else --------------------------------------------------

_HEADERS = [b"sentence\tlabel\n", b"\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n",
            b"index\tsentence1\tsentence2\tscore\n", b"index\tsentence1\tsentence2\tgold_label\n",
            b"index\tsentence\n", b"index\tsentence1\tsentence2\n", b""]
_FIELDS = ["0", "1", "2.5", "nan", "entailment", "neutral", "x", "", "\r", "\t", "\ufeff"]
_ROW = st.lists(st.sampled_from(_FIELDS), max_size=6).map(lambda xs: "\t".join(xs).encode())
_BYTES = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.sampled_from(_HEADERS), st.binary(max_size=200)).map(lambda t: t[0] + t[1]),
    st.tuples(st.sampled_from(_HEADERS), st.lists(_ROW, max_size=5)).map(lambda t: t[0] + b"\n".join(t[1])),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_BYTES, task=st.sampled_from(["sst2", "cola", "mrpc", "stsb", "mnli"]),
       part=st.sampled_from(["train", "dev", "test", "test_matched"]), limit=st.sampled_from([None, 1, 3]))
def test_read_tsv_arbitrary_bytes(data, task, part, limit):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{part}.tsv"
        path.write_bytes(data)
        try:
            split = read_tsv(get_task(task), path, part, limit)
        except DataError as e:
            assert str(e).startswith(str(path))  # every data error names the file
            assert "\n" not in str(e)
            return
    assert isinstance(split, Split)
    assert split.examples and (limit is None or len(split.examples) <= limit)
    for e in split.examples:
        assert all(isinstance(t, str) for t in e.texts)
        if part.startswith("test") and e.label is None:
            continue
        if task == "stsb":
            assert isinstance(e.label, float) and math.isfinite(e.label)
        else:
            assert e.label in range(get_task(task).num_labels)
