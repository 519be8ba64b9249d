"""GLUE metrics, as GLUE defines them, from scikit-learn and scipy."""

from __future__ import annotations

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


def predictions_from_logits(task: Task, logits: np.ndarray) -> np.ndarray:
    return logits[:, 0] if task.is_regression else logits.argmax(-1)
