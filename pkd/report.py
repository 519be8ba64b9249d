"""`pkd report`: one Markdown and one self-contained HTML page over finished runs and comparisons.

Reads run directories (run.json, metrics.jsonl), `pkd compare` directories (compare.json and one
`<method>-seed<N>/` run per method and seed, each with result.json) and `pkd sweep` directories (sweep.json
and one run per trial, labelled by its parameters), plus optionally `pkd bench --json`. Writes a table of
mean ± std over seeds per task, method and depth, accuracy against speed-up (or depth), and one training-curve
figure per task and depth with every method and seed in it. The HTML is rendered from the same Markdown by
markdown-it-py, with the plots inlined, so the page is one file to share.

Without --out it prints the accuracy table instead. --metric shows one of each task's metrics in place of its
score; --paired B prints B - A, method by method, for two comparisons one setting apart (pkd.stats).
"""

from __future__ import annotations

import argparse
import base64
import glob
import html
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt

from pkd.config import SELECTIONS, export_variant
from pkd.errors import DataError, UsageError
from pkd.io import atomic_path, write_text
from pkd.rundir import (
    COMPARE_FILE,
    EXPORT_FILE,
    RUN_FILE,
    SWEEP_FILE,
    best_record,
    is_finished,
    parse_run_name,
    predictions_file,
    read_history,
    read_json,
    read_record,
    read_result,
)
from pkd.stats import seed_statistics, verdicts_markdown

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_METHOD_ORDER = ("finetune", "ft", "kd", "pkd-skip", "pkd-last", "pkd")


@dataclass
class Run:
    path: Path
    task: str
    method: str
    layers: int | None
    seed: int | None
    score: float | None  # the best epoch's dev score (the epoch picked on dev); None while unfinished
    teacher_score: float | None
    history: list[dict] = field(default_factory=list)
    last_score: float | None = None  # the last epoch's dev score
    variant: str = "torch"  # an export directory: ort-int8, torch-int8, ... (see pkd bench --variants)
    floor_score: float | None = None  # the majority-class floor on dev (pkd.metrics.floor_score), from compare

    def selected(self, select: str) -> float | None:
        return self.score if select == "best" or self.score is None else self.last_score


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_GLOB",
                   help="run or compare directories; quote a glob to let pkd expand it")
    p.add_argument("--out", default=None,
                   help="directory for report.md, report.html and the plots; without it the accuracy table is printed")
    p.add_argument("--bench", default=None, metavar="FILE.json", help="output of `pkd bench --json`")
    p.add_argument("--name", default="report",
                   help="write NAME.md and NAME.html (default report); other names also prefix the plots")
    p.add_argument("--select", choices=tuple(SELECTIONS), default="best",
                   help="which epoch's dev score the tables show: the best one (picked on dev, so optimistic; the "
                        "default) or the last one")
    p.add_argument("--metric", default=None, metavar="NAME",
                   help="one of each task's metrics (accuracy, f1, pearson, ...) in place of its score, the mean of "
                        "its metrics; the teacher's value is its run.json's and the majority-class floor's comes "
                        "from the data (--data-dir)")
    p.add_argument("--paired", default=None, metavar="COMPARE_DIR_B",
                   help="print B - A per method for the one compare directory given (A) and this one (B), of the "
                        "same task and seeds and one setting apart: a paired interval over seeds and dev examples "
                        "(pkd.stats)")
    p.add_argument("--data-dir", default=None,
                   help="data of --metric's floor and --paired's dev labels (default: $PKD_DATA, else the Hub)")


def run_cli(args: argparse.Namespace) -> str:
    if args.paired is not None:
        if len(args.runs) != 1 or args.out is not None:
            raise UsageError("--paired B: give one compare directory A, and no --out (the table is printed)")
        return paired_markdown(args.runs[0], args.paired, args.data_dir)
    if args.out is None:
        runs = collect_runs(args.runs)
        if args.metric:
            runs = in_metric(runs, args.metric, args.data_dir)
        return accuracy_markdown(accuracy_rows(runs, args.select), args.select, args.metric or "score")
    written = write_report(args.runs, args.out, bench=args.bench, name=args.name, select=args.select,
                           metric=args.metric, data_dir=args.data_dir)
    return "".join(f"{p}\n" for p in written)


