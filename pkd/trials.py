"""`pkd sweep`: grid or random search over distillation hyperparameters, with one shared teacher cache.

--grid NAME=V1,V2,... [NAME=...]: the cartesian product of the value lists is the grid; with --random N, N
distinct combinations are drawn from it (seeded by --seed, so the same command draws the same trials). The
teacher cache is built once before the first trial; every trial then finds it by its key. Each trial is a
normal `pkd distill` run directory named after its parameters (alpha0.5_temperature10, ...) that gets a
result.json when it finishes: a sweep run again with --resume skips finished trials and resumes unfinished
ones from their checkpoints. --jobs N runs N trials at a time as separate processes, each with cores / N
threads (and, with several GPUs, one GPU each, round robin). The best trial is the one with the highest dev
score. Writes results.csv, results.json, results.md (one row per trial) and best.json; `pkd report OUT`
reads the trials.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import queue
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

from pkd import dist
from pkd.config import DistillConfig, RunConfig, SweepConfig, TrainConfig, config_from_dict, from_options
from pkd.errors import DataError, PkdError, TrainingError, UsageError
from pkd.io import write_json, write_text
from pkd.rundir import (
    SWEEP_FILE,
    check_resume,
    has_checkpoints,
    is_finished,
    prepare_out_dir,
    read_record,
    read_result,
    releases_out_dirs,
    write_record,
    write_result,
)
from pkd.tasks import Task

# What a grid may vary, and how its values are read. Everything else is fixed for the whole sweep (the teacher
# cache depends on max_seq_len and max_train_examples, so those cannot vary).
PARAMS: dict[str, type] = {"alpha": float, "temperature": float, "beta": float, "lr": float, "weight_decay": float,
                           "warmup_ratio": float, "epochs": int, "batch_size": int, "seed": int}
_LOSS = ("alpha", "temperature", "beta")


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """["alpha=0.2,0.5", "lr=1e-5,2e-5"] -> {"alpha": [0.2, 0.5], "lr": [1e-05, 2e-05]}, keeping the order."""
    grid: dict[str, list] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not values.strip():
            raise UsageError(f"--grid {item}: expected NAME=V1,V2,... (e.g. alpha=0.2,0.5,0.7)")
        if name not in PARAMS:
            raise UsageError(f"--grid {item}: unknown parameter {name!r} (choose from {', '.join(PARAMS)})")
        if name in grid:
            raise UsageError(f"--grid {item}: {name} is given twice")
        kind, parsed = PARAMS[name], []
        for text in values.split(","):
            try:
                value = kind(text.strip())
            except ValueError:
                raise UsageError(f"--grid {item}: {text.strip()!r} is not {'an integer' if kind is int else 'a number'}"
                                 ) from None
            if not math.isfinite(value):
                raise UsageError(f"--grid {item}: {text.strip()!r} is not a finite number")
            parsed.append(value)
        if len(set(parsed)) != len(parsed):
            raise UsageError(f"--grid {item}: a value is repeated")
        grid[name] = parsed
    if not grid:
        raise UsageError("--grid: give at least one NAME=V1,V2,...")
    return grid


def expand(grid: dict[str, list], random_trials: int | None = None, seed: int = 42) -> list[dict]:
    """The whole grid (the last name varies fastest, as itertools.product), or `random_trials` distinct
    combinations drawn from it with `seed` (the whole grid when it has no more than that)."""
    names, sizes = list(grid), [len(v) for v in grid.values()]
    total = math.prod(sizes)
    if random_trials is not None and random_trials < 1:
        raise UsageError(f"--random {random_trials}: must be at least 1")
    if random_trials is None or random_trials >= total:
        indices: Sequence[int] = range(total)
    else:
        indices = random.Random(seed).sample(range(total), random_trials)  # never builds the product
    trials = []
    for index in indices:
        params = {}
        for name, size in zip(reversed(names), reversed(sizes), strict=True):  # mixed radix, last name fastest
            index, j = divmod(index, size)
            params[name] = grid[name][j]
        trials.append({n: params[n] for n in names})
    return trials


def _text(value: float) -> str:
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def trial_name(params: dict) -> str:
    """A directory name that is the parameters themselves, so a resumed sweep finds its trials in any order."""
    return "_".join(f"{k}{_text(v)}" for k, v in params.items())


# ------------------------------------------------------------------------------------------------ running


@releases_out_dirs
def run_sweep(run: RunConfig, distill_cfg: DistillConfig, train_cfg: TrainConfig, search: SweepConfig) -> dict:
    """Run every trial (skipping finished ones) and write the tables; returns {"trials": rows, "best": row}.

    A trial is `distill_cfg` and `train_cfg` with the trial's values put in (the loss weights into
    distill_cfg.loss), run as `pkd distill` would run it, in its own directory under run.out.
    """
    from pkd import api
    from pkd.cache import default_cache_root
    from pkd.data import resolve_task

    if dist.launched():
        raise UsageError("pkd sweep starts its own processes (--jobs); run it directly, not under accelerate launch")
    if search.jobs < 1:
        raise UsageError(f"--jobs {search.jobs}: must be at least 1")
    grid = parse_grid(search.grid)
    trials = expand(grid, search.random_trials, train_cfg.seed)
    task = resolve_task(run.task, run.data, distill_cfg.teacher)
    distill_cfg, cfg = api.student_configs(task, distill_cfg, train_cfg)
    records = {trial_name(params): _trial_record(task, params, distill_cfg, train_cfg) for params in trials}
    api.check_student_out(run, distill_cfg)
    if run.resume:  # a kept trial, finished or not, made with other settings would mix them into the tables
        for name, record in records.items():
            check_resume(Path(run.out) / name, record)
    distill_cfg = replace(distill_cfg, cache_dir=str(Path(distill_cfg.cache_dir or default_cache_root()).resolve()))
    _build_cache(run, distill_cfg, cfg, trials)
    out = prepare_out_dir(run.out, run.overwrite, run.resume)
    write_json(out / SWEEP_FILE, {"teacher": distill_cfg.teacher, "task": task.name,
                                  "student_layers": distill_cfg.student_layers, "method": distill_cfg.method,
                                  "student_init": distill_cfg.student_init, "grid": grid,
                                  "random": search.random_trials, "jobs": search.jobs,
                                  "loss": asdict(distill_cfg.loss), "train": asdict(cfg),
                                  "augment": asdict(distill_cfg.augmentation),
                                  "cache_dir": distill_cfg.cache_dir, "trials": list(records)})
    return _run_trials(out, trials, list(grid), run, distill_cfg, train_cfg, search.jobs)


def _trial_record(task: Task, params: dict, distill_cfg: DistillConfig, train_cfg: TrainConfig) -> dict:
    """What a trial's run.json will say of its settings, for --resume to check before any work."""
    from pkd import api
    from pkd.losses import loss_for

    trial_distill, trial_train = trial_configs(params, distill_cfg, train_cfg)
    trial_cfg = api.student_configs(task, trial_distill, trial_train)[1]  # as the trial's `pkd distill` fills it
    loss = asdict(loss_for(distill_cfg.method, trial_distill.loss))
    if loss["beta"] == 0:  # no PT: recorded as the paper's pooling (pkd.train.run_record)
        loss["pt_pooling"] = "cls"
    elif loss["pt_pooling"] == "auto":  # resolved on the teacher when the trial runs, and checked then
        del loss["pt_pooling"]
    return {"method": distill_cfg.method, "student_layers": distill_cfg.student_layers,
            "student_init": distill_cfg.student_init, "train": asdict(trial_cfg), "loss": loss,
            # given layers are compared with the trials' (probed ones are chosen again by each trial's distill)
            **({"init_layers": distill_cfg.init_layers} if distill_cfg.init_layers else {}),
            "augment": asdict(distill_cfg.augmentation.applied())}  # its file's sha256: checked as the trial runs


