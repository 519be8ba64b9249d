"""Statistics over seeds: each method's mean, spread and retention (seed_statistics), and paired verdicts: is
method A better than method B on this task, or is the gap seed and sample noise?

Every method of a `pkd compare` is trained with the same S seeds (the same student initialisation and data
order per seed) and scored on the same n dev examples, so the runs pair up by seed and by example. For a
score function f (the task's "score": accuracy, the mean of accuracy and F1, of Pearson and Spearman, ...):

    d_s = f(A_s) - f(B_s),        d = (1/S) * sum_s d_s

d varies for two reasons, and its interval counts each once. Write each seed-and-example difference as
x_si = mu + a_s + b_i + g_si: a seed effect a_s (the run was lucky on every example), a dev-example effect b_i (A
is systematically better or worse on that example) and their interaction g_si (the examples a run happens to get
right or wrong). Then Var(d) = var(a)/S + var(b)/n + var(g)/(S n), and:

- **seeds**: var_s(d_s) / S estimates var(a)/S + var(g)/(S n): the seed effect and the interaction. It rests on
  S - 1 degrees of freedom, so t takes S - 1.
- **dev examples**: another dev sample of the same distribution gives another d through b_i. A paired bootstrap
  of the dev examples (draw n indices with replacement, score every seed of both methods on the same draw;
  `draws` times) gives var_boot(d) ~ var(b)/n + var(g)/(S n), and the spread of each seed's bootstrapped
  difference around the draw's mean gives the interaction alone, var(g)/(S n) ~ sum_s var_boot(d_s - d) / (S (S-1)).
  Their difference is the dev-set term, var(b)/n: the interaction is counted once, in the seed term.

    se^2 = var_s(d_s) / S + max(0, var_boot(d) - sum_s var_boot(d_s - d) / (S (S - 1)))
    95% interval = d -/+ t(0.975, S - 1) * se

For accuracy this is the two-way analysis of variance of the per-example differences (seed x example), and the
bootstrap works for any score (F1, Pearson, Spearman). t with S - 1 degrees of freedom holds its 95% whatever
the seeds' luck: a Welch-Satterthwaite df, (S - 1) (se^2 / seed term)^2, grows exactly when the 1-2-df seed term
is small by chance, and gave 8-12% false verdicts with a seed effect (docs/method.md has the simulation; the
tests run it). The price is width: with 2 seeds t is 12.7, with 3 it is 4.3, with 5 it is 2.8.

Verdict: "better" when the whole interval is above 0, "worse" when it is below 0, "tie" otherwise; with a single
seed the seed variance is unknown and the verdict is "1 seed" (no claim either way).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as scipy_stats

from pkd.metrics import gain_retention

ScoreFn = Callable[[np.ndarray, np.ndarray], float]  # (predictions, labels) -> score

# The pairs a comparison reports, as (A, B): is A better than B? The paper's ordering is PKD >= KD >= FT.
PAIRS = (("pkd-skip", "kd"), ("pkd-last", "kd"), ("kd", "ft"), ("pkd-skip", "ft"), ("pkd-skip", "pkd-last"))
ONE_SEED = "1 seed"  # the verdict when the seed variance cannot be estimated


def seed_statistics(results: dict[str, list[float]], teacher_score: float | None,
                    floor: float | None = None) -> dict[str, dict]:
    """Per method (or any group of runs): its scores over seeds, their mean and sample std, the mean's retention
    of the teacher's score, and its retention of the teacher's gain over the majority-class floor
    (pkd.metrics.gain_retention); retentions are None without a teacher score."""
    table = {}
    for method, scores in results.items():
        mean = statistics.fmean(scores)
        table[method] = {"scores": list(scores), "mean": mean,
                         "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                         "retention": 100.0 * mean / teacher_score if teacher_score else None,
                         "gain_retention": gain_retention(mean, teacher_score, floor) if teacher_score else None}
    return table


def paired_difference(score: ScoreFn, labels: np.ndarray, preds_a: Sequence[np.ndarray],
                     preds_b: Sequence[np.ndarray], draws: int = 1000, seed: int = 0) -> dict[str, float | str]:
    """The seed-averaged difference score(A) - score(B) with a 95% interval over seeds and dev examples.

    Args:
        score: maps (predictions [n], labels [n]) to a number (higher is better).
        labels: the gold labels of the n dev examples, [n].
        preds_a: one prediction array [n] per seed for method A (class ids, or values for regression).
        preds_b: the same for method B, seed for seed (preds_a[s] and preds_b[s] share seed s).
        draws: bootstrap resamples of the dev examples.
        seed: seeds the resampling, so the interval is reproducible.

    Returns:
        {"diff": d on the full dev set, "low", "high": the 95% interval (None with one seed),
         "verdict": "better" | "tie" | "worse" | "1 seed", "per_seed": [d_s], "seed_se": sd(d_s) / sqrt(S),
         "example_se": the bootstrap's sd of d (an example-only interval's), "dev_se": the dev-set term's sd
         (the bootstrap's less the seed x example interaction), "df": S - 1, "seeds": S, "examples": n,
         "draws": draws}
    """
    labels = np.asarray(labels)
    if len(preds_a) != len(preds_b) or not preds_a:
        raise ValueError(f"a paired difference needs the same seeds for both methods "
                         f"({len(preds_a)} vs {len(preds_b)})")
    a, b = np.stack([np.asarray(p) for p in preds_a]), np.stack([np.asarray(p) for p in preds_b])
    if a.shape[1] != len(labels) or b.shape[1] != len(labels):
        raise ValueError(f"predictions for {a.shape[1]} and {b.shape[1]} examples, labels for {len(labels)}")

    def per_seed(idx: np.ndarray) -> np.ndarray:
        y = labels[idx]
        return np.array([score(pa[idx], y) - score(pb[idx], y) for pa, pb in zip(a, b, strict=True)])

    n, seeds = len(labels), len(a)
    rng = np.random.default_rng(seed)
    boot = np.array([per_seed(rng.integers(0, n, n)) for _ in range(draws)])  # [draws, S]
    d_s = per_seed(np.arange(n))
    diff, example_var = float(d_s.mean()), float(boot.mean(axis=1).var(ddof=1))
    result = {"diff": diff, "per_seed": [float(x) for x in d_s], "example_se": example_var ** 0.5,
              "seeds": seeds, "examples": n, "draws": draws}
    if seeds < 2:
        return {**result, "low": None, "high": None, "seed_se": None, "dev_se": None, "df": None,
                "verdict": ONE_SEED}
    seed_var = float(d_s.var(ddof=1)) / seeds
    interaction = float((boot - boot.mean(axis=1, keepdims=True)).var(axis=0, ddof=1).sum()) / (seeds * (seeds - 1))
    dev_var = max(0.0, example_var - interaction)  # the interaction is in the seed term already
    total, df = seed_var + dev_var, seeds - 1
    half = float(scipy_stats.t.ppf(0.975, df)) * total ** 0.5
    low, high = diff - half, diff + half
    verdict = "better" if low > 0 else "worse" if high < 0 else "tie"
    return {**result, "low": low, "high": high, "seed_se": seed_var ** 0.5, "dev_se": dev_var ** 0.5, "df": df,
            "verdict": verdict}


def verdicts(score: ScoreFn, labels: np.ndarray, predictions: dict[str, Sequence[np.ndarray]],
             pairs: Sequence[tuple[str, str]] = PAIRS, draws: int = 1000) -> list[dict]:
    """paired_difference for each pair (A, B) of `pairs` whose methods both have predictions.

    Args:
        predictions: method -> one prediction array [n] per seed, in seed order.

    Returns:
        One row per pair: {"a", "b", "diff", "low", "high", "verdict", "seeds", "examples", "draws"}.
    """
    return [{"a": a, "b": b, **paired_difference(score, labels, predictions[a], predictions[b], draws)}
            for a, b in pairs if predictions.get(a) and predictions.get(b)]


def verdicts_markdown(rows: Sequence[dict]) -> str:
    """The verdict table: the seed-averaged difference A - B with its 95% interval over seeds and dev examples,
    and each seed's difference (with 2-3 seeds, what the interval rests on)."""
    if not rows:
        return ""
    lines = ["| A vs B | A - B (95% CI, seeds and examples) | per seed | verdict |", "|---|---|---|---|"]
    for r in rows:
        interval = (f"{r['diff']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]" if r["seeds"] > 1
                    else f"{r['diff']:+.2f} (no interval)")
        per_seed = ", ".join(f"{x:+.2f}" for x in r.get("per_seed", []))
        lines.append(f"| {r['a']} vs {r['b']} | {interval} | {per_seed} | {r['verdict']} |")
    return "\n".join(lines) + "\n"


