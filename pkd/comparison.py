"""`pkd compare`: the methods (FT, KD, PKD-Skip, PKD-Last) side by side, and the statistics and Markdown that
summarise them.

Every method trains from the same student initialisation and sees the same data order for a given seed, from one
teacher cache, so the runs pair up by seed: a difference between two methods is then a difference of method plus
seed luck, and pkd.stats puts both seed and dev-example variance into its interval. Each finished run is kept
(`<method>-seed<N>/`, pkd.rundir) and reused by `--resume`; compare.json and compare.md are rewritten after every
run, so a long comparison shows its results as they come.

The per-method statistics (pkd.stats.seed_statistics) are the ones `pkd report` shows for any group of runs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from pkd import api, inference
from pkd.api import Distillation
from pkd.augment import record as augment_record
from pkd.cache import ensure_cache
from pkd.config import (
    SELECTIONS,
    AugmentConfig,
    CompareConfig,
    DistillConfig,
    ExportConfig,
    RunConfig,
    TrainConfig,
    from_options,
)
from pkd.data import resolve_task
from pkd.dist import barrier, is_main, prepare_out_dir_once
from pkd.encoding import EncodedSplit, encode_splits
from pkd.io import write_json, write_text
from pkd.losses import layer_map_for, loss_for
from pkd.metrics import compute_metrics, floor_score
from pkd.rundir import (
    COMPARE_FILE,
    COMPARE_MARKDOWN,
    check_resume,
    is_finished,
    library_versions,
    predictions_file,
    releases_out_dirs,
    run_name,
    selected_record,
    write_result,
)
from pkd.stats import seed_statistics, verdicts, verdicts_markdown
from pkd.train import TrainingJob, evaluate_parts, run_record, train


def compare_markdown(task: str, layers: int, teacher_score: float, floor: float | None, table: dict[str, dict],
                     select: str = "best") -> str:
    """compare.md: one row per method, as `pkd compare` prints it; the header says which epoch's score it shows,
    each seed's score stands beside the mean (with 2-3 seeds a std hides an outlier), and retention is given of
    the teacher's score and of its gain over the majority-class floor."""
    floor_text = f", majority-class floor {floor:.2f}" if floor is not None else ""
    lines = [f"{task}, {layers}-layer students (teacher {teacher_score:.2f}{floor_text})", "",
             f"| method | {SELECTIONS[select]} (mean ± std) | per seed | retention | gain over floor retained | runs |",
             "|---|---|---|---|---|---|"]
    for method, row in table.items():
        gain = row.get("gain_retention")
        per_seed = ", ".join(f"{s:.2f}" for s in row["scores"])
        lines.append(f"| {method} | {row['mean']:.2f} ± {row['std']:.2f} | {per_seed} | {row['retention']:.1f}% | "
                     f"{'-' if gain is None else f'{gain:.1f}%'} | {len(row['scores'])} |")
    return "\n".join(lines) + "\n"


def selected_predictions(out: Path, methods: tuple[str, ...], first_seed: int,
                         epochs: dict[str, list[int]]) -> dict[str, list[np.ndarray]]:
    """Each method's dev predictions at the given epochs (the verdicts': each run's last), one array per seed; a
    method with a run that kept none (made before pkd saved them) is left out, so its pairs get no verdict."""
    found = {}
    for method in methods:
        files = [predictions_file(out / run_name(method, first_seed + i), epoch)
                 for i, epoch in enumerate(epochs[method])]
        if all(f.is_file() for f in files):
            found[method] = [np.load(f) for f in files]
    return found