def _build_cache(run: RunConfig, distill_cfg: DistillConfig, cfg: TrainConfig, trials: list[dict]) -> None:
    """The teacher's cache, built once before the trials (which then only open it, in parallel too): the layers and
    pooling each trial's distill asks for (pkd.losses.pt_layers, --pt-pooling resolved over the mapped layers, as
    distill resolves it). Trials without PT (beta 0) read its logits, whatever its pooling (pkd.cache)."""
    if distill_cfg.method == "ft":
        return
    from pkd import api
    from pkd.losses import layer_map_for, loss_for, pt_layers
    from pkd.models import load_config, resolve_model

    depth = load_config(resolve_model(distill_cfg.teacher), run.trust_remote_code).num_hidden_layers
    layer_map = layer_map_for(distill_cfg.method, depth, distill_cfg.student_layers, distill_cfg.layer_map)
    layers = max((pt_layers(layer_map, loss_for(distill_cfg.method, trial_configs(p, distill_cfg, cfg)[0].loss))
                  for p in trials), key=len)
    api.build_cache(distill_cfg.teacher, run.task, layers, data_dir=run.data_dir, cache_dir=distill_cfg.cache_dir,
                    max_seq_len=cfg.max_seq_len, max_train_examples=cfg.max_train_examples,
                    trust_remote_code=run.trust_remote_code, data=run.data, pt_pooling=distill_cfg.loss.pt_pooling,
                    augment=distill_cfg.augmentation)


