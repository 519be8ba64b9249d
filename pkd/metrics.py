"""GLUE metrics, as GLUE defines them, and those of tasks defined by their data (pkd.files), in numpy.

accuracy; F1 of the positive class (label 1; MRPC, QQP); Matthews correlation (CoLA):
(c*s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t)) over the confusion matrix (c correct, s total, t and p the true and
predicted counts per class), which is (TP*TN - FP*FN) / sqrt(...) for two classes; Pearson's r; Spearman's rho,
Pearson's r of the ranks with ties given their average rank (STS-B). Each is what scikit-learn and scipy compute
(tests/test_metrics.py checks hand-worked values), without importing them: together they took 2.7 s of every
pkd command's start-up. An undefined value (a constant prediction's correlation, F1 with no positives) is 0.

For a file task: macro-F1, the mean over classes of each class's one-vs-rest F1 (classes in the labels or the
predictions, as scikit-learn's average="macro"); for multi-label predictions and labels ([n, C] of 0/1), micro-F1
(F1 of every (example, label) cell pooled), macro-F1 (the mean of each label's F1) and exact match (the share of
examples whose whole label set is right).
"""

from __future__ import annotations

import numpy as np

from pkd.tasks import Task


def _f1(p: np.ndarray, y: np.ndarray) -> float:
    tp, fp, fn = np.sum((p == 1) & (y == 1)), np.sum((p == 1) & (y != 1)), np.sum((p != 1) & (y == 1))
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def _mcc(p: np.ndarray, y: np.ndarray) -> float:
    classes, index = np.unique(np.concatenate([y, p]), return_inverse=True)
    k, n = len(classes), len(y)
    confusion = np.bincount(index[:n] * k + index[n:], minlength=k * k).reshape(k, k).astype(float)
    t, q, c, s = confusion.sum(1), confusion.sum(0), np.trace(confusion), confusion.sum()
    denominator = np.sqrt((s * s - q @ q) * (s * s - t @ t))
    return float((c * s - t @ q) / denominator) if denominator else 0.0


def _pearson(p: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(p) == 0 or np.ptp(y) == 0:  # constant: undefined (and rounding in the mean would make it noise)
        return 0.0
    dp, dy = p - p.mean(), y - y.mean()
    return float(dp @ dy / np.sqrt((dp @ dp) * (dy @ dy)))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # the rank of each distinct value's last copy
    return (last - (counts - 1) / 2)[inverse]


def _f1_macro(p: np.ndarray, y: np.ndarray) -> float:
    if y.ndim == 2:  # multi-label: each label's F1
        return float(np.mean([_f1(p[:, j], y[:, j]) for j in range(y.shape[1])]))
    classes = np.unique(np.concatenate([y, p]))
    return float(np.mean([_f1((p == c).astype(int), (y == c).astype(int)) for c in classes]))


_METRICS = {
    "accuracy": lambda p, y: float(np.mean(p == y)),
    "f1": _f1,
    "mcc": _mcc,
    "pearson": lambda p, y: _pearson(p.astype(float), y.astype(float)),
    "spearman": lambda p, y: _pearson(_ranks(p), _ranks(y)),
    "f1_macro": _f1_macro,
    "f1_micro": lambda p, y: _f1(p.ravel(), y.ravel()),
    "exact_match": lambda p, y: float(np.mean(np.all(p == y, axis=1))),
}


def compute_metrics(task: Task, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Scores in [0, 100] (correlations in [-100, 100]) plus "score", the mean of the task's metrics, or its
    score_metric (the one --metric chose for a file task): "score" picks the best epoch."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    out = {name: 100.0 * _METRICS[name](predictions, labels) for name in task.metrics}
    out["score"] = out[task.score_metric] if task.score_metric else float(np.mean([out[name] for name in task.metrics]))
    return out


def score_examples(task: Task, examples: list, predictions: np.ndarray) -> dict[str, float]:
    """compute_metrics against the examples' labels; RACE adds the accuracy on each level's questions
    (accuracy_high, accuracy_middle)."""
    predictions = np.asarray(predictions)
    labels = np.array([e.label for e in examples])
    scores = compute_metrics(task, predictions, labels)
    for level in task.levels:
        mask = np.array([e.level == level for e in examples], dtype=bool)
        if mask.any():
            scores[f"accuracy_{level}"] = compute_metrics(task, predictions[mask], labels[mask])["accuracy"]
    return scores


def floor_score(task: Task, train_labels: list, dev_examples: list, metric: str = "score") -> float:
    """The score of a model that ignores its input: the training set's most frequent label for every dev example
    (regression: its mean, whose correlations are 0). Retention of the gain over this floor,
    (student - floor) / (teacher - floor), still means something when a teacher is near chance (RTE).
    metric: one of the task's metrics instead of their mean (MRPC's floor: accuracy 68.38, F1 81.22)."""
    if task.is_regression:
        guess = float(np.mean(train_labels))
    elif task.multi_label:  # each label's majority value, for every example
        guess = (np.mean(np.asarray(train_labels), axis=0) > 0.5).astype(int)
        return score_examples(task, dev_examples, np.tile(guess, (len(dev_examples), 1)))[metric]
    else:
        values, counts = np.unique(np.asarray(train_labels), return_counts=True)
        guess = values[counts.argmax()]
    return score_examples(task, dev_examples, np.full(len(dev_examples), guess))[metric]


def gain_retention(score: float, teacher_score: float, floor: float | None) -> float | None:
    """100 * (score - floor) / (teacher_score - floor), in %; None without a floor or when the teacher is at it."""
    if floor is None or teacher_score - floor <= 0:
        return None
    return 100.0 * (score - floor) / (teacher_score - floor)


def predictions_from_logits(task: Task, logits: np.ndarray) -> np.ndarray:
    """Values [n] (regression), class ids [n], or for multi-label 0/1 [n, C] (a label is on when its logit > 0)."""
    if task.multi_label:
        return (logits > 0).astype(np.int64)
    return logits[:, 0] if task.is_regression else logits.argmax(-1)
