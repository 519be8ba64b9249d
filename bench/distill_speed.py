"""Step time of distillation, three ways, interleaved in one process so that machine noise cancels
(docs/results.md, "Distillation step time"):

  (a) fine-tuning the student alone (the floor for any distillation step),
  (b) PKD that runs the teacher on every step,
  (c) PKD from the teacher cache.

Default teacher (all-MiniLM-L6-v2, 6 layers) -> 3-layer student, batch 32, 64 tokens, PKD-Skip map [2, 4].
Each step is the real training step: pkd.train.batch_loss, backward, gradient clipping, and the optimizer and
schedule pkd trains with (pkd.train's: fused AdamW on CPU and CUDA).
Prints the median step times and the ratios c/a (target <= 1.10) and b/c (target >= 1.4).

    .venv/bin/python bench/distill_speed.py [--steps 10] [--batch-size 32] [--seq-len 64] [--threads N]
        [--teacher PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time

import torch

from pkd.cache import LiveTeacher, ensure_cache
from pkd.config import TrainConfig
from pkd.encoding import EncodedSplit, make_collator
from pkd.losses import LossConfig, skip_map
from pkd.models import default_teacher_path, load_classifier, load_tokenizer
from pkd.student import make_student
from pkd.tasks import Example, Split, get_task
from pkd.train import batch_loss, make_optimizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per mode (after 2 warm-up steps)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--student-layers", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--teacher", default=None, help="checkpoint to time (default: all-MiniLM-L6-v2)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    task = get_task("sst2")
    path = args.teacher or default_teacher_path()
    tokenizer = load_tokenizer(path)
    teacher = load_classifier(path, task).eval()  # its head is untrained: only the time matters here
    layer_map = skip_map(teacher.config.num_hidden_layers, args.student_layers)

    # Sentences of exactly seq-len tokens, so every batch has the same shape.
    rng = random.Random(0)
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 3][:5000]
    n = args.batch_size * (args.steps + 2)
    split = Split(task, "train", [Example((" ".join(rng.choices(words, k=args.seq_len)),), rng.randint(0, 1), str(i))
                                  for i in range(n)], "synthetic", f"synthetic-{n}-{args.seq_len}")
    data = EncodedSplit(split, tokenizer, args.seq_len)
    collate = make_collator(tokenizer)
    batches = [collate([data[i] for i in range(s, s + args.batch_size)]) for s in range(0, n, args.batch_size)]

    with tempfile.TemporaryDirectory() as cache_dir:
        cache = ensure_cache(teacher, tokenizer, data, args.seq_len, layer_map, cache_dir, device="cpu")
        pkd_cfg = LossConfig(alpha=0.7, temperature=10.0, beta=0.65)
        modes = {"a_finetune": (LossConfig(), None), "b_pkd_live_teacher": (pkd_cfg, LiveTeacher(teacher)),
                 "c_pkd_cached": (pkd_cfg, cache)}
        students = {}
        for mode in modes:
            torch.manual_seed(0)
            model = make_student(path, args.student_layers, task).train()
            optimizer, scheduler = make_optimizer(model, None, TrainConfig(lr=1e-5, epochs=1), len(batches), "cpu")
            students[mode] = (model, optimizer, scheduler)
        times: dict[str, list[float]] = {m: [] for m in modes}
        for step, batch in enumerate(batches):
            order = list(modes) if step % 2 == 0 else list(reversed(modes))  # no mode always runs first
            for mode in order:
                loss_cfg, source = modes[mode]
                model, optimizer, scheduler = students[mode]
                start = time.perf_counter()
                loss = batch_loss(model, batch, task, loss_cfg, source, layer_map if source else [])["loss"]
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), TrainConfig.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                if step >= 2:
                    times[mode].append(time.perf_counter() - start)

    med = {m: statistics.median(t) for m, t in times.items()}
    result = {"config": {"teacher": args.teacher or "all-MiniLM-L6-v2", "student_layers": args.student_layers,
                         "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps,
                         "threads": torch.get_num_threads()},
              "median_step_seconds": med,
              "c_over_a": med["c_pkd_cached"] / med["a_finetune"],
              "b_over_c": med["b_pkd_live_teacher"] / med["c_pkd_cached"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for mode, t in med.items():
        print(f"{mode:>20}: {t:.3f} s/step  ({args.batch_size / t:.1f} examples/s)")
    print(f"c/a = {result['c_over_a']:.3f}  (target <= 1.10: cached PKD costs little over plain fine-tuning)")
    print(f"b/c = {result['b_over_c']:.3f}  (target >= 1.4: the cache saves the teacher's forward pass)")


if __name__ == "__main__":
    main()