def _run_trials(out: Path, trials: list[dict], grid_names: list[str], run: RunConfig, distill_cfg: DistillConfig,
                train_cfg: TrainConfig, jobs: int) -> dict:
    """The unfinished trials, here or `jobs` at a time in processes of their own; then the tables."""
    names = [trial_name(p) for p in trials]
    todo = [(name, params) for name, params in zip(names, trials, strict=True)
            if not trial_finished(out / name, params)]
    if not run.quiet and len(todo) < len(trials):
        print(f"pkd sweep: {len(trials) - len(todo)} of {len(trials)} trials already finished", file=sys.stderr)
    # Every trial resumes its own run directory, so a sweep run again continues where it stopped.
    trial_run = replace(run, resume=True, overwrite=False)
    failures: list[str] = []
    try:
        if jobs == 1:
            for i, (name, params) in enumerate(todo, 1):
                start, resumed = time.perf_counter(), has_checkpoints(out / name)
                best = _run_here(replace(trial_run, out=str(out / name)), *trial_configs(params, distill_cfg,
                                                                                         train_cfg))
                _mark_finished(out / name, params, best, distill_cfg.method, run.quiet, f"{i}/{len(todo)}",
                               time.perf_counter() - start, resumed)
        else:
            failures = _run_parallel(out, todo, jobs, trial_run, distill_cfg, train_cfg)
    finally:  # interrupted or not, the tables show every finished trial
        rows = [_row(name, params, out / name) for name, params in zip(names, trials, strict=True)
                if trial_finished(out / name, params)]
        best = max(rows, key=lambda r: r["score"]) if rows else None
        _write_tables(out, grid_names, rows, best)
    if failures:
        raise TrainingError(f"{len(failures)} of {len(todo)} trials failed ({'; '.join(failures)[:400]}); "
                            "run the sweep again with --resume to retry them")
    return {"trials": rows, "best": best}


def sweep(teacher: str, task: str, student_layers: int, out: str | Path, grid: Sequence[str],
          **options) -> dict:
    """run_sweep from keywords: each option is a field of RunConfig, DistillConfig, LossConfig, TrainConfig or
    SweepConfig (random_trials, jobs)."""
    return run_sweep(*from_options({"task": task, "out": out, "teacher": teacher, "student_layers": student_layers,
                                    "grid": grid, **options}, RunConfig, DistillConfig, TrainConfig, SweepConfig))


def trial_configs(params: dict, distill_cfg: DistillConfig, train_cfg: TrainConfig) -> tuple[DistillConfig,
                                                                                             TrainConfig]:
    """The configs of one trial: its loss weights into distill_cfg.loss, everything else into train_cfg."""
    loss = {k: v for k, v in params.items() if k in _LOSS}
    return (replace(distill_cfg, loss=replace(distill_cfg.loss, **loss)),
            replace(train_cfg, **{k: v for k, v in params.items() if k not in _LOSS}))


def _run_here(run: RunConfig, distill_cfg: DistillConfig, train_cfg: TrainConfig) -> dict:
    from pkd import api

    return api.run_distill(run, distill_cfg, train_cfg)