# ----------------------------------------------------------------------------------------------- reading


def _depth(run_dir: Path, info: dict) -> int | None:
    if info.get("student_layers"):
        return int(info["student_layers"])
    config = run_dir / "config.json"
    return read_json(config).get("num_hidden_layers") if config.is_file() else None


def read_run(run_dir: Path, task: str | None = None, layers: int | None = None,
             teacher_score: float | None = None, in_compare: bool = False, floor_score: float | None = None) -> Run:
    """One training run; a comparison passes what its compare.json knows.

    A comparison's run counts once its result.json exists; a plain run by its best logged epoch so far.
    """
    info = read_record(run_dir)
    history = read_history(run_dir)
    last = history[-1].get("score") if history else None
    finished = is_finished(run_dir)
    if finished or in_compare:
        recorded = read_result(run_dir) if finished else {}
        score = recorded.get("score")
        last = recorded.get("last", {}).get("score", last)
    else:
        scores = [h["score"] for h in history if "score" in h]
        score = max(scores) if scores else None
    method = (info.get("sweep", {}).get("label") or info.get("method")  # a sweep's trials are told apart
              or ("finetune" if info.get("command") == "finetune" else None))
    seed = info.get("train", {}).get("seed")
    named = parse_run_name(run_dir.name)  # a comparison's run: <method>-seed<N>
    if named:
        method = method or named[0]
        seed = seed if seed is not None else named[1]
    method = method or info.get("command", "?")
    if info.get("student_init") == "teacher":  # the paper's students start from pre-trained layers: keep apart
        method += ", teacher init"
    return Run(path=run_dir, task=task or info.get("task", "?"), method=method,
               layers=layers or _depth(run_dir, info), seed=seed, score=score,
               teacher_score=info.get("teacher_score", teacher_score), history=history, last_score=last,
               floor_score=info.get("floor_score", floor_score))


def read_compare(compare_dir: Path) -> list[Run]:
    meta = read_json(compare_dir / COMPARE_FILE)
    subs = sorted(sub for sub in compare_dir.iterdir() if sub.is_dir() and _kind(sub) == "run")
    task, layers, teacher = meta.get("task"), meta.get("student_layers"), meta.get("teacher_score")
    runs = [read_run(sub, task, layers, teacher, in_compare=True, floor_score=meta.get("floor_score")) for sub in subs]
    # Deployed variants exported into a sub-run (`pkd export RUN --out RUN/export-int8 --evaluate`).
    return runs + [read_exported(e) for sub in subs for e in sorted(sub.iterdir()) if _kind(e) == "export"]


def read_exported(export_dir: Path) -> Run:
    """An export directory: its dev score (export --evaluate; None, and listed apart, without it), and the method,
    seed and teacher score of the run it came from, the method suffixed with the variant ("pkd-skip ort-int8")."""
    record = read_json(export_dir / EXPORT_FILE)
    source = Path(record.get("source", ""))
    origin = read_run(source) if _kind(source) == "run" else None
    variant = export_variant(record)
    config = export_dir / "config.json"
    layers = read_json(config).get("num_hidden_layers") if config.is_file() else None
    return Run(path=export_dir, task=record.get("task") or (origin.task if origin else "?"),
               method=f"{origin.method if origin else 'export'} {variant}", layers=layers,
               seed=origin.seed if origin else None, score=record.get("dev", {}).get("score"),
               teacher_score=origin.teacher_score if origin else None, variant=variant,
               floor_score=origin.floor_score if origin else None)


def _kind(path: Path) -> str | None:
    if (path / EXPORT_FILE).is_file():
        return "export"
    if (path / COMPARE_FILE).is_file():
        return "compare"
    if (path / SWEEP_FILE).is_file():
        return "sweep"
    if (path / RUN_FILE).is_file() or is_finished(path):
        return "run"
    return None


