"""The one training loop, for fine-tuning and for distillation, on Hugging Face Accelerate.

Fine-tuning is distillation with alpha = beta = 0 and no teacher. The loop evaluates on dev after every
epoch, keeps the best epoch's weights in the run directory, and writes resumable checkpoints.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from pkd import dist
from pkd.config import LossConfig, TrainConfig
from pkd.encoding import EncodedSplit, example_lengths, longest_first_loader, make_collator, model_inputs
from pkd.errors import DataError, TrainingError, UsageError
from pkd.io import atomic_dir, atomic_files, write_json
from pkd.losses import loss_terms, pkd_loss, pt_layers
from pkd.metrics import predictions_from_logits, score_examples
from pkd.models import pooled_states
from pkd.progress import show_progress
from pkd.rundir import (
    CHECKPOINT_DONE,
    append_history,
    check_resume,
    checkpoint_dir,
    checkpoints,
    prune_checkpoints,
    save_predictions,
    write_history,
    write_record,
)
from pkd.tasks import Task

if TYPE_CHECKING:
    from pkd.cache import LiveTeacher, TeacherCache


class EpochShuffle(torch.utils.data.Sampler):
    """A permutation that depends only on (seed, epoch): resumable, and the same for every method and rank."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=g).tolist())

    def __len__(self) -> int:
        return self.size


class LengthGroupedShuffle(EpochShuffle):
    """EpochShuffle's permutation, then sorted longest first within windows of 50 batches (as HF Trainer's
    group_by_length): batches of similar lengths, so less padding. Still a function of (seed, epoch) alone, so
    resumable and the same on every rank; but not the same order as EpochShuffle, so not the same results."""

    WINDOW_BATCHES = 50

    def __init__(self, lengths: list[int], seed: int, batch_size: int):
        super().__init__(len(lengths), seed)
        self.lengths, self.window = lengths, self.WINDOW_BATCHES * batch_size

    def __iter__(self):
        order = list(super().__iter__())
        return iter([i for start in range(0, len(order), self.window)
                     for i in sorted(order[start:start + self.window], key=lambda i: -self.lengths[i])])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    dist.check_device(cfg)
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[cfg.precision]
    if AcceleratorState._shared_state.get("_mixed_precision", mixed) != mixed:
        # Accelerate keeps one precision per process; the Python API may train at another one in the same process.
        AcceleratorState._reset_state(reset_partial_state=False)
    try:
        return Accelerator(mixed_precision=mixed, gradient_accumulation_steps=cfg.grad_accum,
                           dataloader_config=DataLoaderConfiguration(split_batches=True))
    except (ValueError, RuntimeError) as e:
        raise UsageError(f"--precision {cfg.precision}: not available on this device ({e})") from None


# ---------------------------------------------------------------- progress and checkpoints

