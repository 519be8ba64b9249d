"""GLUE metrics, as GLUE defines them, from scikit-learn and scipy."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from pkd.tasks import Task

_METRICS = {
    "accuracy": lambda p, y: accuracy_score(y, p),
    "f1": lambda p, y: f1_score(y, p),
    "mcc": lambda p, y: matthews_corrcoef(y, p),
    "pearson": lambda p, y: pearsonr(p, y)[0],
    "spearman": lambda p, y: spearmanr(p, y)[0],
}


def compute_metrics(task: Task, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Scores in [0, 100] (correlations in [-100, 100]) plus "score", the mean of the task's metrics."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    out = {name: 100.0 * float(_METRICS[name](predictions, labels)) for name in task.metrics}
    out = {k: (0.0 if np.isnan(v) else v) for k, v in out.items()}  # constant predictions: correlation 0
    out["score"] = float(np.mean([out[name] for name in task.metrics]))
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


def floor_score(task: Task, train_labels: list, dev_examples: list) -> float:
    """The score of a model that ignores its input: the training set's most frequent label for every dev example
    (regression: its mean, whose correlations are 0). Retention of the gain over this floor,
    (student - floor) / (teacher - floor), still means something when a teacher is near chance (RTE)."""
    if task.is_regression:
        guess = float(np.mean(train_labels))
    else:
        values, counts = np.unique(np.asarray(train_labels), return_counts=True)
        guess = values[counts.argmax()]
    with warnings.catch_warnings():  # a constant prediction's correlation is undefined: compute_metrics makes it 0
        warnings.simplefilter("ignore")
        return score_examples(task, dev_examples, np.full(len(dev_examples), guess))["score"]


def gain_retention(score: float, teacher_score: float, floor: float | None) -> float | None:
    """100 * (score - floor) / (teacher_score - floor), in %; None without a floor or when the teacher is at it."""
    if floor is None or teacher_score - floor <= 0:
        return None
    return 100.0 * (score - floor) / (teacher_score - floor)


def predictions_from_logits(task: Task, logits: np.ndarray) -> np.ndarray:
    return logits[:, 0] if task.is_regression else logits.argmax(-1)