def false_verdict_rate(seeds: int, seed_sd: float, trials: int = 200, examples: int = 277, draws: int = 100,
                       seed: int = 0) -> float:
    """The share of `trials` in which paired_difference calls two methods drawn from one distribution "better"
    or "worse": its false-verdict rate, nominally 5%.

    Each trial draws a dev set of `examples` binary items with a difficulty on the logit scale, z_i ~ N(1, 1.5)
    (about 70% accuracy), then `seeds` runs of each method: a run adds its own seed effect a ~ N(0, seed_sd) to
    every z_i and gets item i right with probability sigmoid(z_i + a), independently per item (the per-example
    noise that every run has). seed_sd 0 is the regime of no seed effect beyond that noise.
    """
    rng = np.random.default_rng(seed)
    labels = np.ones(examples, dtype=np.int64)

    def accuracy(p: np.ndarray, y: np.ndarray) -> float:
        return 100.0 * float((p == y).mean())

    def runs(z: np.ndarray) -> list[np.ndarray]:
        shift = rng.normal(0.0, seed_sd, (seeds, 1)) if seed_sd > 0 else np.zeros((seeds, 1))
        return list((rng.random((seeds, examples)) < 1 / (1 + np.exp(-(z + shift)))).astype(np.int64))

    false = 0
    for _ in range(trials):
        z = rng.normal(1.0, 1.5, examples)
        verdict = paired_difference(accuracy, labels, runs(z), runs(z), draws=draws, seed=int(rng.integers(2**31)))
        false += verdict["verdict"] in ("better", "worse")
    return false / trials