@dataclass
class Progress:
    """Where a run stands. Saved in every checkpoint (state.json), so a resumed run continues exactly."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps done
    best_score: float | None = None
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)  # one record per finished epoch, as in metrics.jsonl
    # The epoch's running train loss, kept so that a resumed run logs the same mean as an uninterrupted one.
    loss_sum: float = 0.0
    loss_batches: int = 0
    # ... and of each unweighted term that the loss computes (ce, kd, pt), so the log shows which one dominates.
    term_sums: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainingState:
    """What a checkpoint saves and restores: the prepared model, PT projection, optimizer, scheduler, progress."""

    out: Path
    accelerator: Accelerator
    model: torch.nn.Module
    projection: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    progress: Progress = field(default_factory=Progress)


KEEP_WHILE_RUNNING = 2  # checkpoints kept during a run: the newest, and one to fall back on if it is damaged


def save_checkpoint(loop: TrainingState, keep: int) -> Path:
    """Every rank waits; rank 0 writes checkpoints/step-N atomically and keeps only the newest `keep`."""
    accelerator = loop.accelerator
    path = checkpoint_dir(loop.out, loop.progress.step)
    accelerator.wait_for_everyone()
    # Every rank's own torch and CUDA generators: the ranks' dropout draws differ (each pads its own share of the
    # batch), and on GPUs each rank draws on its own device.
    rng = gather_object([{"torch": torch.get_rng_state(),
                          "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}])
    if not accelerator.is_main_process:
        return path
    with atomic_dir(path) as tmp:
        state = accelerator.unwrap_model(loop.model).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, tmp / "model.safetensors")
        if loop.projection is not None:
            save_file(accelerator.unwrap_model(loop.projection).state_dict(), tmp / "projection.safetensors")
        scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else {}
        torch.save({"optimizer": loop.optimizer.state_dict(), "scheduler": loop.scheduler.state_dict(),
                    "scaler": scaler, "rng_per_rank": rng}, tmp / "optimizer.pt")
        py_state, np_state = random.getstate(), np.random.get_state()
        write_json(tmp / CHECKPOINT_DONE, {**asdict(loop.progress),
                                           "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
                                           "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]]})
    prune_checkpoints(loop.out, keep)  # the older ones, and a killed write's temporary folder
    return path


def load_checkpoint(path: Path, loop: TrainingState) -> Progress:
    """Restore the weights, optimizer, scheduler and random states of `loop` from `path`; returns its progress."""
    accelerator = loop.accelerator
    try:
        state = json.loads((path / CHECKPOINT_DONE).read_text())
        accelerator.unwrap_model(loop.model).load_state_dict(load_file(path / "model.safetensors"))
        if loop.projection is not None:
            accelerator.unwrap_model(loop.projection).load_state_dict(load_file(path / "projection.safetensors"))
        blob = torch.load(path / "optimizer.pt", weights_only=True)
        loop.optimizer.load_state_dict(blob["optimizer"])
        loop.scheduler.load_state_dict(blob["scheduler"])
        if accelerator.scaler is not None and blob["scaler"]:
            accelerator.scaler.load_state_dict(blob["scaler"])
    except Exception as e:
        raise DataError(f"{path}: corrupted checkpoint ({type(e).__name__}: {str(e)[:120]}); "
                        "delete it to resume from the previous one") from None
    ranks = blob.get("rng_per_rank") or [{"torch": blob["torch_rng"], "cuda": blob["cuda_rng"]}]  # older: rank 0's
    own = ranks[accelerator.process_index] if accelerator.process_index < len(ranks) else ranks[0]
    torch.set_rng_state(own["torch"])
    if own["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(own["cuda"])
    name, keys, *rest = state.pop("numpy_rng")
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state.pop("python_rng")
    random.setstate((version, tuple(internal), gauss))
    return Progress(**{f.name: state[f.name] for f in fields(Progress) if f.name in state})


def save_best_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path) -> None:
    """The best epoch's model and tokenizer into the run directory: save_pretrained into a temporary directory,
    then each file moved into place."""
    with atomic_files(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: EncodedSplit, tokenizer: PreTrainedTokenizerBase, batch_size: int,
                   accelerator: Accelerator | None = None) -> np.ndarray:
    """The model's logits for every example of `data`, in the data's order.

    The batches run longest first, so that each is padded to about its own examples' length; every row is put
    back at its example's position (its idx), so the result does not depend on the batching.
    """
    if accelerator is None:  # a model of its own (evaluate, predict): on the device the batches will be on
        accelerator = Accelerator(cpu=not torch.cuda.is_available())
        model.to(accelerator.device)
    loader = accelerator.prepare(longest_first_loader(data, tokenizer, batch_size))
    model.eval()
    chunks, positions = [], []
    for batch in loader:
        logits = model(**model_inputs(batch)).logits.float()
        chunks.append(accelerator.gather_for_metrics(logits).cpu())  # each example counted once
        positions.append(accelerator.gather_for_metrics(batch["idx"]).cpu())
    model.train()
    if not chunks:
        return np.zeros((0, 1), np.float32)
    logits, positions = torch.cat(chunks).numpy(), torch.cat(positions).numpy()
    # under several processes, every example must be scored exactly once
    if len(logits) != len(data) or len(np.unique(positions)) != len(data):
        raise TrainingError(f"evaluation gathered {len(logits)} predictions for {len(data)} examples")
    restored = np.empty_like(logits)
    restored[positions] = logits
    return restored


def score_parts(model: torch.nn.Module, parts: list[EncodedSplit], task: Task, tokenizer: PreTrainedTokenizerBase,
                batch_size: int, accelerator: Accelerator | None = None) -> tuple[dict[str, float], list[np.ndarray]]:
    """Metrics on each dev part, and the predictions behind them ([n] class ids, or values for regression), one
    array per part. MNLI's second (mismatched) part gets the suffix _mm. RACE adds the accuracy on each level's
    questions (accuracy_high, accuracy_middle)."""
    result: dict[str, float] = {}
    predictions = []
    for i, part in enumerate(parts):
        if not part.split.labeled:
            raise UsageError(f"{part.split.source}: split {part.split.name} has no labels and cannot be scored")
        preds = predictions_from_logits(task, predict_logits(model, part, tokenizer, batch_size, accelerator))
        scores = score_examples(task, part.split.examples, preds)
        suffix = "" if i == 0 else "_mm"
        result.update({f"{k}{suffix}": v for k, v in scores.items()})
        predictions.append(preds)
    return result, predictions


def evaluate_parts(model: torch.nn.Module, parts: list[EncodedSplit], task: Task, tokenizer: PreTrainedTokenizerBase,
                   batch_size: int, accelerator: Accelerator | None = None) -> dict[str, float]:
    """The metrics of score_parts."""
    return score_parts(model, parts, task, tokenizer, batch_size, accelerator)[0]


# ---------------------------------------------------------------- training

@dataclass
class TrainingJob:
    """One training run, whole: what `pkd finetune`, `pkd distill` and each run of a comparison or sweep hand to
    train(), in the manner of torchtune's recipe classes (the model, where the teacher's outputs come from, the
    loss and its layer map, the data and the settings) instead of a long parameter list.

    teacher: a TeacherCache or LiveTeacher (anything with .outputs(batch, layers)); None for fine-tuning.
    layer_map: teacher layers (1-based) matched by student layers 1..M-1 in the PT term ([] without PT).
    projection: the learned map from the student's width to the teacher's for PT, when they differ.
    run_info: what the command knows for run.json (method, teacher, student source, ...).
    resume: continue from the newest checkpoint, after checking that run.json has these settings; a finished run
    returns its recorded result.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    task: Task
    train_data: EncodedSplit
    dev_parts: list[EncodedSplit]
    cfg: TrainConfig
    out: Path
    loss: LossConfig = field(default_factory=LossConfig)
    teacher: TeacherCache | LiveTeacher | None = None
    layer_map: list[int] = field(default_factory=list)
    projection: torch.nn.Module | None = None
    run_info: dict = field(default_factory=dict)
    resume: bool = False
    quiet: bool = False