def matches(pattern: str) -> list[Path]:
    """The paths a glob matches (sorted), or the one path a plain name gives."""
    if any(c in pattern for c in "*?["):  # a glob the shell left unexpanded, or quoted on purpose
        return [Path(p) for p in sorted(glob.glob(pattern))]
    return [Path(pattern)]


def collect_runs(patterns: Sequence[str]) -> list[Run]:
    """Expand globs; a glob may also match non-run entries (logs, caches), which are left out."""
    runs: dict[Path, Run] = {}
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            paths = [p for p in matches(pattern) if p.is_dir() and _kind(p)]
            if not paths:
                raise UsageError(f"{pattern}: matches no run or compare directory")
        else:
            path = Path(pattern)
            if not path.is_dir():
                raise UsageError(f"{pattern}: {'not a directory' if path.exists() else 'no such directory'}")
            if not _kind(path):
                raise DataError(f"{pattern}: not a run (no run.json), comparison (no compare.json), sweep "
                                "or export directory")
            paths = [path]
        for p in paths:
            # The same run reached twice (a comparison and one of its sub-runs) counts once.
            if _kind(p) == "sweep":  # `pkd sweep`: each trial is a plain run directory inside it
                found = [read_run(sub) for sub in sorted(p.iterdir()) if sub.is_dir() and _kind(sub) == "run"]
            elif _kind(p) == "compare":
                found = read_compare(p)
            elif _kind(p) == "export":
                found = [read_exported(p)]
            else:
                found = [read_run(p)]
            for run in found:
                runs.setdefault(run.path.resolve(), run)
    return list(runs.values())


def read_bench(path: str | Path) -> list[dict]:
    data = read_json(Path(path))
    models = data.get("models") if isinstance(data, dict) else data
    if not isinstance(models, list) or not all(isinstance(m, dict) and "layers" in m for m in models):
        raise DataError(f"{path}: not the output of `pkd bench --json`")
    return models


# ----------------------------------------------------------------------------------------- summarising


def _method_key(method: str) -> tuple[int, str]:
    base = method.split(",")[0]  # "pkd-skip, teacher init" sorts beside pkd-skip
    return (_METHOD_ORDER.index(base) if base in _METHOD_ORDER else len(_METHOD_ORDER), method)


