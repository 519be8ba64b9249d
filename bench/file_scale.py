"""How a task defined by a large file scales (issue 25, item 8): peak RSS and the time to the first training step
of `pkd distill --train-file` for generated CSVs of 10k, 100k and 1M rows.

    python bench/file_scale.py [--rows 10000,100000,1000000] [--model PATH] [--train-examples 2000]
    python bench/file_scale.py --checks 1000000     # where reading and checking the file's memory goes

The CSVs (an id, a short made-up support-ticket text of 6-30 words, one of 4 string labels) are written to a
temporary directory and deleted afterwards; nothing is committed. A teacher is fine-tuned once on the smallest
file (256 examples, 1 epoch, 32 tokens). Then each size runs in a fresh process, as a user would run it:

1. `pkd cache --teacher T --train-file FILE --max-train-examples N`: reads the file into Arrow (datasets' csv
   loader, memory-mapped), checks every row (texts, labels, ids), holds out 10% as dev, tokenises the first N
   training rows and runs the teacher over them;
2. `pkd distill --teacher T --train-file FILE --student-layers 2 --max-train-examples N
   --max-eval-examples 1000`, stopped at its first training step (the cache from 1 is reused).

Printed per size: the file's size, the seconds of step 1, the seconds from the start of step 2's process to its
first training step, and the peak RSS of each process (ru_maxrss). The issue's targets at 1M rows: peak RSS
<= 2 GB, first step within 2 minutes. Run it once on a quiet machine: it takes a few minutes, mostly writing and
reading the 1M-row file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("invoice charge refund card plan login password account locked email order parcel tracking delivery "
         "address damaged app crash error page upload export search dashboard report slow broken twice please "
         "help urgent again since update yesterday my the a is not when I cannot").split()
LABELS = ("billing", "bug", "login", "shipping")


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,text,label\n")
        for i in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(6, 30)))
            f.write(f"r{i},\"{text}, thanks\",{LABELS[rng.randrange(4)]}\n")


def child(argv: list[str]) -> None:
    """One pkd command in this process; for distill, stop at the first training step. Prints one JSON line."""
    start = time.perf_counter()
    import pkd.train
    from pkd.cli import main

    class FirstStep(Exception):
        pass

    seconds = {}
    real = pkd.train.batch_loss

    def first_step(*args, **kwargs):
        seconds["first_step"] = time.perf_counter() - start
        real(*args, **kwargs)
        raise FirstStep

    if argv[0] == "distill":
        pkd.train.batch_loss = first_step
    try:
        code = main(argv)
    except FirstStep:
        code = 0
    seconds.setdefault("total", time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(json.dumps({"code": code, **seconds, "peak_rss_mb": peak}))


def rss_mb() -> tuple[int, int]:
    """This process's resident and peak resident memory, MB (Linux)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) // 1024, int(status["VmHWM"].split()[0]) // 1024


def checks(rows: int) -> None:
    """--checks N: where the memory of reading and checking an N-row file goes, step by step in one process
    without torch: RSS and peak RSS after each of pkd.files' steps."""
    from pkd import files
    from pkd.tasks import FileSpec

    with tempfile.TemporaryDirectory(prefix="pkd-file-checks-") as tmp:
        os.environ["PKD_CACHE"] = str(Path(tmp) / "cache")
        path = Path(tmp) / "tickets.csv"
        write_csv(path, rows)
        spec = FileSpec(train=str(path), text_columns=("text",), label_column="label", id_column="id", labels=LABELS)
        print(f"| step ({rows:,} rows) | s | RSS MB | peak RSS MB |\n|---|---|---|---|")
        print("| start (pyarrow imported) | - | {} | {} |".format(*rss_mb()))
        table = None
        steps = [("read into Arrow (datasets' csv loader, sha256 and UTF-8 check)", lambda: files.read_file(path)),
                 ("infer the label kind and list", lambda: files.infer_labels(table, "label", None, "")),
                 ("check every text", lambda: files.check_texts(table, spec)),
                 ("check the ids are unique", lambda: files.check_ids(table, spec)),
                 ("every row's label id", lambda: files.labels_of(table, spec)),
                 ("the stratified dev hold-out", lambda: files.holdout_of(table, spec))]
        for name, step in steps:
            start = time.perf_counter()
            result = step()
            table = table or result
            rss, peak = rss_mb()
            print(f"| {name} | {time.perf_counter() - start:.1f} | {rss} | {peak} |")


def run_child(argv: list[str], env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, argv)], capture_output=True, text=True,
                         env=env)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"failed: pkd {' '.join(map(str, argv))}\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise SystemExit(f"pkd {' '.join(map(str, argv))}: exit {result['code']}\n{out.stderr[-2000:]}")
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--checks":
        checks(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--model", default=None, help="the encoder to fine-tune as teacher (default: pkd's)")
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--max-seq-len", type=int, default=64)
    args = parser.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    with tempfile.TemporaryDirectory(prefix="pkd-file-scale-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "PKD_CACHE": str(root / "cache"), "TOKENIZERS_PARALLELISM": "false"}
        files = {}
        for n in sizes:
            files[n] = root / f"tickets-{n}.csv"
            t = time.perf_counter()
            write_csv(files[n], n)
            print(f"wrote {n:,} rows, {files[n].stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t:.1f}s",
                  file=sys.stderr)
        teacher = root / "teacher"
        run_child(["finetune", "--train-file", files[sizes[0]], "--out", teacher, "--max-train-examples", "256",
                   "--max-eval-examples", "256", "--epochs", "1", "--max-seq-len", "32", "--quiet",
                   *(["--model", args.model] if args.model else [])], env)
        print("| rows | CSV MB | `pkd cache` s | its peak RSS MB | `pkd distill` to 1st step s | its peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for n in sizes:
            common = ["--teacher", teacher, "--train-file", files[n], "--max-train-examples", args.train_examples,
                      "--max-seq-len", args.max_seq_len]
            cache = run_child(["cache", *common], env)
            distill = run_child(["distill", *common, "--student-layers", "2", "--max-eval-examples", "1000",
                                 "--epochs", "1", "--out", root / f"student-{n}", "--quiet"], env)
            print(f"| {n:,} | {files[n].stat().st_size / 1e6:.1f} | {cache['total']:.1f} | "
                  f"{cache['peak_rss_mb']:.0f} | {distill['first_step']:.1f} | {distill['peak_rss_mb']:.0f} |",
                  flush=True)
            files[n].unlink()


if __name__ == "__main__":
    main()