def train(job: TrainingJob) -> dict:
    """Train `job.model` and keep its best dev epoch in `job.out`. Returns the best epoch's metrics, with
    "best_epoch" and the last epoch's metrics under "last" (also recorded in run.json as "result")."""
    task, cfg, out = job.task, job.cfg, Path(job.out)
    layer_map = list(job.layer_map)
    loss_cfg = _setup_loss(job.loss, job.teacher, layer_map)
    record = run_record(job.run_info, cfg, loss_cfg, layer_map, task, job.train_data)
    if job.resume:
        stored = check_resume(out, record)
        if stored is not None and "result" in stored:  # finished: its checkpoints may be gone, and nothing is left
            return stored["result"]
    loop, loader, sampler = _setup_loop(job, record)
    loop.model.train()
    for epoch in range(loop.progress.epoch, cfg.epochs):
        start = time.perf_counter()
        _run_epoch(loop, job, loader, sampler, epoch, loss_cfg, layer_map)
        _end_epoch(loop, job.dev_parts, task, job.tokenizer, cfg, start, job.quiet)
    return _record_result(loop, record, cfg.keep_checkpoints)


def _setup_loop(job: TrainingJob, record: dict) -> tuple[TrainingState, torch.utils.data.DataLoader, object]:
    """The accelerator, the loader (and its sampler, which each epoch is told its number), the optimizer and its
    schedule, all prepared; restored from the newest checkpoint when resuming; run.json and metrics.jsonl as of
    that point."""
    cfg = job.cfg
    accelerator = make_accelerator(cfg)
    seed_everything(cfg.seed)
    loader = _setup_loader(job.train_data, job.tokenizer, cfg)
    sampler = loader.sampler  # prepare keeps this object, under its wrappers
    optimizer, scheduler = make_optimizer(job.model, job.projection, cfg, len(loader), accelerator.device.type)
    model, optimizer, loader, scheduler = accelerator.prepare(job.model, optimizer, loader, scheduler)
    projection = accelerator.prepare(job.projection) if job.projection is not None else None
    loop = TrainingState(Path(job.out), accelerator, model, projection, optimizer, scheduler)
    if job.resume and checkpoints(loop.out):
        loop.progress = load_checkpoint(checkpoints(loop.out)[-1], loop)
    _write_run_files(loop, record)
    return loop, loader, sampler


