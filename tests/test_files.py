"""Tasks defined by their data (pkd.files): each label kind end to end on a tiny model, the dev hold-out, the spec
run.json records, column guessing, and the metrics and losses of multi-label tasks."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import WORDS

from pkd.cli import main
from pkd.config import DataConfig, LossConfig
from pkd.data import load_split, resolve_task
from pkd.errors import DataError, UsageError
from pkd.files import holdout_rows
from pkd.losses import kd_loss, pkd_loss
from pkd.metrics import compute_metrics

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TINY = ["--epochs", "1", "--batch-size", "16", "--lr", "2e-3", "--max-seq-len", "24", "--seed", "0", "--quiet"]
GOOD, BAD = WORDS[:5], WORDS[5:10]


@pytest.fixture(scope="module", autouse=True)
def data_cache(tmp_path_factory):
    """The datasets library's Arrow copies go under $PKD_CACHE/datasets: a temporary one here (module-scoped, so
    that it is set before the module's other fixtures run)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PKD_CACHE", str(tmp_path_factory.mktemp("pkd-cache")))
        yield


def sentence(rng: random.Random, good: bool) -> str:
    return f"the {rng.choice(['movie', 'film', 'plot'])} was very {rng.choice(GOOD if good else BAD)} ."


def run(capsys, *argv) -> str:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def pipeline(capsys, tmp_path: Path, tiny_bert: Path, data_flags: list, score_key: str) -> dict:
    """finetune -> distill -> compare -> evaluate -> predict -> export -> bench -> report, data flags given to
    finetune only."""
    teacher, student, comparison = tmp_path / "teacher", tmp_path / "student", tmp_path / "compare"
    cache = ["--cache-dir", tmp_path / "cache"]
    run(capsys, "finetune", "--model", tiny_bert, "--out", teacher, *data_flags, *TINY)
    run(capsys, "distill", "--teacher", teacher, "--student-layers", "2", "--out", student, *cache, *TINY)
    run(capsys, "compare", "--teacher", teacher, "--student-layers", "2", "--methods", "ft,kd", "--seeds", "1",
        "--out", comparison, *cache, *TINY)
    metrics = json.loads(run(capsys, "evaluate", student, "--json"))
    best = json.loads((student / "run.json").read_text())["result"]
    assert metrics[score_key] == pytest.approx(best[score_key], abs=1e-6)
    assert metrics["score"] == pytest.approx(metrics[score_key])
    export = json.loads(run(capsys, "export", student, "--out", tmp_path / "onnx", "--evaluate"))
    assert export["parity"]["max_abs_logit_diff"] < 1e-3
    assert export["dev"]["score"] == pytest.approx(metrics["score"], abs=1.0)
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["parity_data"].startswith(
        json.loads((student / "run.json").read_text())["file_task"]["dev"] or
        json.loads((student / "run.json").read_text())["file_task"]["train"])  # the recorded dev data
    bench = run(capsys, "bench", student, "--seq-len", "8", "--repeats", "1", "--threads", "1",
                "--batch-sizes", "1")
    assert "student" in bench
    run(capsys, "report", comparison / "*", student, "--out", tmp_path / "report")
    assert (tmp_path / "report" / "report.md").is_file()
    return json.loads((teacher / "run.json").read_text())


def test_single_text_csv_with_string_labels_end_to_end(tiny_bert, tmp_path, capsys):
    record = pipeline(capsys, tmp_path, tiny_bert, ["--train-file", EXAMPLES / "tickets.csv"], "accuracy")
    spec = record["file_task"]
    assert spec["labels"] == ["billing", "bug", "login", "shipping"]
    assert spec["label_kind"] == "classification" and spec["text_columns"] == ["text"]
    assert spec["id_column"] == "" and spec["metric"] == "accuracy"
    assert spec["train"] == str(EXAMPLES / "tickets.csv")
    assert len(spec["sha256"]["train"]) == 64
    assert spec["holdout"]["rows"] == 40 and spec["holdout"]["of"] == 400
    assert record["num_train_examples"] == 360
    config = json.loads((tmp_path / "teacher" / "config.json").read_text())
    assert config["id2label"] == {"0": "billing", "1": "bug", "2": "login", "3": "shipping"}
    # predict: the recorded task, a new file with an id column, label names and probabilities
    new = tmp_path / "new.csv"
    new.write_text("ticket_id,text\nA1,\"I was charged twice, please help\"\nA2,the app crashes\n")
    out = tmp_path / "pred.tsv"
    run(capsys, "predict", tmp_path / "student", "--test-file", new, "--id-column", "ticket_id", "--out", out,
        "--probabilities")
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["id", "prediction", "p_billing", "p_bug", "p_login", "p_shipping"]
    assert [r[0] for r in rows[1:]] == ["A1", "A2"]
    assert all(r[1] in spec["labels"] for r in rows[1:])
    assert all(abs(sum(float(x) for x in r[2:]) - 1) < 1e-3 for r in rows[1:])


