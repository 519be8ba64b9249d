"""Paired statistics: is method A better than method B on this task, or is the gap seed and sample noise?

Every method of a `pkd compare` is trained with the same S seeds (the same student initialisation and data
order per seed) and scored on the same n dev examples, so the runs pair up by seed and by example. For a
score function f (the task's "score": accuracy, the mean of accuracy and F1, of Pearson and Spearman, ...):

    d = (1/S) * sum_s [ f(A_s) - f(B_s) ]

Its 95% confidence interval comes from a paired bootstrap over dev examples with the seeds pooled: draw n
example indices with replacement, score every seed of both methods on that same draw, average the S
differences, and repeat `draws` times; the interval is the 2.5th to 97.5th percentile of those averages.
Drawing examples, not runs, is what makes overlapping "mean ± std" columns decidable: a difference that holds
on most re-drawn dev sets is real for this dev distribution, one that flips sign is a tie.

Verdict: "better" when the whole interval is above 0, "worse" when it is below 0, "tie" otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ScoreFn = Callable[[np.ndarray, np.ndarray], float]  # (predictions, labels) -> score

# The pairs a comparison reports, as (A, B): is A better than B? The paper's ordering is PKD >= KD >= FT.
PAIRS = (("pkd-skip", "kd"), ("pkd-last", "kd"), ("kd", "ft"), ("pkd-skip", "ft"), ("pkd-skip", "pkd-last"))


def paired_bootstrap(score: ScoreFn, labels: np.ndarray, preds_a: Sequence[np.ndarray],
                     preds_b: Sequence[np.ndarray], draws: int = 1000, seed: int = 0) -> dict[str, float | str]:
    """The seed-averaged difference score(A) - score(B) with a 95% paired-bootstrap interval.

    Args:
        score: maps (predictions [n], labels [n]) to a number (higher is better).
        labels: the gold labels of the n dev examples, [n].
        preds_a: one prediction array [n] per seed for method A (class ids, or values for regression).
        preds_b: the same for method B, seed for seed (preds_a[s] and preds_b[s] share seed s).
        draws: bootstrap resamples of the dev examples.
        seed: seeds the resampling, so the interval is reproducible.

    Returns:
        {"diff": d on the full dev set, "low": 2.5th percentile, "high": 97.5th percentile,
         "verdict": "better" | "tie" | "worse", "seeds": S, "examples": n, "draws": draws}
    """
    labels = np.asarray(labels)
    if len(preds_a) != len(preds_b) or not preds_a:
        raise ValueError(f"paired bootstrap needs the same seeds for both methods ({len(preds_a)} vs {len(preds_b)})")
    a, b = np.stack([np.asarray(p) for p in preds_a]), np.stack([np.asarray(p) for p in preds_b])
    if a.shape[1] != len(labels) or b.shape[1] != len(labels):
        raise ValueError(f"predictions for {a.shape[1]} and {b.shape[1]} examples, labels for {len(labels)}")

    def diff(idx: np.ndarray) -> float:
        y = labels[idx]
        return float(np.mean([score(pa[idx], y) - score(pb[idx], y) for pa, pb in zip(a, b, strict=True)]))

    n = len(labels)
    rng = np.random.default_rng(seed)
    samples = np.array([diff(rng.integers(0, n, n)) for _ in range(draws)])
    low, high = np.percentile(samples, [2.5, 97.5])
    verdict = "better" if low > 0 else "worse" if high < 0 else "tie"
    return {"diff": diff(np.arange(n)), "low": float(low), "high": float(high), "verdict": verdict,
            "seeds": len(a), "examples": n, "draws": draws}