def _run_epoch(loop: TrainingState, job: TrainingJob, loader: torch.utils.data.DataLoader, sampler: object,
               epoch: int, loss_cfg: LossConfig, layer_map: list[int]) -> None:
    """One epoch's optimizer steps (from where a resumed run stopped), with mid-epoch checkpoints if asked for."""
    accelerator, progress, cfg = loop.accelerator, loop.progress, job.cfg
    batches = accelerator.skip_first_batches(loader, progress.batch) if progress.batch else loader
    # Accelerate's loaders count their own iterations and pass that to the sampler as the epoch; a resumed
    # run must tell them the real epoch, or it would replay an earlier epoch's order. Their set_epoch looks
    # only two wrappers down, and a multi-process loader resumed mid-epoch nests three (SkipBatchSampler,
    # BatchSamplerShard, BatchSampler), so the sampler is told directly too.
    batches.set_epoch(epoch)
    sampler.set_epoch(epoch)
    bar = show_progress(batches, len(loader), f"epoch {epoch + 1}/{cfg.epochs}", initial=progress.batch,
                        disable=job.quiet or not accelerator.is_local_main_process)
    start, seen = time.perf_counter(), 0
    # The loss and the terms its weights switch on, averaged over all processes in one reduce per batch.
    names = ["loss", *(name for name, weight in loss_terms(loss_cfg, bool(layer_map)).items() if weight > 0)]
    for batch in bar:
        parts = _train_step(loop, batch, job.task, loss_cfg, job.teacher, layer_map, cfg.max_grad_norm)
        seen += batch["input_ids"].shape[0] * accelerator.num_processes
        values = accelerator.reduce(torch.stack([parts[n].detach().float() for n in names]), reduction="mean")
        global_loss, *terms = values.tolist()
        progress.batch, progress.loss_sum, progress.loss_batches = (
            progress.batch + 1, progress.loss_sum + global_loss, progress.loss_batches + 1)
        for name, value in zip(names[1:], terms, strict=True):
            progress.term_sums[name] = progress.term_sums.get(name, 0.0) + value
        bar.set_postfix(loss=f"{global_loss:.4f}", ex_per_s=f"{seen / (time.perf_counter() - start):.1f}")
        if accelerator.sync_gradients:
            progress.step += 1
            # (not at the epoch's last batch: the end-of-epoch checkpoint of this same step follows)
            if cfg.save_every and progress.step % cfg.save_every == 0 and progress.batch < len(loader):
                save_checkpoint(loop, max(cfg.keep_checkpoints, KEEP_WHILE_RUNNING))
    bar.close()


def _setup_loss(loss_cfg: LossConfig, teacher: TeacherCache | LiveTeacher | None,
                layer_map: list[int]) -> LossConfig:
    """The loss as trained: refused without a teacher when it needs one, and PT pooling the student's states as
    the teacher's targets are pooled."""
    if (loss_cfg.alpha > 0 or loss_cfg.beta > 0) and teacher is None:
        raise UsageError("alpha or beta > 0 needs a teacher")
    if teacher is None or not layer_map or loss_cfg.beta == 0:
        return loss_cfg
    if loss_cfg.pt_pooling not in ("auto", teacher.pooling):
        raise UsageError(f"--pt-pooling {loss_cfg.pt_pooling}: the teacher's outputs are pooled with {teacher.pooling}")
    return replace(loss_cfg, pt_pooling=teacher.pooling)