class Comparison:
    """One `pkd compare` job: set up once (the teacher, its cache, the dev split and its score), then one run per
    (method, seed), seed by seed, each from that seed's student initialisation."""

    def __init__(self, run: RunConfig, distill_cfg: DistillConfig, train_cfg: TrainConfig,
                 compare_cfg: CompareConfig):
        self.run, self.compare_cfg = run, compare_cfg
        self.distill_cfg, self.cfg, note = api.student_settings(resolve_task(run.task, run.data, distill_cfg.teacher),
                                                                distill_cfg, train_cfg)
        loss_for("pkd-skip", self.distill_cfg.loss)  # validates the weights before any work
        api.check_student_out(run, self.distill_cfg)
        self.methods = compare_cfg.methods
        self.prepared = self._setup_teacher()
        self.runs = [(method, self.cfg.seed + i) for i in range(compare_cfg.seeds) for method in self.methods]
        self._check_kept_runs()
        api.say(note)
        api.say(self.prepared.init_note)
        self._setup_data()
        self.results: dict[str, list[float]] = {m: [] for m in self.methods}
        self.epochs: dict[str, list[int]] = {m: [] for m in self.methods}  # selected epochs, whose predictions pair
        self.deployed: dict[str, list[float]] = {m: [] for m in self.methods}

    def _setup_teacher(self) -> Distillation:
        """One load of the teacher serves every method (only the layer map differs), and one probe resolves the
        pooling over the union of the methods' mapped layers."""
        # a method with a layer map checks PT's widths; else KD, whose teacher labels any extra rows (FT has none)
        with_map = next((m for m in self.methods if m not in ("ft", "kd")),
                        "kd" if "kd" in self.methods else self.methods[0])
        prepared = api.prepare_distillation(self.run.task, replace(self.distill_cfg, method=with_map),
                                            self.run.trust_remote_code, self.run.data)
        depth = prepared.teacher.config.num_hidden_layers
        self.maps = {m: layer_map_for(m, depth, self.distill_cfg.student_layers) for m in self.methods}
        self.union = sorted({k for layers in self.maps.values() for k in layers})
        stored = len(self.union) if self.distill_cfg.loss.beta > 0 else 0
        labelled, split, self.extra = api.training_rows(prepared, self.run, self.cfg, stored)
        self.teacher_data = EncodedSplit(split, prepared.tokenizer, self.cfg.max_seq_len)
        self.train_data = prepared.for_student([self.teacher_data], self.cfg.max_seq_len)[0]
        # FT has no teacher: it trains on the labelled rows alone, and its runs do not depend on the extra ones
        self.ft_data = self.train_data if not split.teacher_only else EncodedSplit(
            labelled, prepared.student_tokenizer, self.cfg.max_seq_len)
        weights, self.probe = api.resolve_pooling(prepared.teacher, prepared.tokenizer, self.teacher_data, self.union,
                                                  self.distill_cfg.loss)
        self.distill_cfg = replace(self.distill_cfg, loss=weights)
        return prepared

    def _info(self, method: str) -> dict:
        """What run.json records of the command for one method's runs."""
        p = self.prepared
        return {"command": "compare", "method": method, "teacher": p.teacher_path,
                "student_init": self.distill_cfg.student_init, "student_source": p.student_source,
                "student_layers": self.distill_cfg.student_layers, "init_layers": p.config.init_layers,
                "base_model": p.student_source, "tokenizers": p.tokenizers(), "versions": library_versions(),
                "augment": augment_record(AugmentConfig()) if method == "ft" else self.extra}

    def _data(self, method: str) -> EncodedSplit:
        """What a method's runs train on: the training split with its teacher-only rows, but for FT."""
        return self.ft_data if method == "ft" else self.train_data

    def _record(self, method: str, seed: int) -> dict:
        return run_record(self._info(method), replace(self.cfg, seed=seed), loss_for(method, self.distill_cfg.loss),
                          self.maps[method], self.prepared.task, self._data(method))

    def _check_kept_runs(self) -> None:
        """With --resume, every kept run, finished or not, must have been made with these settings: checked before
        any work."""
        if self.run.resume:
            for method, seed in self.runs:
                check_resume(Path(self.run.out) / run_name(method, seed), self._record(method, seed))

    def _setup_data(self) -> None:
        """The teacher cache, the dev split, the teacher's score on it (measured unless given) and the majority-class
        floor; then the teacher is freed, since every student trains from the cache."""
        p, cfg = self.prepared, self.cfg
        self.cache = ensure_cache(p.teacher, p.tokenizer, self.teacher_data, cfg.max_seq_len, self.union,
                                  self.distill_cfg.cache_dir, pooling=self.distill_cfg.loss.pt_pooling)
        self.signal = api.patient_signal(self.cache, self.union, self.distill_cfg.loss, self.probe)
        teacher_dev = encode_splits(p.task, "dev", p.tokenizer, cfg.max_seq_len, self.run.data_dir,
                                    cfg.max_eval_examples)
        self.dev = p.for_student(teacher_dev, cfg.max_seq_len)
        self.teacher_score = self.compare_cfg.teacher_score
        if self.teacher_score is None:
            self.teacher_score = evaluate_parts(p.teacher, teacher_dev, p.task, p.tokenizer,
                                                cfg.eval_batch_size)["score"]
        p.teacher = None
        dev_examples = self.dev[0].split.examples
        self.floor = floor_score(p.task, [e.label for e in self.train_data.split.gold], dev_examples)
        self.labels = np.array([e.label for e in dev_examples])
        self.out = prepare_out_dir_once(self.run.out, self.run.overwrite, self.run.resume)

    def execute(self) -> dict:
        """Every (method, seed) run, finished ones reused; the tables after each new run and at the end."""
        student = None  # this seed's initialisation, built once and copied for each method
        for method, seed in self.runs:
            run_dir = self.out / run_name(method, seed)
            fresh = not is_finished(run_dir)
            if fresh:
                if student is None or student[0] != seed:
                    student = (seed, self.prepared.build_student(seed))  # the previous seed's is freed
                self._train_one(method, seed, run_dir, copy.deepcopy(student[1]))
            self.results[method].append(selected_record(run_dir, self.compare_cfg.select)["score"])
            # Verdicts pair the last epoch's predictions whatever --select shows: the best epoch is picked on the
            # very dev set the interval resamples, which would make the interval optimistic (docs/method.md).
            self.epochs[method].append(selected_record(run_dir, "last")["epoch"])
            self._export(run_dir, self.deployed[method])
            if fresh and (method, seed) != self.runs[-1]:
                self.summarise()
        table = self.summarise()
        barrier()  # every rank returns once the tables exist
        return table

    def _train_one(self, method: str, seed: int, run_dir: Path, student: tuple) -> None:
        model, projection = student
        prepare_out_dir_once(run_dir, resume=True)  # an interrupted run continues from its checkpoint
        info = {**self._info(method), "cache": str(self.cache.path), "teacher_score": self.teacher_score,
                "floor_score": self.floor, "pt_signal": self.signal if self.maps[method] else None}
        p = self.prepared
        result = train(TrainingJob(model, p.student_tokenizer, p.task, self._data(method), self.dev,
                                   replace(self.cfg, seed=seed), run_dir, loss_for(method, self.distill_cfg.loss),
                                   None if method == "ft" else self.cache, self.maps[method], projection, info,
                                   resume=True, quiet=self.run.quiet))
        if is_main():
            write_result(run_dir, result)

    def _export(self, run_dir: Path, scores: list[float]) -> None:
        """`compare --export`: the finished run as ONNX (fp32 or int8) in run_dir/export-<precision>, scored on dev
        (kept when it exists, as the run is); its dev score joins `scores`."""
        precision = self.compare_cfg.export
        if precision == "none" or not is_main():
            return
        target = run_dir / f"export-{precision}"
        if not inference.is_export_dir(target):
            api.run_export(run_dir, ExportConfig(out=str(target), quantize="int8" if precision == "int8" else "none",
                                                 evaluate=True, data_dir=self.run.data_dir))
        scores.append(inference.read_export(target)["dev"]["score"])

    def summarise(self) -> dict:
        """compare.json and compare.md over the runs finished so far (all of them at the end), so that a long
        comparison shows its results as they come and an interrupted one keeps them."""
        done = tuple(m for m in self.methods if self.results[m])
        table = seed_statistics({m: self.results[m] for m in done}, self.teacher_score, self.floor)
        if not is_main():
            return table
        common = min(len(self.results[m]) for m in done)  # paired verdicts need the same seeds on both sides
        selected = {m: self.epochs[m][:common] for m in done}
        pairs = verdicts(lambda p, y: compute_metrics(self.prepared.task, p, y)["score"], self.labels,
                         selected_predictions(self.out, done, self.cfg.seed, selected))
        summary, markdown = self._summary(table, pairs), self._markdown(table, pairs, common)
        if self.compare_cfg.export != "none":  # the same runs, deployed: ONNX Runtime, scored on dev
            variant = "ort-int8" if self.compare_cfg.export == "int8" else "ort"
            deployed = seed_statistics({m: self.deployed[m] for m in done}, self.teacher_score, self.floor)
            summary["deployed"] = {"variant": variant, "methods": deployed}
            markdown += (f"\nDeployed as {variant} (export-{self.compare_cfg.export}/ in each run):\n\n"
                         + compare_markdown(self.prepared.task.name, self.distill_cfg.student_layers,
                                            self.teacher_score, self.floor, deployed))
        write_json(self.out / COMPARE_FILE, summary)
        write_text(self.out / COMPARE_MARKDOWN, markdown)
        return table

    def _summary(self, table: dict, pairs: list[dict]) -> dict:
        """compare.json: the settings (a valid --config file), the table and the verdicts."""
        weights = self.distill_cfg.loss
        return {"task": self.prepared.task.name, "student_layers": self.distill_cfg.student_layers,
                "teacher": self.prepared.teacher_path, "teacher_score": self.teacher_score,
                "floor_score": self.floor, "select": self.compare_cfg.select,
                "runs_finished": sum(len(v) for v in self.results.values()), "runs_planned": len(self.runs),
                "methods": table, "train": asdict(self.cfg), "student_init": self.distill_cfg.student_init,
                "dev_examples": len(self.labels), "verdicts": pairs,
                "loss": {"alpha": weights.alpha, "temperature": weights.temperature, "beta": weights.beta,
                         "pt_pooling": weights.pt_pooling}, "pt_signal": self.signal, "augment": self.extra}

    def _markdown(self, table: dict, pairs: list[dict], common: int) -> str:
        finished = sum(len(v) for v in self.results.values())
        markdown = "" if finished == len(self.runs) else (
            f"Partial: {finished} of {len(self.runs)} runs finished (`--resume` continues); verdicts over the first "
            f"{common} seed(s).\n\n")
        markdown += compare_markdown(self.prepared.task.name, self.distill_cfg.student_layers, self.teacher_score,
                                     self.floor, table, self.compare_cfg.select)
        return markdown + ("\nPaired differences of the last epoch's predictions, 95% interval over training seeds "
                           "and dev examples (pkd.stats):\n\n"
                           + verdicts_markdown(pairs))


@releases_out_dirs
def run_compare(run: RunConfig, distill_cfg: DistillConfig, train_cfg: TrainConfig, compare_cfg: CompareConfig) -> dict:
    """The methods (FT, KD, PKD-Skip and PKD-Last) on the same student initialisation and data order per seed;
    returns each method's seed_statistics. Each finished (method, seed) run is kept and skipped when the comparison
    is run again with --resume."""
    return Comparison(run, distill_cfg, train_cfg, compare_cfg).execute()


def compare(teacher: str, task: str, student_layers: int, out: str | Path, **options) -> dict:
    """run_compare from keywords: each option is a field of RunConfig, DistillConfig, LossConfig, TrainConfig
    or CompareConfig."""
    return run_compare(*from_options({"task": task, "out": out, "teacher": teacher, "student_layers": student_layers,
                                      **options}, RunConfig, DistillConfig, TrainConfig, CompareConfig))