def accuracy_rows(runs: Sequence[Run], select: str = "best") -> list[dict]:
    """One row per (task, method, depth): mean ± sample std over seeds of the best (or last) epoch's dev score,
    retention of the teacher score, and retention of the teacher's gain over the majority-class floor."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        if run.score is not None:
            groups.setdefault((run.task, run.method, run.layers), []).append(run)
    rows = []
    for (task, method, layers), members in groups.items():
        variant = members[0].variant
        scores = [r.selected(select) for r in sorted(members, key=lambda r: (r.seed is None, r.seed))]
        teachers = [r.teacher_score for r in members if r.teacher_score is not None]
        teacher = statistics.fmean(teachers) if teachers else None
        floors = [r.floor_score for r in members if r.floor_score is not None]
        floor = statistics.fmean(floors) if floors else None
        rows.append({"task": task, "method": method, "layers": layers,
                     **seed_statistics({method: scores}, teacher, floor)[method],  # as `pkd compare` reports
                     "teacher_score": teacher, "floor_score": floor, "seeds": [r.seed for r in members],
                     "variant": variant})
    rows.sort(key=lambda r: (r["task"], -(r["layers"] or 0), _method_key(r["method"])))
    return rows


def _bench_for(layers: int | None, bench: Sequence[dict], variant: str = "torch") -> dict | None:
    """The benchmarked model of this depth and variant (fp32 PyTorch unless the row is a deployed export)."""
    return next((b for b in bench if b["layers"] == layers and b.get("variant", "torch") == variant), None)


def accuracy_markdown(rows: Sequence[dict], select: str = "best", metric: str = "score") -> str:
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        task_rows = [r for r in rows if r["task"] == task]
        teachers = {r["teacher_score"] for r in task_rows if r["teacher_score"] is not None}
        floors = {round(r["floor_score"], 4) for r in task_rows if r.get("floor_score") is not None}
        notes = ([f"teacher {teachers.pop():.2f}"] if len(teachers) == 1 else []) + (
            [f"majority-class floor {floors.pop():.2f}"] if len(floors) == 1 else [])
        title = f"### {task}" + (f" ({', '.join(notes)})" if notes else "")
        shown = SELECTIONS[select].replace("score", metric)
        out += [title, "", f"| method | layers | {shown} (mean ± std) | retention "
                           "| gain over floor retained | seeds |", "|---|---|---|---|---|---|"]
        for r in task_rows:
            retention = f"{r['retention']:.1f}%" if r["retention"] is not None else "-"
            gain = f"{r['gain_retention']:.1f}%" if r.get("gain_retention") is not None else "-"
            out.append(f"| {r['method']} | {r['layers'] or '?'} | {r['mean']:.2f} ± {r['std']:.2f} "
                       f"| {retention} | {gain} | {len(r['scores'])} |")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- plots


def _save_png(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def plot_pareto(rows: Sequence[dict], bench: Sequence[dict], path: Path) -> str:
    """Accuracy against speed-up (from the bench file) or, without one, against student depth."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.ticker import MaxNLocator

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig = Figure(figsize=(min(5.0 * len(tasks), 15.0), 4.2), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    xlabel = "speed-up (throughput vs the first benchmarked model)" if bench else "student layers"
    for ax, task in zip(axes, tasks, strict=True):
        task_rows = [r for r in rows if r["task"] == task]
        for method in sorted({r["method"] for r in task_rows}, key=_method_key):
            points = []
            for r in task_rows:
                if r["method"] != method:
                    continue
                if bench:
                    b = _bench_for(r["layers"], bench, r.get("variant", "torch"))
                    if b is not None:
                        points.append((b["throughput_speedup"], r["mean"], r["std"]))
                elif r["layers"] is not None:
                    points.append((r["layers"], r["mean"], r["std"]))
            if points:
                xs, ys, es = zip(*sorted(points), strict=True)
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
        teachers = [r["teacher_score"] for r in task_rows if r["teacher_score"] is not None]
        if teachers:
            ax.axhline(statistics.fmean(teachers), color="gray", linestyle="--", label="teacher")
        ax.set(title=task, xlabel=xlabel, ylabel="dev score")
        if not bench:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _save_png(fig, path)
    return path.name


def plot_curves(runs: Sequence[Run], path: Path) -> str:
    """One figure for the runs of one task and depth: train loss and dev score per epoch, one line per run, a
    colour per method and a line style per seed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    loss_ax, score_ax = fig.subplots(1, 2)
    methods = sorted({r.method for r in runs}, key=_method_key)
    seeds = sorted({r.seed for r in runs}, key=lambda s: (s is None, s))
    styles = ("-", "--", ":", "-.")
    for run in sorted(runs, key=lambda r: (_method_key(r.method), r.seed is None, r.seed)):
        epochs = [h["epoch"] for h in run.history]
        style = {"color": f"C{methods.index(run.method) % 10}", "marker": "o", "markersize": 3,
                 "linestyle": styles[seeds.index(run.seed) % len(styles)],
                 "label": run.method if run.seed is None else f"{run.method}, seed {run.seed}"}
        loss_ax.plot(epochs, [h.get("train_loss", float("nan")) for h in run.history], **style)
        score_ax.plot(epochs, [h.get("score", float("nan")) for h in run.history], **style)
    loss_ax.set(xlabel="epoch", ylabel="train loss", title="train loss")
    score_ax.set(xlabel="epoch", ylabel="dev score", title="dev score")
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    score_ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    first = runs[0]
    fig.suptitle(f"{first.task}, {first.layers or '?'} layers: {len(runs)} runs", fontsize="medium")
    _save_png(fig, path)
    return path.name


def curve_groups(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs with a history, by task and depth, each group under its figure's name (curves-TASK-L<depth>)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if run.history:
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"curves-{run.task}-L{run.layers or 'x'}")
            groups.setdefault(name, []).append(run)
    return dict(sorted(groups.items()))


# -------------------------------------------------------------------------------- one metric, paired runs


def in_metric(runs: Sequence[Run], metric: str, data_dir: str | Path | None = None) -> list[Run]:
    """The runs with one of their task's metrics in place of its score (the mean of its metrics: MRPC's accuracy
    and F1). Each run's value is read at its best-score and last epochs; its teacher's is the teacher's own best
    epoch (its run.json: the model a comparison scored; None for a teacher pkd did not fine-tune); the majority-class
    floor's in that metric comes from the training labels and dev examples the run used, read from data_dir."""
    from pkd.data import load_split
    from pkd.metrics import floor_score
    from pkd.tasks import get_task

    floors: dict[tuple, float] = {}
    changed = []
    for run in runs:
        task = get_task(run.task)
        known = (*task.metrics, *(f"accuracy_{level}" for level in task.levels))
        if metric not in known:
            raise UsageError(f"--metric {metric}: {task.name} has {', '.join(known)}")
        if run.variant != "torch":  # an export: its dev metrics, and the run it came from
            record = read_json(run.path / EXPORT_FILE)
            best = last = record.get("dev", {}).get(metric)
            info = read_record(record["source"]) if record.get("source") else {}
        else:
            best = next((h.get(metric) for h in run.history if h.get("score") == run.score), None)
            last = run.history[-1].get(metric) if run.history else None
            info = read_record(run.path)
        teacher = best_record(info["teacher"]).get(metric) if info.get("teacher") else None
        limits = info.get("train", {})
        key = (task.name, limits.get("max_train_examples"), limits.get("max_eval_examples"))
        if key not in floors:
            train = load_split(task, "train", data_dir, key[1])[0].examples
            dev = load_split(task, "dev", data_dir, key[2])[0].examples
            floors[key] = floor_score(task, [e.label for e in train], dev, metric)
        changed.append(replace(run, score=best, last_score=last, teacher_score=teacher, floor_score=floors[key]))
    return changed