def write_pairs_jsonl(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            a = sentence(rng, True)
            same = rng.random() < 0.5
            score = round(rng.uniform(3.5, 5.0) if same else rng.uniform(0.0, 1.5), 2)
            f.write(json.dumps({"id": f"p{i}", "sentence1": a, "sentence2": a if same else sentence(rng, False),
                                "score": score}) + "\n")
    return path


def test_pair_text_jsonl_regression_end_to_end(tiny_bert, tmp_path, capsys):
    train = write_pairs_jsonl(tmp_path / "train.jsonl", 96, 0)
    dev = write_pairs_jsonl(tmp_path / "dev.jsonl", 24, 1)
    record = pipeline(capsys, tmp_path, tiny_bert, ["--train-file", train, "--dev-file", dev,
                                                    "--label-column", "score"], "pearson")
    spec = record["file_task"]
    assert spec["label_kind"] == "regression" and spec["labels"] == []
    assert spec["text_columns"] == ["sentence1", "sentence2"] and spec["id_column"] == "id"
    assert spec["holdout"] == {} and set(spec["sha256"]) == {"train", "dev"}
    out = tmp_path / "pred.tsv"
    run(capsys, "predict", tmp_path / "student", "--test-file", dev, "--out", out)
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["id", "prediction"] and rows[1][0] == "p0"
    float(rows[1][1])


def test_multi_label_parquet_end_to_end(tiny_bert, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    texts, tags = [], []
    for _ in range(120):
        good, long = rng.random() < 0.5, rng.random() < 0.5
        texts.append(sentence(rng, good) + (" and it was big" if long else ""))
        tags.append([t for t, on in (("positive", good), ("long", long)) if on])
    pq.write_table(pa.table({"text": texts, "tags": tags}), tmp_path / "tags.parquet")
    record = pipeline(capsys, tmp_path, tiny_bert, ["--train-file", tmp_path / "tags.parquet",
                                                    "--label-column", "tags"], "f1_micro")
    spec = record["file_task"]
    assert spec["label_kind"] == "multi-label" and spec["labels"] == ["long", "positive"]
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    metrics = json.loads((tmp_path / "student" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"f1_micro", "f1_macro", "exact_match"} <= set(metrics)
    out = tmp_path / "pred.tsv"
    run(capsys, "predict", tmp_path / "student", "--test-file", tmp_path / "tags.parquet", "--probabilities",
        "--out", out)
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["id", "prediction", "p_long", "p_positive"] and len(rows) == 121
    for row in rows[1:]:
        on = {name for name, q in zip(("long", "positive"), row[2:], strict=True) if float(q) > 0.5}
        assert set(filter(None, row[1].split(","))) == on  # a label is on when its sigmoid is above 0.5


# ------------------------------------------------------------------------------- the task, without training


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_dev_hold_out_is_stratified_seeded_and_never_in_train(tmp_path):
    task = resolve_task(None, DataConfig(train_file=str(EXAMPLES / "tickets.csv"), dev_fraction=0.2, split_seed=3))
    train, dev = load_split(task, "train")[0], load_split(task, "dev")[0]
    assert not {e.index for e in train.examples} & {e.index for e in dev.examples}
    assert len(train.examples) + len(dev.examples) == 400
    assert len(dev.examples) == task.files.holdout["rows"] == 80
    counts = np.bincount([e.label for e in dev.examples]) / np.bincount([e.label for e in train.examples])
    assert np.allclose(counts, 0.25, atol=0.03)  # each class's share held out
    again = resolve_task(None, DataConfig(train_file=str(EXAMPLES / "tickets.csv"), dev_fraction=0.2, split_seed=3))
    assert [e.index for e in load_split(again, "dev")[0].examples] == [e.index for e in dev.examples]
    other = resolve_task(None, DataConfig(train_file=str(EXAMPLES / "tickets.csv"), dev_fraction=0.2, split_seed=4))
    assert [e.index for e in load_split(other, "dev")[0].examples] != [e.index for e in dev.examples]
    assert train.fingerprint != load_split(other, "train")[0].fingerprint  # a different cache


def test_holdout_keeps_a_row_of_each_class_in_train():
    rows = holdout_rows(np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]), 12, 0.5, 0)
    assert len(rows) == 1 + 5 and set(rows) & {0, 1} and not {0, 1} <= set(rows)


def test_valid_csv_quotes_crlf_and_bom_are_read(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text,label\r\n1,"a, b",x\r\n2,"two\r\nlines",y\r\n3,plain,x\r\n'
                     b'4,"say ""hi""",y\r\n')
    task = resolve_task(None, DataConfig(train_file=str(path), dev_file=str(path)))
    examples = load_split(task, "train")[0].examples
    assert [e.texts[0] for e in examples] == ["a, b", "two\r\nlines", "plain", 'say "hi"']
    assert [e.index for e in examples] == ["1", "2", "3", "4"] and task.labels == ("x", "y")


def test_texts_that_pandas_would_call_missing_are_texts(tmp_path):
    path = write_csv(tmp_path / "na.csv", ["text", "label"], [["NA", "x"], ["null", "y"], ["None", "x"]])
    task = resolve_task(None, DataConfig(train_file=str(path), dev_file=str(path)))
    assert [e.texts[0] for e in load_split(task, "train")[0].examples] == ["NA", "null", "None"]


def test_tsv_and_integer_labels(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("sentence\tlabel\na, b\t1\nc\t0\nd\t10\n")
    task = resolve_task(None, DataConfig(train_file=str(path), dev_file=str(path)))
    assert task.labels == ("0", "1", "10") and task.metrics == ("accuracy", "f1_macro")
    assert [e.label for e in load_split(task, "train")[0].examples] == [1, 0, 2]


def test_label_sep_multi_label_and_metric_choice(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["text", "label"], [["a", "x|y"], ["b", "y"], ["c", "z| x"]])
    task = resolve_task(None, DataConfig(train_file=str(path), dev_file=str(path), label_sep="|",
                                         metric="exact_match"))
    assert task.multi_label and task.labels == ("x", "y", "z") and task.score_metric == "exact_match"
    assert [e.label for e in load_split(task, "train")[0].examples] == [(1, 1, 0), (0, 1, 0), (1, 0, 1)]
    with pytest.raises(UsageError, match="--metric pearson: not a multi-label metric"):
        resolve_task(None, DataConfig(train_file=str(path), label_sep="|", metric="pearson"))


def test_a_multi_label_row_with_no_labels_is_the_empty_set(tmp_path):
    """Issue 35, item 5: the same three rows, the middle one without labels, in CSV (an empty cell, with
    --label-sep), JSON Lines ([]) and Parquet (an empty list and a null); none is refused as an "empty label"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_file = write_csv(tmp_path / "m.csv", ["text", "label"], [["a", "x|y"], ["b", ""], ["c", "y"]])
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": v}) + "\n" for t, v in
                             (("a", ["x", "y"]), ("b", []), ("c", ["y"]))))
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [["x", "y"], [], ["y"]]}), tmp_path / "m.parquet")
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": pa.array([["x", "y"], None, ["y"]])}),
                   tmp_path / "null.parquet")
    files = ((csv_file, "|"), (jsonl, None), (tmp_path / "m.parquet", None), (tmp_path / "null.parquet", None))
    for path, sep in files:
        task = resolve_task(None, DataConfig(train_file=str(path), dev_file=str(path), label_sep=sep))
        assert task.multi_label and task.labels == ("x", "y"), path
        assert [e.label for e in load_split(task, "train")[0].examples] == [(1, 1), (0, 0), (0, 1)], path
    classification = write_csv(tmp_path / "c.csv", ["text", "label"], [["a", "x"], ["b", ""], ["c", "y"]])
    with pytest.raises(DataError, match="row 2, column 'label': empty label"):
        resolve_task(None, DataConfig(train_file=str(classification)))


def test_label_kind_override(tmp_path):
    path = write_csv(tmp_path / "r.csv", ["text", "label"], [["a", 1], ["b", 2], ["c", 3]])
    assert resolve_task(None, DataConfig(train_file=str(path), dev_file=str(path))).labels == ("1", "2", "3")
    task = resolve_task(None, DataConfig(train_file=str(path), dev_file=str(path), label_kind="regression"))
    assert task.is_regression and [e.label for e in load_split(task, "train")[0].examples] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("columns, expected", [
    (["text", "label"], ("text",)),
    (["id", "question", "sentence", "label"], ("question", "sentence")),
    (["body", "label"], ("body",)),
])
def test_text_columns_are_guessed_when_unambiguous(tmp_path, columns, expected):
    path = write_csv(tmp_path / "g.csv", columns, [[f"{c}{i}" if c != "label" else i % 2 for c in columns]
                                                   for i in range(4)])
    assert resolve_task(None, DataConfig(train_file=str(path))).text_columns == expected


def test_ambiguous_text_columns_are_an_error_listing_them(tmp_path):
    path = write_csv(tmp_path / "g.csv", ["title", "body", "label"], [["t", "b", i % 2] for i in range(4)])
    with pytest.raises(DataError, match=r"cannot tell which column holds the text \(columns: title, body, label\)"):
        resolve_task(None, DataConfig(train_file=str(path)))
    assert resolve_task(None, DataConfig(train_file=str(path), text_columns="title,body")).text_columns == \
        ("title", "body")


def test_saved_dataset_directory(tmp_path):
    import datasets

    rng = random.Random(0)
    rows = {"text": [sentence(rng, i % 2 == 0) for i in range(20)], "label": ["pos", "neg"] * 10}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                          "validation": datasets.Dataset.from_dict(rows)}).save_to_disk(tmp_path / "ds")
    task = resolve_task(None, DataConfig(dataset=str(tmp_path / "ds")))
    assert task.name == "ds" and task.labels == ("neg", "pos") and task.files.holdout == {}
    assert len(load_split(task, "dev")[0].examples) == 20
    with pytest.raises(UsageError, match="no test data"):
        load_split(task, "test")


def test_a_dataset_class_label_keeps_its_names_and_order(tmp_path):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["positive", "negative"])})
    rows = {"sentence": ["good", "bad", "fine", "awful"], "label": [0, 1, 0, 1]}
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict(rows, features=features),
        "test": datasets.Dataset.from_dict({"sentence": ["a", "b"], "label": [-1, -1]}, features=features),
    }).save_to_disk(tmp_path / "ds")
    task = resolve_task(None, DataConfig(dataset=str(tmp_path / "ds"), dev_fraction=0.5))
    assert task.labels == ("positive", "negative")
    train = load_split(task, "train")[0].examples + load_split(task, "dev")[0].examples
    assert sorted((e.texts[0], e.label) for e in train) == [("awful", 1), ("bad", 1), ("fine", 0), ("good", 0)]
    assert [e.label for e in load_split(task, "test")[0].examples] == [None, None]


def test_task_and_train_file_together_are_refused(tmp_path):
    with pytest.raises(UsageError, match="--task sst2"):
        resolve_task("sst2", DataConfig(train_file=str(EXAMPLES / "tickets.csv")))


def test_a_recorded_task_refuses_a_file_with_labels_the_model_lacks(tmp_path):
    task = resolve_task(None, DataConfig(train_file=str(EXAMPLES / "tickets.csv")))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    from dataclasses import asdict

    (run_dir / "run.json").write_text(json.dumps({"task": task.name, "file_task": asdict(task.files)}))
    other = write_csv(tmp_path / "o.csv", ["text", "label"], [["a", "billing"], ["b", "refund"]])
    recorded = resolve_task(None, DataConfig(dev_file=str(other)), run_dir)
    assert recorded.labels == task.labels and recorded.files.dev == str(other)
    with pytest.raises(DataError, match=r"row 2, column 'label': label 'refund' is not one of the training labels"):
        load_split(recorded, "dev")


# ----------------------------------------------------------------------------- multi-label metrics and loss


def test_multi_label_metrics():
    from pkd.tasks import Task

    task = Task("t", "", ("text",), "label", ("a", "b"), ("f1_micro", "f1_macro", "exact_match"), multi_label=True,
                score_metric="f1_micro")
    y = np.array([[1, 0], [1, 1], [0, 1]])
    p = np.array([[1, 0], [1, 0], [0, 1]])
    m = compute_metrics(task, p, y)
    assert m["exact_match"] == pytest.approx(200 / 3)
    assert m["f1_micro"] == pytest.approx(100 * 2 * 3 / (2 * 3 + 1))  # tp 3, fn 1
    assert m["f1_macro"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert m["score"] == m["f1_micro"]


def test_macro_f1_single_label():
    from pkd.tasks import Task

    task = Task("t", "", ("text",), "label", ("a", "b", "c"), ("accuracy", "f1_macro"), score_metric="accuracy")
    m = compute_metrics(task, np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))
    assert m["f1_macro"] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3) / 3) and m["score"] == 75.0


def test_multi_label_kd_is_zero_when_equal_and_scales_with_temperature():
    torch.manual_seed(0)
    t, s = torch.randn(4, 3), torch.randn(4, 3)
    assert kd_loss(t, t, 2.0, multi_label=True).item() == pytest.approx(0.0, abs=1e-6)
    p_t, p_s = torch.sigmoid(t / 2), torch.sigmoid(s / 2)
    kl = p_t * (p_t / p_s).log() + (1 - p_t) * ((1 - p_t) / (1 - p_s)).log()
    assert kd_loss(s, t, 2.0, multi_label=True).item() == pytest.approx(4 * kl.mean().item(), rel=1e-4)
    labels = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])
    parts = pkd_loss(LossConfig(alpha=0.5, temperature=2.0), s, labels, False, t, multi_label=True)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(s, labels)
    assert parts["ce"].item() == pytest.approx(bce.item(), rel=1e-5)
    assert parts["loss"].item() == pytest.approx(0.5 * bce.item() + 0.5 * parts["kd"].item(), rel=1e-5)


@pytest.mark.parametrize("labels", [2, 8, 32])
def test_multi_label_kd_and_ce_share_one_scale_whatever_the_number_of_labels(labels):
    """Issue 35, item 4: with a one-hot (saturated) teacher at T = 1, KD is the same binary cross-entropy as CE, so
    KD / CE is 1, as for a softmax; KD summed over labels while CE averaged made it C (2, 8, 32)."""
    torch.manual_seed(labels)
    gold = (torch.rand(16, labels) < 0.3).float()
    teacher = (gold * 2 - 1) * 40.0  # sigmoid(+-40) is 0/1 to fp32 precision: the teacher says the gold labels
    student = torch.randn(16, labels)
    parts = pkd_loss(LossConfig(alpha=0.5, temperature=1.0, beta=0.0), student, gold, False, teacher,
                     multi_label=True)
    assert (parts["kd"] / parts["ce"]).item() == pytest.approx(1.0, rel=1e-4)
    single = pkd_loss(LossConfig(alpha=0.5, temperature=1.0, beta=0.0), student, gold.argmax(-1), False,
                      torch.nn.functional.one_hot(gold.argmax(-1), labels).float() * 40.0)
    assert (single["kd"] / single["ce"]).item() == pytest.approx(1.0, rel=1e-4)


# ------------------------------------------------------------------------------------------------ bad input


def ticket_rows(n: int = 8) -> list[list]:
    return [[f"t{i}", f"the film was very {WORDS[i % 10]} .", ["billing", "bug"][i % 2]] for i in range(n)]


def edit_rows(row: int, column: int, value) -> list[list]:
    rows = ticket_rows()
    rows[row][column] = value
    return rows


def write_bytes(name: str, data: bytes):
    def write(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return write


def bad_csv(rows: list[list], name: str = "bad.csv", header=("id", "text", "label")):
    return lambda d: write_csv(d / name, list(header), rows)


def mixed_jsonl(d: Path) -> Path:
    (d / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": "pos"}\n')
    return d / "bad.jsonl"


# (what the file is, extra flags, what the one error line must name)
BAD_INPUTS = {
    "missing file": (lambda d: d / "nowhere.csv", [], ["nowhere.csv: file not found"]),
    "unknown format": (write_bytes("data.xlsx", b"PK\x03\x04"), [], ["data.xlsx: unknown format .xlsx"]),
    "missing label column": (bad_csv(ticket_rows()), ["--label-column", "intent"],
                             ["bad.csv: no label column 'intent' (columns: id, text, label)"]),
    "missing text column": (bad_csv(ticket_rows()), ["--text-columns", "body"],
                            ["bad.csv: no text column 'body' (columns: id, text, label)"]),
    "empty text": (bad_csv(edit_rows(2, 1, "  ")), [], ["bad.csv: row 3, column 'text': empty text"]),
    "missing text": (bad_csv(edit_rows(4, 1, "")), [], ["bad.csv: row 5, column 'text': empty text"]),
    "mixed labels": (bad_csv(edit_rows(1, 2, "7")), [],
                     ["bad.csv: column 'label': mixed numeric and string labels (row 2: '7', row 1: 'billing')"]),
    "mixed labels in JSON": (mixed_jsonl, [], ["bad.jsonl: column 'label': mixed numeric and string labels",
                                               "row 1: 1", "row 2: 'pos'"]),
    "one class": (bad_csv([r[:2] + ["bug"] for r in ticket_rows()]), [],
                  ["bad.csv: column 'label': only one class ('bug')"]),
    "not a number": (bad_csv([r[:2] + [f"{i}.5"] for i, r in enumerate(ticket_rows())][:5] + [["x", "y", "n/a"]]),
                     [], ["bad.csv: row 6, column 'label': label 'n/a' is not a number"]),
    "not a number, kind given": (bad_csv(ticket_rows()), ["--label-kind", "regression"],
                                 ["bad.csv: row 1, column 'label': label 'billing' is not a number"]),
    "empty label": (bad_csv(edit_rows(3, 2, "")), [], ["bad.csv: row 4, column 'label': empty label"]),
    "duplicate ids": (bad_csv(edit_rows(5, 0, "t1")), [],
                      ["bad.csv: rows 2 and 6, column 'id': duplicate id 't1'"]),
    "not UTF-8": (write_bytes("bad.csv", "text,label\ncaf\u00e9,x\nb,y\n".encode("cp1252")), [],
                  ["bad.csv: not UTF-8 text (byte 14: 0xe9)", "iconv -f cp1252 -t utf-8"]),
    "header only": (write_bytes("bad.csv", b"text,label\n"), [], ["bad.csv: no data rows"]),
    "empty file": (write_bytes("bad.csv", b""), [], ["bad.csv: empty file"]),
    "ragged row": (write_bytes("bad.csv", b"text,label\na,x\nb,y,extra\nc,x\n"), [],
                   ["bad.csv: cannot read as csv", "line 3"]),
    "three text columns": (bad_csv(ticket_rows()), ["--text-columns", "id,text,label"],
                           ["--text-columns id,text,label: one column or a pair"]),
    "no list labels": (bad_csv(ticket_rows()), ["--label-kind", "multi-label"],
                       ["bad.csv: column 'label' holds no lists; pass --label-sep"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_training_file_is_one_line_exit_2_and_nothing_written(case, tiny_bert, tmp_path, capsys):
    make, flags, needles = BAD_INPUTS[case]
    data = tmp_path / "data"
    data.mkdir()
    path = make(data)
    capsys.readouterr()
    code = main(["finetune", "--model", str(tiny_bert), "--train-file", str(path),
                 "--out", str(tmp_path / "runs" / "t"), *flags, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("pkd: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "runs").exists()


def test_a_dev_label_train_never_had_is_named(tiny_bert, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", ["id", "text", "label"], ticket_rows())
    dev = write_csv(tmp_path / "dev.csv", ["id", "text", "label"], edit_rows(6, 2, "refund"))
    code = main(["finetune", "--model", str(tiny_bert), "--train-file", str(train), "--dev-file", str(dev),
                 "--out", str(tmp_path / "runs" / "t"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert "dev.csv: row 7, column 'label': label 'refund' is not one of the training labels (billing, bug)" in err
    assert not (tmp_path / "runs").exists()


def test_a_test_label_train_never_had_is_named(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["id", "text", "label"], ticket_rows())
    test = write_csv(tmp_path / "test.csv", ["id", "text", "label"], edit_rows(0, 2, "refund"))
    task = resolve_task(None, DataConfig(train_file=str(train), test_file=str(test)))
    with pytest.raises(DataError, match=r"test.csv: row 1, column 'label': label 'refund' is not one of"):
        load_split(task, "test")
    unlabeled = write_csv(tmp_path / "u.csv", ["id", "text"], [r[:2] for r in ticket_rows()])
    task = resolve_task(None, DataConfig(train_file=str(train), test_file=str(unlabeled)))
    assert [e.label for e in load_split(task, "test")[0].examples] == [None] * 8


def test_without_task_or_data_the_error_says_what_to_pass(tiny_bert, tmp_path, capsys):
    code = main(["finetune", "--model", str(tiny_bert), "--out", str(tmp_path / "runs" / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "pass --task (a built-in task) or --train-file/--dataset (your own data)" in err


# ------------------------------------------------------------------------------------ what a run remembers


@pytest.fixture(scope="module")
def tickets_teacher(tiny_bert, tmp_path_factory) -> Path:
    import pkd

    out = tmp_path_factory.mktemp("tickets") / "teacher"
    pkd.finetune(None, out, model=str(tiny_bert), train_file=str(EXAMPLES / "tickets.csv"), quiet=True, epochs=1,
                 batch_size=32, lr=2e-3, max_seq_len=24, seed=0)
    return out


def test_the_teacher_cache_is_keyed_by_the_file_contents(tickets_teacher, tmp_path):
    import shutil

    import pkd

    copy = Path(shutil.copy(EXAMPLES / "tickets.csv", tmp_path / "copy.csv"))
    options = dict(cache_dir=tmp_path / "cache", max_seq_len=24, max_train_examples=64)
    first = pkd.build_cache(str(tickets_teacher), None, [2], **options).path
    assert pkd.build_cache(str(tickets_teacher), None, [2], data=DataConfig(train_file=str(copy)),
                           **options).path == first  # the same contents elsewhere: the same cache
    # An edited training file with the teacher's hold-out is refused (test_a_changed_training_file_...); with an
    # explicit dev file it trains, and the cache follows the contents.
    own_dev = DataConfig(train_file=str(copy), dev_file=str(EXAMPLES / "tickets.csv"))
    before = pkd.build_cache(str(tickets_teacher), None, [2], data=own_dev, **options).path
    lines = copy.read_text().splitlines()
    lines[1] = lines[1].replace("Hello", "Hi")
    copy.write_text("\n".join(lines) + "\n")
    assert pkd.build_cache(str(tickets_teacher), None, [2], data=own_dev, **options).path not in (first, before)
    whole = pkd.build_cache(str(tickets_teacher), None, [2], cache_dir=tmp_path / "cache", max_seq_len=24)
    assert len(whole) == 360  # the 40 held-out dev rows never reach the cache


def test_a_changed_training_file_under_a_recorded_holdout_is_refused(tiny_bert, tmp_path, capsys):
    """Issue 35, item 2: rows appended to the training file after the teacher was trained used to move the dev
    hold-out silently (15 of 21 new dev rows had been teacher training rows). Now distill and evaluate refuse in
    one line, naming the file and both digests; an explicit --dev-file goes on."""
    import pkd

    train = write_csv(tmp_path / "train.csv", ["text", "label"], [r[1:] for r in ticket_rows(200)])
    teacher = tmp_path / "teacher"
    pkd.finetune(None, teacher, model=str(tiny_bert), train_file=str(train), quiet=True, epochs=1, batch_size=32,
                 lr=2e-3, max_seq_len=24, seed=0)
    recorded = json.loads((teacher / "run.json").read_text())["file_task"]
    with open(train, "a", newline="") as f:
        csv.writer(f).writerows(r[1:] for r in ticket_rows(220)[200:])
    capsys.readouterr()
    for argv in (["evaluate", teacher],
                 ["distill", "--teacher", teacher, "--student-layers", "2", "--out", tmp_path / "s", "--quiet"]):
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1, err
        assert str(train) in err and recorded["sha256"]["train"] in err and "--dev-file" in err
    assert not (tmp_path / "s").exists()
    dev = write_csv(tmp_path / "dev.csv", ["text", "label"], [r[1:] for r in ticket_rows(20)])
    assert main(["evaluate", str(teacher), "--dev-file", str(dev)]) == 0, capsys.readouterr().err


def test_registry_runs_export_without_data_dir(tiny_teacher, tmp_path, monkeypatch, capsys):
    """A GLUE run remembers its data folder: `pkd export RUN` needs no --data-dir for its parity batch."""
    monkeypatch.delenv("PKD_DATA", raising=False)
    code = main(["export", str(tiny_teacher), "--out", str(tmp_path / "e"), "--format", "torch", "--evaluate"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "e" / "export.json").read_text())
    assert record["parity_data"].endswith("SST-2/dev.tsv") and "accuracy" in record["dev"]


def test_a_recorded_task_reads_only_the_files_a_command_uses(tmp_path):
    from dataclasses import asdict

    train = write_csv(tmp_path / "train.csv", ["id", "text", "label"], ticket_rows())
    task = resolve_task(None, DataConfig(train_file=str(train)))
    assert task.files.holdout["rows"] == 1
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"task": task.name, "file_task": asdict(task.files)}))
    train.unlink()  # the model travels without its training file
    test = write_csv(tmp_path / "test.csv", ["id", "text"], [r[:2] for r in ticket_rows(3)])
    recorded = resolve_task(None, DataConfig(test_file=str(test)), run_dir)
    assert [e.index for e in load_split(recorded, "test")[0].examples] == ["t0", "t1", "t2"]
    assert set(recorded.files.sha256) == {"train", "test"}
    dev = write_csv(tmp_path / "dev.csv", ["id", "text", "label"], ticket_rows(4))
    with_dev = resolve_task(None, DataConfig(dev_file=str(dev)), run_dir)
    assert with_dev.files.holdout == {} and len(with_dev.files.sha256["dev"]) == 64
    with pytest.raises(UsageError, match="--label-kind regression: the model was trained with classification"):
        resolve_task(None, DataConfig(label_kind="regression"), run_dir)


def test_cache_and_sweep_need_no_data_flags_with_a_file_teacher(tickets_teacher, tmp_path, capsys):
    out = run(capsys, "cache", "--teacher", tickets_teacher, "--cache-dir", tmp_path / "cache", "--max-seq-len", "24",
              "--max-train-examples", "50")
    assert json.loads(out)["examples"] == 50
    run(capsys, "sweep", "--teacher", tickets_teacher, "--student-layers", "2", "--grid", "alpha=0.5",
        "--cache-dir", tmp_path / "cache", "--out", tmp_path / "sweep", "--max-train-examples", "50", *TINY)
    trial = json.loads(next((tmp_path / "sweep").glob("*/run.json")).read_text())
    assert trial["file_task"]["labels"] == ["billing", "bug", "login", "shipping"]
    assert trial["num_train_examples"] == 50


def test_a_dataset_that_cannot_be_loaded_is_one_error(tmp_path):
    with pytest.raises(DataError, match=r"--dataset someone/nothing-here: cannot load \("):
        resolve_task(None, DataConfig(dataset="someone/nothing-here"))  # the Hub is offline in tests
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not a directory written by save_to_disk"):
        resolve_task(None, DataConfig(dataset=str(tmp_path / "plain")))


def test_data_options_without_data_say_what_is_missing(tiny_bert, tmp_path, capsys):
    code = main(["finetune", "--model", str(tiny_bert), "--dev-file", str(EXAMPLES / "tickets.csv"),
                 "--label-column", "label", "--out", str(tmp_path / "runs" / "t")])
    err = capsys.readouterr().err
    assert code == 2 and "--dev-file, --label-column: needs --train-file or --dataset" in err