def _train_step(loop: TrainingState, batch: dict, task: Task, loss_cfg: LossConfig,
                teacher: TeacherCache | LiveTeacher | None, layer_map: list[int],
                max_grad_norm: float) -> dict[str, torch.Tensor]:
    """One batch: forward, loss, backward and (when gradients are synchronised) the optimizer step. Returns the
    batch's loss and its terms (pkd.losses.pkd_loss)."""
    accelerator, optimizer = loop.accelerator, loop.optimizer
    with accelerator.accumulate(loop.model):
        parts = batch_loss(loop.model, batch, task, loss_cfg, teacher, layer_map, loop.projection)
        loss = parts["loss"]
        _check_finite(loss, loop)
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            accelerator.clip_grad_norm_(optimizer_params(optimizer), max_grad_norm)
        optimizer.step()
        loop.scheduler.step()
        optimizer.zero_grad()
    return parts


def run_record(run_info: dict, cfg: TrainConfig, loss_cfg: LossConfig, layer_map: list[int], task: Task,
               train_data: EncodedSplit) -> dict:
    """run.json as a run starts: `run_info` (what the command knows: method, teacher, student source, ...) and the
    settings of the loop. `--resume` compares it with the stored one (pkd.rundir.check_resume)."""
    loss = asdict(loss_cfg)
    if not (layer_map and loss_cfg.beta > 0):  # no PT: the pooling means nothing, and one KD run serves both poolings
        loss["pt_pooling"] = "cls"
    return {**run_info, "train": asdict(cfg), "loss": loss, "layer_map": list(layer_map),
            "task": task.name, "num_train_examples": len(train_data),
            "num_teacher_only_examples": train_data.split.teacher_only,
            "data_fingerprint": train_data.split.fingerprint,
            **({"file_task": asdict(task.files)} if task.files is not None else {})}


def _record_result(loop: TrainingState, record: dict, keep: int) -> dict:
    """Record the result in run.json, then delete all but the last `keep` checkpoints (default all of them: a
    finished run resumes from run.json alone, and for BERT-base each checkpoint is about 1.3 GB)."""
    progress = loop.progress
    result = {**progress.history[progress.best_epoch - 1], "best_epoch": progress.best_epoch,
              "last": progress.history[-1]}
    loop.accelerator.wait_for_everyone()
    if loop.accelerator.is_main_process:
        write_record(loop.out, {**record, "num_processes": loop.accelerator.num_processes, "result": result})
        prune_checkpoints(loop.out, keep)
    loop.accelerator.wait_for_everyone()
    return result


def _setup_loader(train_data: EncodedSplit, tokenizer: PreTrainedTokenizerBase,
                  cfg: TrainConfig) -> torch.utils.data.DataLoader:
    """Batches in an order that depends only on (seed, epoch), dynamically padded."""
    sampler = (LengthGroupedShuffle(example_lengths(train_data), cfg.seed, cfg.batch_size)
               if cfg.group_by_length else EpochShuffle(len(train_data), cfg.seed))
    return torch.utils.data.DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler,
                                       collate_fn=make_collator(tokenizer),
                                       # its own generator: building an iterator must not draw from the global
                                       # RNG, or a resumed run's dropout masks would differ
                                       generator=torch.Generator().manual_seed(cfg.seed))


def make_optimizer(model: torch.nn.Module, projection: torch.nn.Module | None, cfg: TrainConfig, batches_per_epoch: int,
                   device_type: str) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW (no weight decay on tensors of fewer than 2 dimensions: biases, norms) and a linear schedule with warm-up.

    The fused AdamW kernel on CPU and CUDA (elsewhere the default): the same update in one kernel instead of one
    per tensor group, which matters for small students whose optimizer step is a large share of a step
    (docs/performance.md has the measurement). Its rounding differs from the default's in the last bit."""
    params = list(model.named_parameters())
    if projection is not None:
        params += [(f"projection.{n}", p) for n, p in projection.named_parameters()]
    # By shape, not by name (families name their norms LayerNorm, ln, norm, ...): biases and norm gains are 1-d.
    optimizer = torch.optim.AdamW([
        {"params": [p for _, p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for _, p in params if p.ndim < 2], "weight_decay": 0.0}], lr=cfg.lr, eps=cfg.adam_eps,
        fused=device_type in ("cpu", "cuda"))
    total_steps = math.ceil(batches_per_epoch / cfg.grad_accum) * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def _write_run_files(loop: TrainingState, info: dict) -> None:
    """run.json (the exact configuration) and metrics.jsonl as of the checkpoint resumed from (epochs logged after
    it are dropped)."""
    if loop.accelerator.is_main_process:
        write_record(loop.out, {**info, "num_processes": loop.accelerator.num_processes})
        write_history(loop.out, loop.progress.history)