def _last_predictions(compare_dir: Path) -> tuple[dict, dict[tuple[str, int], object]]:
    """A comparison's compare.json, and the dev predictions of each finished run at its last epoch, by (method,
    seed): verdicts never rest on the epoch picked on the dev set they resample (docs/method.md)."""
    import numpy as np

    meta = read_json(compare_dir / COMPARE_FILE)
    found = {}
    for run in read_compare(compare_dir):
        if run.variant != "torch" or run.score is None:
            continue
        result = read_result(run.path)
        epoch = (result.get("last") or run.history[-1])["epoch"]
        file = predictions_file(run.path, epoch)
        if not file.is_file():
            raise DataError(f"{file}: missing (a run made before pkd kept its dev predictions)")
        found[run.method, run.seed] = np.load(file)
    return meta, found


def paired_markdown(a: str | Path, b: str | Path, data_dir: str | Path | None = None) -> str:
    """B - A for two `pkd compare` directories of the same task and seeds that differ in one setting (the data
    order, the student's init): per method, pkd.stats' paired interval over seeds and dev examples, seed s of B
    paired with seed s of A, on each run's last epoch; "all" pools every method's seeds. Markdown."""
    import numpy as np

    from pkd.data import load_split
    from pkd.metrics import compute_metrics
    from pkd.stats import verdicts
    from pkd.tasks import get_task

    a, b = Path(a), Path(b)
    for path in (a, b):
        if _kind(path) != "compare":
            raise UsageError(f"{path}: not a compare directory (no compare.json)")
    (meta, runs_a), (meta_b, runs_b) = _last_predictions(a), _last_predictions(b)
    if meta["task"] != meta_b["task"]:
        raise UsageError(f"--paired {b}: task {meta_b['task']}, but {a} is {meta['task']}")
    common = sorted(set(runs_a) & set(runs_b), key=lambda k: (_method_key(k[0]), k[1]))
    if not common:
        raise UsageError(f"--paired {b}: no finished run (method and seed) in both {a} and {b}")
    task = get_task(meta["task"])
    dev = load_split(task, "dev", data_dir, meta.get("train", {}).get("max_eval_examples"))[0].examples
    labels = np.array([e.label for e in dev])
    names = (a.name, b.name) if a.name != b.name else (str(a), str(b))
    predictions: dict[str, list] = {}
    for method, seed in common:
        for name, runs in zip(names, (runs_a, runs_b), strict=True):
            for group in (method, "all"):
                predictions.setdefault(f"{group} ({name})", []).append(runs[method, seed])
    methods = [*dict.fromkeys(m for m, _ in common), "all"]
    try:
        rows = verdicts(lambda p, y: compute_metrics(task, p, y)["score"], labels, predictions,
                        [(f"{m} ({names[1]})", f"{m} ({names[0]})") for m in methods])
    except ValueError as e:  # predictions of another dev set than --data-dir's
        raise DataError(f"--paired {b}: {e}") from None
    seeds = sorted({s for _, s in common})
    return (f"{task.name}, last-epoch dev score: {names[1]} - {names[0]}, seeds {', '.join(map(str, seeds))} "
            f"paired, {len(labels)} dev examples\n\n" + verdicts_markdown(rows))


