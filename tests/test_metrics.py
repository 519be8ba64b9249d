"""compute_metrics against values worked out by hand from the GLUE metric definitions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pkd.metrics import compute_metrics, floor_score, gain_retention, predictions_from_logits
from pkd.tasks import GLUE_TASKS, Example, get_task

# One fixed binary case, counted by hand:
#   idx    0  1  2  3  4  5
#   pred   1  0  1  1  0  1
#   gold   1  0  0  1  1  1
#   TP = 3 (0, 3, 5), TN = 1 (1), FP = 1 (2), FN = 1 (4)
PRED = np.array([1, 0, 1, 1, 0, 1])
GOLD = np.array([1, 0, 0, 1, 1, 1])
TP, TN, FP, FN = 3, 1, 1, 1
# The hand count itself (checked on import: a test of the fixture, not of pkd).
assert [((PRED == p) & (GOLD == g)).sum() for p, g in ((1, 1), (0, 0), (1, 0), (0, 1))] == [TP, TN, FP, FN]


def _mcc(tp, tn, fp, fn):
    return (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def _pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / np.sqrt((dx**2).sum() * (dy**2).sum()))


def _ranks(x):
    """1-based ranks, ties sharing their average rank."""
    x = np.asarray(x, float)
    ranks = np.empty(len(x))
    for i, v in enumerate(x):
        ranks[i] = (x < v).sum() + ((x == v).sum() + 1) / 2
    return ranks


@pytest.mark.parametrize("task", ["sst2", "mnli", "qnli", "rte", "wnli"])
def test_accuracy_tasks(task):
    out = compute_metrics(get_task(task), PRED, GOLD)
    assert set(out) == {"accuracy", "score"}
    assert out["accuracy"] == pytest.approx(100 * 4 / 6)
    assert out["score"] == pytest.approx(100 * 4 / 6)


def test_accuracy_three_classes():
    out = compute_metrics(get_task("mnli"), np.array([0, 1, 2, 2, 1]), np.array([0, 1, 1, 2, 0]))
    assert out["accuracy"] == pytest.approx(60.0)


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_f1_tasks(task):
    out = compute_metrics(get_task(task), PRED, GOLD)
    f1 = 2 * TP / (2 * TP + FP + FN)  # = 0.75
    assert f1 == 0.75
    assert set(out) == {"accuracy", "f1", "score"}
    assert out["accuracy"] == pytest.approx(100 * (TP + TN) / 6)
    assert out["f1"] == pytest.approx(75.0)
    assert out["score"] == pytest.approx((100 * 4 / 6 + 75.0) / 2)


def test_f1_is_of_the_positive_class():
    # Swapping which class is "1" changes F1 (it is not a macro average): gold 1 is rare here.
    pred, gold = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    out = compute_metrics(get_task("mrpc"), pred, gold)
    assert out["f1"] == pytest.approx(100 * 2 * 1 / (2 * 1 + 0 + 1))  # TP 1, FP 0, FN 1
    flipped = compute_metrics(get_task("mrpc"), 1 - pred, 1 - gold)
    assert flipped["f1"] == pytest.approx(100 * 2 * 2 / (2 * 2 + 1 + 0))  # TP 2, FP 1, FN 0


def test_matthews_correlation_cola():
    out = compute_metrics(get_task("cola"), PRED, GOLD)
    assert _mcc(TP, TN, FP, FN) == pytest.approx(0.25)
    assert set(out) == {"mcc", "score"}
    assert out["mcc"] == pytest.approx(25.0)
    assert out["score"] == pytest.approx(25.0)


def test_matthews_correlation_negative_and_perfect():
    gold = np.array([0, 0, 1, 1, 1])
    worst = compute_metrics(get_task("cola"), 1 - gold, gold)
    assert worst["mcc"] == pytest.approx(-100.0)
    assert compute_metrics(get_task("cola"), gold, gold)["mcc"] == pytest.approx(100.0)
    pred = np.array([0, 1, 1, 1, 0])  # TP 2, TN 1, FP 1, FN 1
    assert compute_metrics(get_task("cola"), pred, gold)["mcc"] == pytest.approx(100 * _mcc(2, 1, 1, 1))


def test_pearson_spearman_stsb():
    pred = np.array([0.5, 1.0, 2.5, 3.0, 4.5, 1.2])
    gold = np.array([1.0, 0.0, 3.0, 2.5, 5.0, 1.8])
    out = compute_metrics(get_task("stsb"), pred, gold)
    assert set(out) == {"pearson", "spearman", "score"}
    pearson = _pearson(pred, gold)
    spearman = _pearson(_ranks(pred), _ranks(gold))
    assert out["pearson"] == pytest.approx(100 * pearson)
    assert out["spearman"] == pytest.approx(100 * spearman)
    assert out["score"] == pytest.approx(50 * (pearson + spearman))
    assert pearson != pytest.approx(spearman)  # the two really are different numbers here


def test_spearman_by_the_d_squared_formula():
    # Without ties, rho = 1 - 6 sum d^2 / (n (n^2 - 1)).
    # Here d = (-1, 1, -1, 1, 0), so rho = 1 - 6 * 4 / (5 * 24) = 0.8.
    pred, gold = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([2.0, 1.0, 4.0, 3.0, 5.0])
    out = compute_metrics(get_task("stsb"), pred, gold)
    assert out["spearman"] == pytest.approx(80.0)
    assert out["pearson"] == pytest.approx(80.0)  # the values are their own ranks


def test_spearman_with_ties():
    pred, gold = np.array([1.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0, 2.0])
    assert list(_ranks(pred)) == [1.5, 1.5, 3.0, 4.0]
    out = compute_metrics(get_task("stsb"), pred, gold)
    assert out["spearman"] == pytest.approx(100 * _pearson(_ranks(pred), _ranks(gold)))


def test_spearman_is_rank_only_pearson_is_not():
    gold = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    pred = np.exp(gold * 3)  # monotone, far from linear
    out = compute_metrics(get_task("stsb"), pred, gold)
    assert out["spearman"] == pytest.approx(100.0)
    assert out["pearson"] < 90.0


def test_anti_correlation_is_negative():
    gold = np.array([0.0, 1.0, 2.0, 3.0])
    out = compute_metrics(get_task("stsb"), -2 * gold + 1, gold)
    assert out["pearson"] == pytest.approx(-100.0)
    assert out["spearman"] == pytest.approx(-100.0)
    assert out["score"] == pytest.approx(-100.0)


def test_constant_predictions_give_zero_not_nan():
    gold = np.array([0.0, 1.5, 3.0, 4.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an undefined correlation is 0, without a warning
        out = compute_metrics(get_task("stsb"), np.full(4, 2.0), gold)
    assert out == {"pearson": 0.0, "spearman": 0.0, "score": 0.0}
    assert not any(math.isnan(v) for v in out.values())


def test_constant_predictions_classification():
    gold = np.array([0, 1, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cola = compute_metrics(get_task("cola"), np.zeros(5, int), gold)
        mrpc = compute_metrics(get_task("mrpc"), np.zeros(5, int), gold)
    assert cola == {"mcc": 0.0, "score": 0.0}
    assert mrpc["f1"] == 0.0 and mrpc["accuracy"] == pytest.approx(40.0)
    assert mrpc["score"] == pytest.approx(20.0)


def test_scores_are_plain_floats_and_accept_lists():
    out = compute_metrics(get_task("mrpc"), [1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 1, 1])
    assert all(type(v) is float for v in out.values())
    assert out["f1"] == pytest.approx(75.0)


def test_every_task_has_a_score_equal_to_the_mean_of_its_metrics():
    rng = np.random.default_rng(0)
    for task in GLUE_TASKS.values():
        if task.is_regression:
            pred, gold = rng.normal(size=20), rng.normal(size=20)
        else:
            pred, gold = rng.integers(0, task.num_labels, 20), rng.integers(0, task.num_labels, 20)
        out = compute_metrics(task, pred, gold)
        assert set(out) == {*task.metrics, "score"}
        assert out["score"] == pytest.approx(np.mean([out[m] for m in task.metrics]))


def test_predictions_from_logits():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5], [0.0, 0.1, 0.2]])
    assert predictions_from_logits(get_task("mnli"), logits).tolist() == [1, 0, 2]
    assert predictions_from_logits(get_task("stsb"), np.array([[1.5], [-0.25]])).tolist() == [1.5, -0.25]


def test_the_floor_is_the_majority_training_label_scored_on_dev():
    dev = [Example(("x", "y"), label, str(i)) for i, label in enumerate(GOLD)]  # four 1s, two 0s
    mrpc = get_task("mrpc")
    floor = floor_score(mrpc, [0, 0, 0, 1], dev)  # the training majority is 0: accuracy 2/6, F1 0
    assert floor == pytest.approx((100 * 2 / 6 + 0.0) / 2)
    floor = floor_score(mrpc, [1, 1, 0], dev)  # majority 1: accuracy 4/6, F1 = 2 * 4 / (2 * 4 + 2)
    assert floor == pytest.approx((100 * 4 / 6 + 100 * 8 / 10) / 2)
    assert floor_score(mrpc, [1, 1, 0], dev, metric="accuracy") == pytest.approx(100 * 4 / 6)  # one metric alone
    stsb = [Example(("x", "y"), float(v), str(i)) for i, v in enumerate([0.5, 2.0, 4.5])]
    assert floor_score(get_task("stsb"), [1.0, 3.0], stsb) == 0.0  # a constant has no correlation


def test_gain_retention():
    assert gain_retention(70.0, 80.0, 60.0) == pytest.approx(50.0)
    assert gain_retention(70.0, 80.0, None) is None
    assert gain_retention(70.0, 55.0, 60.0) is None  # a teacher at or below the floor has no gain to retain


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=3, max_size=40))
def test_correlations_match_the_definitions_with_ties(pairs):
    """Small integer values: many ties, the case where rank averaging matters."""
    pred, gold = (np.array(v, float) for v in zip(*pairs, strict=True))
    out = compute_metrics(get_task("stsb"), pred, gold)
    defined = np.ptp(pred) > 0 and np.ptp(gold) > 0
    assert out["pearson"] == pytest.approx(100 * _pearson(pred, gold) if defined else 0.0, abs=1e-9)
    assert out["spearman"] == pytest.approx(100 * _pearson(_ranks(pred), _ranks(gold)) if defined else 0.0, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=2, max_size=40))
def test_matthews_correlation_of_any_labels_matches_its_definition(pairs):
    pred, gold = (np.array(v) for v in zip(*pairs, strict=True))
    classes = sorted(set(pred) | set(gold))
    c = np.array([[np.sum((gold == a) & (pred == b)) for b in classes] for a in classes], float)
    t, p, s = c.sum(1), c.sum(0), c.sum()
    denominator = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    expected = (np.trace(c) * s - t @ p) / denominator if denominator else 0.0
    assert compute_metrics(get_task("cola"), pred, gold)["mcc"] == pytest.approx(100 * expected, abs=1e-9)