def _check_finite(loss: torch.Tensor, loop: TrainingState) -> None:
    if not torch.isfinite(loss):
        last = checkpoints(loop.out)
        raise TrainingError(f"non-finite loss ({loss.item()}) at step {loop.progress.step + 1} "
                            f"(epoch {loop.progress.epoch + 1}, batch {loop.progress.batch + 1}); last good "
                            f"checkpoint: {last[-1] if last else 'none'}")


def _end_epoch(loop: TrainingState, dev_parts: list[EncodedSplit], task: Task, tokenizer: PreTrainedTokenizerBase,
               cfg: TrainConfig, start: float, quiet: bool) -> None:
    """Score dev, log the epoch, keep the model if it is the best so far, and checkpoint (but for the last epoch,
    unless checkpoints are kept)."""
    progress, accelerator = loop.progress, loop.accelerator
    epoch = progress.epoch + 1
    batches = max(progress.loss_batches, 1)
    train_loss = progress.loss_sum / batches  # the epoch's mean
    terms = {f"train_{name}": total / batches for name, total in progress.term_sums.items()}
    progress.epoch, progress.batch, progress.loss_sum, progress.loss_batches = epoch, 0, 0.0, 0
    progress.term_sums = {}
    metrics, predictions = score_parts(loop.model, dev_parts, task, tokenizer, cfg.eval_batch_size, accelerator)
    record = {"epoch": epoch, "step": progress.step, "train_loss": train_loss, **terms,
              "epoch_seconds": round(time.perf_counter() - start, 2), **metrics}
    progress.history.append(record)
    improved = progress.best_score is None or metrics["score"] > progress.best_score
    if improved:  # on every rank: the metrics are gathered, so all ranks agree
        progress.best_score, progress.best_epoch = metrics["score"], epoch
    if accelerator.is_main_process:
        save_predictions(loop.out, epoch, predictions[0])
        append_history(loop.out, record)
        if improved:
            save_best_model(accelerator.unwrap_model(loop.model), tokenizer, loop.out)
        if not quiet:
            tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    # The last epoch's checkpoint would be deleted right away by _record_result unless some are kept: a run killed
    # before run.json records its result resumes from the previous epoch's and recomputes the same last epoch.
    if epoch < cfg.epochs or cfg.keep_checkpoints > 0:
        save_checkpoint(loop, max(cfg.keep_checkpoints, KEEP_WHILE_RUNNING))


def batch_loss(model: torch.nn.Module, batch: dict, task: Task, loss_cfg: LossConfig,
               teacher: TeacherCache | LiveTeacher | None = None, layer_map: list[int] = (),
               projection: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The student's forward pass and its PKD loss on one batch (CE alone when there is no teacher)."""
    targets = pt_layers(layer_map, loss_cfg)
    use_pt = bool(targets)
    out = model(**model_inputs(batch), output_hidden_states=use_pt)
    teacher_logits = teacher_cls = student_cls = None
    if teacher is not None:
        teacher_logits, teacher_cls = teacher.outputs(batch, targets)
    if use_pt:
        # Student layer j (1..M-1) is matched to teacher layer layer_map[j-1], pooled as the teacher's targets are.
        student_cls = pooled_states(out.hidden_states, list(range(1, len(layer_map) + 1)), batch["input_ids"],
                                    batch.get("attention_mask"), teacher.pooling)
        if projection is not None:
            student_cls = projection(student_cls)
    return pkd_loss(loss_cfg, out.logits, batch.get("labels"), task.is_regression, teacher_logits, student_cls,
                    teacher_cls, multi_label=task.multi_label, labelled=batch.get("labelled"))


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [p for group in optimizer.param_groups for p in group["params"]]
