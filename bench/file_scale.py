"""How a task defined by a large file scales (issue 25, item 8; issue 35, item 7): peak RSS, the teacher cache's
build rate against the teacher's own forward, and the time to the first training step of `pkd distill
--train-file`, for generated CSVs of 10k, 100k and 1M rows, every training row read, tokenised and cached.

    python bench/file_scale.py [--rows 10000,100000,1000000] [--model PATH] [--model-layers N] [--train-examples N]
    python bench/file_scale.py --checks 1000000     # where reading and checking the file's memory goes

The CSVs (an id, a short made-up support-ticket text of 6-30 words, one of 4 string labels) are written to a
temporary directory and deleted afterwards; nothing is committed. A teacher is fine-tuned once on the smallest
file (256 examples, 1 epoch, 32 tokens) from --model (default: pkd's). Then each size runs in a fresh process, as a
user would run it:

1. `pkd cache --teacher T --train-file FILE`: reads the file into Arrow (datasets' csv loader, memory-mapped),
   checks every row (texts, labels, ids), holds out 10% as dev, tokenises every training row (pkd.encoding),
   probes the pooling and runs the teacher over them all, storing every layer (`--train-examples N`: only the
   first N rows, as issue 25 measured);
2. in the same process, after its peak RSS is read: the teacher's raw forward (logits only, as `pkd bench` times
   it) on the same encoded inputs, in the cache's batches (batch size 128, longest first, the same max_seq_len),
   over up to --forward-examples rows spread evenly over the split;
3. `pkd distill --teacher T --train-file FILE --student-layers 2 --max-eval-examples 1000` (the student's depth:
   --student-layers, its method: --method), stopped at its first training step (the cache from 1 is reused; the
   whole training split is tokenised again).

Printed per size: the file's size, the seconds of step 1 (and of its tokenising and its teacher pass), its build
rate (training rows over the seconds of tokenising, probing and the teacher pass), the raw forward's rate and the
ratio of the two, the seconds from the start of step 3's process to its first training step, and the peak RSS of
each process (ru_maxrss), with the peaks of its anonymous and its file-backed part (RssAnon, RssFile: pages of
mapped files, such as the Arrow table) sampled every 0.2 s. Issue 35's targets at 1M rows: peak RSS <= 2 GB, a
build rate >= 80% of the raw forward's; issue 25's: the first step within 2 minutes. Rates measured in one run
compare; across runs of a shared machine they do not.
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


def timed_steps(seconds: dict, captured: dict) -> None:
    """Time pkd's tokenising, pooling probe and teacher pass (into `seconds`), and keep the cache build's teacher,
    tokenizer, data and batch size (into `captured`) for the raw forward."""
    import pkd.api
    import pkd.encoding

    class TimedSplit(pkd.encoding.EncodedSplit):
        def __init__(self, *args, **kwargs):
            start = time.perf_counter()
            super().__init__(*args, **kwargs)
            seconds["tokenise"] = seconds.get("tokenise", 0.0) + time.perf_counter() - start

    def timing(name: str, real):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        return run

    real_ensure = pkd.api.ensure_cache

    def ensure(teacher, tokenizer, data, *args, **kwargs):
        captured.update(teacher=teacher, tokenizer=tokenizer, data=data, batch_size=kwargs.get("batch_size", 128))
        return real_ensure(teacher, tokenizer, data, *args, **kwargs)

    pkd.encoding.EncodedSplit = pkd.api.EncodedSplit = TimedSplit  # pkd cache builds it in pkd.api
    pkd.api.resolve_pooling = timing("probe", pkd.api.resolve_pooling)
    pkd.api.ensure_cache = timing("teacher_pass", ensure)


def forward_rate(captured: dict, examples: int) -> float:
    """Examples/s of the teacher's forward alone (logits, no hidden states, no tokenising or collating counted) on
    up to `examples` of the cache build's encoded rows, spread evenly, in its batches (longest first)."""
    import torch

    from pkd.encoding import longest_first_loader, model_inputs

    data, teacher = captured["data"], captured["teacher"].eval()
    n = len(data)
    picks = sorted({i * n // min(n, examples) for i in range(min(n, examples))}) if examples else range(n)
    loader = longest_first_loader(torch.utils.data.Subset(data, picks), captured["tokenizer"], captured["batch_size"])
    spent = 0.0
    with torch.inference_mode():
        for batch in loader:
            start = time.perf_counter()
            teacher(**model_inputs(batch))
            spent += time.perf_counter() - start
    return len(picks) / spent


class MemorySampler:
    """Peak resident memory of this process by kind, sampled every `every` seconds from /proc/self/status (Linux):
    RssAnon (the heap: Python objects, tensors, Arrow buffers) and RssFile (pages of files mapped into the process,
    such as a memory-mapped .npy being written or read), which ru_maxrss counts together."""

    def __init__(self, every: float = 0.2):
        import threading

        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, args=(every,), daemon=True)
        self.thread.start()

    def run(self, every: float) -> None:
        while not self.stop.wait(every):
            self.sample()

    def sample(self) -> None:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in self.peak:
                self.peak[name] = max(self.peak[name], int(value.split()[0]) // 1024)

    def finish(self) -> dict:
        self.stop.set()
        self.thread.join()
        self.sample()
        return {"peak_anon_mb": self.peak["RssAnon"], "peak_file_mb": self.peak["RssFile"]}


def child(argv: list[str], forward_examples: int) -> None:
    """One pkd command in this process; for distill, stop at the first training step; after cache, the teacher's
    raw forward. Prints one JSON line."""
    start = time.perf_counter()
    import pkd.train
    from pkd.cli import main

    class FirstStep(Exception):
        pass

    seconds: dict = {}
    captured: dict = {}
    real = pkd.train.batch_loss

    def first_step(*args, **kwargs):
        seconds["first_step"] = time.perf_counter() - start
        real(*args, **kwargs)
        raise FirstStep

    if argv[0] == "distill":
        pkd.train.batch_loss = first_step
    timed_steps(seconds, captured)
    memory = MemorySampler()
    try:
        code = main(argv)
    except FirstStep:
        code = 0
    seconds.setdefault("total", time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    result = {"code": code, **seconds, "peak_rss_mb": peak, **memory.finish()}
    if argv[0] == "cache" and code == 0:
        result["examples"] = len(captured["data"])
        result["forward_rate"] = forward_rate(captured, forward_examples)
    print(json.dumps(result))


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


def first_layers(model: str | None, layers: int, out: str) -> None:
    """The encoder `model` (default: pkd's teacher) cut to its first `layers` layers, with its tokenizer, in `out`."""
    from transformers import AutoModel, AutoTokenizer

    from pkd.models import default_teacher_path

    source = model or default_teacher_path()
    encoder = AutoModel.from_pretrained(source)
    encoder.encoder.layer = encoder.encoder.layer[:layers]
    encoder.config.num_hidden_layers = layers
    encoder.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)


def run_child(argv: list[str], env: dict, forward_examples: int = 0) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(forward_examples), *map(str, argv)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"failed: pkd {' '.join(map(str, argv))}\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise SystemExit(f"pkd {' '.join(map(str, argv))}: exit {result['code']}\n{out.stderr[-2000:]}")
    return result


HEADER = ("| rows | CSV MB | `pkd cache` s | tokenise s | teacher pass s | build ex/s | raw forward ex/s | ratio | "
          "its peak RSS MB (anon / file) | `pkd distill` to 1st step s | its peak RSS MB (anon / file) |\n"
          + "|---" * 11 + "|")


def memory(result: dict) -> str:
    """ru_maxrss, and the sampled peaks of its two kinds (MemorySampler)."""
    return f"{result['peak_rss_mb']:.0f} ({result['peak_anon_mb']} / {result['peak_file_mb']})"


def row(n: int, csv_mb: float, cache: dict, distill: dict) -> str:
    build = cache["examples"] / (cache["tokenise"] + cache.get("probe", 0.0) + cache["teacher_pass"])
    return (f"| {n:,} | {csv_mb:.1f} | {cache['total']:.1f} | {cache['tokenise']:.1f} | {cache['teacher_pass']:.1f} | "
            f"{build:.0f} | {cache['forward_rate']:.0f} | {build / cache['forward_rate']:.2f} | "
            f"{memory(cache)} | {distill['first_step']:.1f} | {memory(distill)} |")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[3:], int(sys.argv[2]))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--checks":
        checks(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--model", default=None, help="the encoder to fine-tune as teacher (default: pkd's)")
    parser.add_argument("--model-layers", type=int, default=None, help="keep only the first N layers of --model "
                        "(a shallower teacher: the cache's cost per row, not its memory, shrinks with it)")
    parser.add_argument("--train-examples", type=int, default=None, help="only the first N training rows (default: "
                        "all of them)")
    parser.add_argument("--forward-examples", type=int, default=20000, help="rows the raw forward is timed on "
                        "(0: all)")
    parser.add_argument("--max-seq-len", type=int, default=64)
    parser.add_argument("--student-layers", type=int, default=2,
                        help="layers of step 3's student: fewer than --model's (1 for a 2-layer teacher)")
    parser.add_argument("--method", default="pkd-skip", help="step 3's method (kd for a 1-layer student, which has "
                        "no intermediate layer for PKD's PT term)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    from pkd.bench import cpu_features

    print(f"{os.cpu_count()} CPUs, {cpu_features()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
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
        model = args.model
        if args.model_layers:
            model = str(root / f"base-{args.model_layers}-layers")
            first_layers(args.model, args.model_layers, model)
        teacher = root / "teacher"
        run_child(["finetune", "--train-file", files[sizes[0]], "--out", teacher, "--max-train-examples", "256",
                   "--max-eval-examples", "256", "--epochs", "1", "--max-seq-len", "32", "--quiet",
                   *(["--model", model] if model else [])], env)
        print(HEADER, flush=True)
        for n in sizes:
            common = ["--teacher", teacher, "--train-file", files[n], "--max-seq-len", args.max_seq_len,
                      *(["--max-train-examples", args.train_examples] if args.train_examples else [])]
            cache = run_child(["cache", *common], env, args.forward_examples)
            print(f"{n:,} rows, pkd cache: {json.dumps(cache)}", file=sys.stderr, flush=True)  # kept if step 3 fails
            distill = run_child(["distill", *common, "--student-layers", str(args.student_layers),
                                 "--method", args.method, "--max-eval-examples", "1000", "--epochs", "1",
                                 "--out", root / f"student-{n}", "--quiet"], env)
            print(row(n, files[n].stat().st_size / 1e6, cache, distill), flush=True)
            files[n].unlink()
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
