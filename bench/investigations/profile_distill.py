"""Where the wall time of one `pkd distill` goes (issue 15): the run under cProfile, summed into phases.

Runs `pkd distill` in this process (after the imports that `pkd --version` needs, timed apart) with a fresh teacher
cache, then prints one row per phase with its cumulative seconds and share of the whole: imports, reading and
tokenizing the data, loading the teacher and building the student, the teacher cache, the training steps (forward
and loss, backward, optimizer), dev scoring, checkpoints, the saved model. Phases are cumulative times of pkd's
own functions, so they can nest; the table says which.

  .venv/bin/python bench/investigations/profile_distill.py --teacher runs/demo/teacher -- \
      --max-train-examples 4000 --epochs 2 --max-seq-len 64 --lr 5e-5 [--no-group-by-length]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time

START = time.perf_counter()
from pkd.cli import main as pkd_main  # noqa: E402

IMPORTED = time.perf_counter()
import pkd.api  # noqa: E402, F401  (torch, transformers and the rest: what `pkd --help` does not import)

LIBRARIES = time.perf_counter()

# (label, module file suffix, function name); the first matching entry of pstats gives its cumulative time.
PHASES = [
    ("read and tokenize train + dev", "pkd/encoding.py", "encode_splits"),
    ("load teacher, build student", "pkd/api.py", "prepare_distillation"),
    ("teacher cache (build)", "pkd/cache.py", "ensure_cache"),
    ("training loop (all of train())", "pkd/train.py", "train"),
    ("  forward + loss", "pkd/train.py", "batch_loss"),
    ("  backward", "accelerate/accelerator.py", "backward"),
    ("  optimizer step", "accelerate/optimizer.py", "step"),
    ("  dev scoring", "pkd/train.py", "score_parts"),
    ("  checkpoints", "pkd/train.py", "save_checkpoint"),
    ("  best model saved", "pkd/train.py", "save_best_model"),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True)
    p.add_argument("--data-dir", default="../shared/data/glue")
    p.add_argument("--method", default="pkd-skip")
    args, extra = p.parse_known_args()
    extra = [a for a in extra if a != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["distill", "--teacher", args.teacher, "--task", "sst2", "--student-layers", "3", "--method",
                args.method, "--data-dir", args.data_dir, "--cache-dir", f"{tmp}/cache", "--out", f"{tmp}/run",
                "--quiet", *extra]
        profiler = cProfile.Profile()
        begin = time.perf_counter()
        profiler.enable()
        code = pkd_main(argv)
        profiler.disable()
        end = time.perf_counter()
    if code != 0:
        sys.exit(code)
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = end - START
    rows = [("import pkd.cli (what `pkd --version` needs)", IMPORTED - START),
            ("import torch, transformers, pkd.api", LIBRARIES - IMPORTED)]
    for label, suffix, name in PHASES:
        ct = sum(v[3] for (file, _, fn), v in stats.items() if fn == name and file.endswith(suffix))
        rows.append((label, ct))
    top = sum(seconds for label, seconds in rows[2:] if not label.startswith(" "))
    rows.append(("other (in the command: config checks, the teacher's dev score, ...)", end - begin - top))
    print(f"`pkd {' '.join(argv[:1] + extra)}`, method {args.method}: {total:.1f} s from start-up")
    print("| phase (indented: part of the training loop) | seconds | share |")
    print("|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {100 * seconds / total:.0f}% |")


if __name__ == "__main__":
    main()