def run_trial_file(path: str | Path) -> int:
    """`python -m pkd.trials TRIAL.json`: one trial in a process of its own; prints {"best": ...} as its last line."""
    from pkd.models import quiet_transformers

    quiet_transformers()
    try:
        trial = json.loads(Path(path).read_text())
        best = _run_here(config_from_dict(RunConfig, trial["run"]), config_from_dict(DistillConfig, trial["distill"]),
                         config_from_dict(TrainConfig, trial["train"]))
    except PkdError as e:
        print(f"pkd: error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps({"best": best}))
    return 0


def _run_parallel(out: Path, todo: list[tuple[str, dict]], jobs: int, run: RunConfig, distill_cfg: DistillConfig,
                  train_cfg: TrainConfig) -> list[str]:
    """Each trial as `python -m pkd.trials TRIAL.json` in its own process, `jobs` at a time; returns the failures.

    TRIAL.json (in out/logs/, beside the trial's log) holds the trial's configs, as run_trial_file reads them."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // jobs)
    gpus = torch.cuda.device_count() if "CUDA_VISIBLE_DEVICES" not in os.environ else 0
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)
    (out / "logs").mkdir(exist_ok=True)

    def one(name: str, params: dict):
        trial_distill, trial_train = trial_configs(params, distill_cfg, train_cfg)
        trial_file = out / "logs" / f"{name}.json"
        write_json(trial_file, {"run": asdict(replace(run, out=str(out / name), quiet=True)),
                                "distill": asdict(trial_distill), "train": asdict(trial_train)})
        slot = slots.get()
        try:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                   "TOKENIZERS_PARALLELISM": "false"}
            if gpus > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
            start, resumed = time.perf_counter(), has_checkpoints(out / name)
            with open(out / "logs" / f"{name}.log", "w") as log:
                proc = subprocess.run([sys.executable, "-m", "pkd.trials", str(trial_file)], env=env,
                                      stdout=subprocess.PIPE, stderr=log, text=True)
            return proc, time.perf_counter() - start, resumed
        finally:
            slots.put(slot)

    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(one, name, params): (name, params) for name, params in todo}
        for i, future in enumerate(as_completed(futures), 1):
            name, params = futures[future]
            proc, seconds, resumed = future.result()
            lines = proc.stdout.strip().splitlines()
            if proc.returncode != 0 or not lines:
                log = out / "logs" / f"{name}.log"
                tail = log.read_text().strip().splitlines()[-1:] if log.is_file() else []
                failures.append(f"{name}: exit {proc.returncode}, {tail[0] if tail else 'no output'}")
                if not run.quiet:
                    print(f"pkd sweep: trial {i}/{len(todo)} {name} failed (see {log})", file=sys.stderr)
                continue
            _mark_finished(out / name, params, json.loads(lines[-1])["best"], distill_cfg.method, run.quiet,
                    f"{i}/{len(todo)}", seconds, resumed)
    return failures


def trial_finished(run_dir: Path, params: dict) -> bool:
    """A trial is finished once its result.json records its parameters (the trial's distill writes result.json
    first, without them; a sweep killed in between finishes the trial on --resume, from its run.json alone)."""
    return is_finished(run_dir) and read_result(run_dir).get("params") == params


def _mark_finished(run_dir: Path, params: dict, best: dict, method: str, quiet: bool, counter: str, seconds: float,
                   resumed: bool) -> None:
    """Mark a trial finished: its parameters in run.json (for `pkd report`), then result.json (pkd.rundir's schema)
    with the parameters and the wall time of the run that finished the trial (start-up, training, evaluation; for a
    resumed trial only its last part, resumed: true)."""
    label = f"{method} " + " ".join(f"{k}={_text(v)}" for k, v in params.items())
    write_record(run_dir, {**read_record(run_dir), "sweep": {"params": params, "label": label}})
    write_result(run_dir, best, params=params, seconds=seconds, resumed=resumed)
    if not quiet:
        print(f"pkd sweep: trial {counter} {run_dir.name}: score {best['score']:.2f}", file=sys.stderr)


def _row(name: str, params: dict, run_dir: Path) -> dict:
    result = read_result(run_dir)
    try:
        score = float(result["score"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{run_dir}: its result has no score ({type(e).__name__}); delete its result.json to rerun "
                        "the trial") from None
    return {"trial": name, "params": params, "score": score, "best_epoch": result.get("best_epoch"),
            "last_score": result.get("last", {}).get("score"),
            "epochs": result.get("epochs"), "seconds": result.get("seconds"),
            "train_seconds": result.get("train_seconds"), "resumed": result.get("resumed", False),
            "metrics": {k: v for k, v in result.items()
                        if isinstance(v, float) and k not in ("seconds", "train_seconds", "epoch_seconds")}}


def _write_tables(out: Path, names: list[str], rows: list[dict], best: dict | None) -> None:
    write_json(out / "results.json", {"trials": rows, "best": best["trial"] if best else None})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", *names, "score", "best_epoch", "last_score", "epochs", "seconds", "train_seconds"])
    for r in rows:
        writer.writerow([r["trial"], *(r["params"][n] for n in names), r["score"], r["best_epoch"], r["last_score"],
                         r["epochs"], r["seconds"], r["train_seconds"]])
    write_text(out / "results.csv", buf.getvalue())
    lines = ["| trial | " + " | ".join(names) + " | best-epoch dev score | best epoch | last-epoch dev score | epochs "
             "| seconds | train seconds |", "|---|" + "---|" * len(names) + "---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["score"]):
        mark = " (best)" if best is not None and r is best else ""
        last = "" if r["last_score"] is None else f"{r['last_score']:.2f}"
        lines.append(f"| {r['trial']}{mark} | " + " | ".join(_text(r["params"][n]) for n in names)
                     + f" | {r['score']:.2f} | {r['best_epoch']} | {last} | {r['epochs']} | {r['seconds']}"
                     + f"{' (resumed)' if r['resumed'] else ''} | {r['train_seconds']} |")
    summary = (f"Best: {best['trial']} (best-epoch dev score {best['score']:.2f}; the epoch is picked on dev, so "
               f"this score is optimistic), {len(rows)} trials finished.\n" if best else "No trial has finished yet.\n")
    write_text(out / "results.md", "\n".join(lines) + "\n\n" + summary)
    if best is not None:
        write_json(out / "best.json", {**best, "run_dir": str(out / best["trial"])})


if __name__ == "__main__":
    sys.exit(run_trial_file(sys.argv[1]))