# --------------------------------------------------------------------------------------------- writing


def verdict_sections(patterns: Sequence[str]) -> str:
    """The verdicts (pkd.stats: seed-aware paired intervals) of each comparison among `patterns`, as Markdown. A
    compare.json written before the verdicts counted seed variance is named, not shown."""
    text = []
    for path in (p for pattern in patterns for p in matches(pattern)):
        if _kind(path) != "compare":
            continue
        meta = read_json(path / COMPARE_FILE)
        rows = meta.get("verdicts")
        if rows and "per_seed" not in rows[0]:
            text += [f"**{meta['task']}, {meta['student_layers']}-layer students** ({path}): its verdicts were "
                     "computed over dev examples only; `pkd compare ... --resume` with the same settings recomputes "
                     "them with seed variance.", ""]
        elif rows:
            text += [f"**{meta['task']}, {meta['student_layers']}-layer students** ({path}; "
                     f"{meta.get('select', 'best')} epochs, {rows[0]['seeds']} seeds, {rows[0]['examples']} dev "
                     "examples):", "",
                     verdicts_markdown(rows)]
    return "\n".join(text)


def signal_markdown(signal: dict) -> str:
    """One row per mapped teacher layer: how much its PT targets vary across the training examples (pkd.patient)."""
    probe = signal.get("probe") or {}
    lines = [f"| teacher layer | targets' mean pairwise cosine ({signal['pooling']}) | probe: [CLS] | probe: mean |",
             "|---|---|---|---|"]
    for layer, value in signal["layers"].items():
        cells = [f"{probe[p][layer]:.4f}" if layer in probe.get(p, {}) else "-" for p in ("cls", "mean")]
        lines.append(f"| {layer} | {value:.4f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def signal_sections(patterns: Sequence[str]) -> str:
    """The patient signal recorded by each comparison and run among `patterns` that used PT, as Markdown."""
    text = []
    for path in (p for pattern in patterns for p in matches(pattern)):
        kind = _kind(path)
        meta = read_json(path / COMPARE_FILE) if kind == "compare" else read_record(path) if kind == "run" else {}
        signal = meta.get("pt_signal")
        if signal and signal.get("layers"):
            text += [f"**{path}** (PT pooling {signal['pooling']}, over {signal['examples']} training examples; "
                     "1.0000 is the same vector for every input):", "", signal_markdown(signal)]
    return "\n".join(text)


def write_report(patterns: Sequence[str], out: str | Path, bench: str | Path | None = None,
                 name: str = "report", select: str = "best", metric: str | None = None,
                 data_dir: str | Path | None = None) -> list[Path]:
    """Write NAME.md, NAME.html and the PNGs into `out`; returns the paths of the two reports.

    A name other than "report" also prefixes the plots, so a report can live in a shared folder (docs/).
    metric: one of the tasks' metrics in place of their score in the tables and plots (in_metric); the paired
    verdicts of a comparison are in its score, so they are left out."""
    prefix = "" if name == "report" else f"{name}-"
    runs = collect_runs(patterns)
    if metric:
        runs = in_metric(runs, metric, data_dir)
    bench_rows = read_bench(bench) if bench else []
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    rows = accuracy_rows(runs, select)

    sections: list[tuple[str, str | None, list[str]]] = []  # (title, markdown body, images)
    epoch_note = ("Scores are each run's best epoch on dev, the epoch whose model is kept; the same dev set picks "
                  "it, so they are optimistic (`--select last` shows the last epoch).\n" if select == "best" else
                  "Scores are each run's last epoch on dev.\n")
    sections.append(("Accuracy", epoch_note + "\n" + accuracy_markdown(rows, select, metric or "score") if rows else
                     "No run has finished yet.\n", []))
    verdicts = "" if metric else verdict_sections(patterns)
    if verdicts:
        sections.append(("Paired differences (A - B, 95% interval over training seeds and dev examples)",
                         verdicts, []))
    signal = signal_sections(patterns)
    if signal:
        sections.append(("Patient signal (how much the PT targets vary across inputs)", signal, []))
    if bench_rows:
        from pkd.bench import bench_markdown

        sections.append(("Speed and size", bench_markdown(bench_rows), []))
    if rows:
        note = ("Each row sits at the throughput speed-up of the benchmarked model with as many layers (and, for a "
                "deployed export, the same variant: ort-int8, ...); rows without one are left out.\n"
                if bench_rows else None)
        sections.append(("Accuracy vs speed-up" if bench_rows else "Accuracy vs student layers", note,
                         [plot_pareto(rows, bench_rows, out / f"{prefix}pareto.png")]))
    curves = [plot_curves(group, out / f"{prefix}{figure}.png") for figure, group in curve_groups(runs).items()]
    if curves:
        sections.append(("Training curves", None, curves))
    skipped = [r for r in runs if r.score is None]
    if skipped:
        listing = "".join(f"- {r.path}\n" for r in skipped)
        sections.append(("Unfinished runs (left out of the tables)", listing, []))

    return render_report(sections, out, name)


def render_report(sections: Sequence[tuple[str, str | None, list[str]]], out: Path, name: str) -> list[Path]:
    """NAME.md and a self-contained NAME.html (plots inlined) from (title, Markdown body, PNG names) sections."""
    md, body = ["# pkd report", ""], []
    for title, text, images in sections:
        md += [f"## {title}", ""]
        body.append(f"<h2>{html.escape(title)}</h2>")
        if text:
            md.append(text)
            body.append(_MARKDOWN.render(text))
        for image in images:
            md += [f"![{image}]({image})", ""]
            data = base64.b64encode((out / image).read_bytes()).decode("ascii")
            body.append(f'<p><img alt="{html.escape(image)}" src="data:image/png;base64,{data}"></p>')
    write_text(out / f"{name}.md", "\n".join(md).rstrip() + "\n")
    write_text(out / f"{name}.html", _HTML.format(body="\n".join(body)))
    return [out / f"{name}.md", out / f"{name}.html"]


# CommonMark with tables; raw HTML in run names or paths is escaped, not rendered.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")

_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pkd report</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:0.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:0.25em 0.6em}}
th{{background:#f3f3f3}}img{{max-width:100%}}</style></head>
<body><h1>pkd report</h1>
{body}
</body></html>
"""
