"""Two processes on the CPU (gloo) against one: `accelerate launch` runs the same commands with no code path
of their own, and the global batch, the optimizer steps, the dev metrics and the weights stay the same.

Each launch starts two Python processes that import torch and transformers: about 10-15 s on 2 cores.
"""

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model, write_glue
from safetensors.torch import load_file

from pkd.io import read_jsonl
from pkd.train import EpochShuffle

N_TRAIN, N_DEV = 64, 23  # 64 = 4 global batches of 16; 23 is odd and not a multiple of the eval batch (8)
ARGS = ["--epochs", "2", "--batch-size", "16", "--eval-batch-size", "8", "--lr", "2e-3", "--max-seq-len", "24",
        "--seed", "0", "--quiet"]
# The two ranks' gradients are averaged by an fp32 all-reduce, in another order than one process sums the whole
# batch, so the weights are equal only up to rounding: 7.7e-8 apart after these 8 steps (measured); the
# tolerance is 1e-5 (dropout is off in this model, or the masks would differ too).
WEIGHT_ATOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    # No GPU even where there is one: two ranks on one GPU would fail, and the comparison is about the CPU.
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "CUDA_VISIBLE_DEVICES": ""}


def launch(args: list[str], processes: int = 2) -> tuple[subprocess.CompletedProcess, float]:
    """`accelerate launch` of `python -m pkd.cli ARGS`. On a CPU machine, --multi_gpu is what makes it start
    several processes (through torchrun); `--cpu` would start one. pkd sets up gloo for them."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "pkd.cli", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    return proc, time.perf_counter() - start


def one_process(args: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pkd.cli", *args], capture_output=True, text=True, timeout=300,
                          env=_env())
    return proc, time.perf_counter() - start


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A dropout-free tiny BERT (dropout masks would differ between one and two processes) and the fixture data."""
    root = tmp_path_factory.mktemp("mp")
    model = make_tiny_model(root / "model")
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))
    glue = write_glue(root / "glue", n_train=N_TRAIN, n_dev=N_DEV)
    common = ["finetune", "--task", "sst2", "--model", str(model), "--data-dir", str(glue), *ARGS]
    single, t1 = one_process([*common, "--out", str(root / "one")])
    assert single.returncode == 0, single.stderr[-3000:]
    return {"root": root, "glue": glue, "common": common, "one": root / "one", "t1": t1}


def test_epoch_shuffle_is_split_across_ranks():
    """What accelerator.prepare does to our loader: each rank gets its half of every global batch."""
    from accelerate.data_loader import prepare_data_loader

    def batches(processes: int, rank: int, epoch: int, size: int) -> list[list[int]]:
        loader = torch.utils.data.DataLoader(list(range(size)), batch_size=16, sampler=EpochShuffle(size, seed=3))
        if processes > 1:
            loader = prepare_data_loader(loader, num_processes=processes, process_index=rank, split_batches=True,
                                         put_on_device=False)
        loader.set_epoch(epoch) if hasattr(loader, "set_epoch") else loader.sampler.set_epoch(epoch)
        return [b.tolist() for b in loader]

    for epoch in (0, 1):
        whole = batches(1, 0, epoch, 64)
        halves = [batches(2, r, epoch, 64) for r in (0, 1)]
        assert len(halves[0]) == len(halves[1]) == len(whole) == 4  # the same number of optimizer steps
        for b, b0, b1 in zip(whole, *halves, strict=True):
            assert len(b0) == len(b1) == 8 and b0 + b1 == b  # rank 0 the first half, rank 1 the second
    assert batches(1, 0, 0, 64) != batches(1, 0, 1, 64)  # a new order each epoch, the same on every rank
    # A last batch that is not full (70 = 4 x 16 + 6) is filled up from the epoch's first batch, so that both
    # ranks step together: the one place where N processes differ from one (see docs/scaling.md).
    last = [batches(2, r, 0, 70)[-1] for r in (0, 1)]
    assert len(last[0] + last[1]) == 16 and last[0] + last[1] != batches(1, 0, 0, 70)[-1]


def test_two_process_finetune_matches_one(setup, capsys):
    two, t2 = launch([*setup["common"], "--out", str(setup["root"] / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    one_dir, two_dir = setup["one"], setup["root"] / "two"
    assert json.loads((two_dir / "run.json").read_text())["num_processes"] == 2  # really two ranks
    assert len([line for line in two.stdout.splitlines() if line.startswith("{")]) == 1  # rank 0 alone prints

    m1, m2 = read_jsonl(one_dir / "metrics.jsonl"), read_jsonl(two_dir / "metrics.jsonl")
    assert [m["step"] for m in m2] == [m["step"] for m in m1] == [4, 8]  # same global batch, same steps
    for a, b in zip(m1, m2, strict=True):
        # every dev example scored exactly once: the accuracy is a whole number of the 23 examples, and the same
        correct = b["accuracy"] * N_DEV / 100
        assert abs(correct - round(correct)) < 1e-9
        assert b["accuracy"] == a["accuracy"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)  # the global batch's loss, reduced
    w1, w2 = load_file(one_dir / "model.safetensors"), load_file(two_dir / "model.safetensors")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=WEIGHT_ATOL, rtol=0, msg=k)
    # the launch itself counts: start-up of two ranks dominates at this size
    with capsys.disabled():
        print(f"\n[multiprocess] finetune wall time: 1 process {setup['t1']:.1f} s, 2 processes {t2:.1f} s")


def test_two_process_distill_builds_a_sharded_cache(setup, capsys):
    cache_dir, out = setup["root"] / "cache", setup["root"] / "student"
    two, t2 = launch(["distill", "--teacher", str(setup["one"]), "--task", "sst2", "--student-layers", "2",
                      "--method", "pkd-skip", "--data-dir", str(setup["glue"]), "--cache-dir", str(cache_dir),
                      *ARGS, "--epochs", "1", "--out", str(out)])
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads(two.stdout.strip().splitlines()[-1])["out"] == str(out)
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl")] == [4]
    assert json.loads((out / "run.json").read_text())["num_processes"] == 2
    [cache] = [p for p in cache_dir.iterdir()]  # one cache, no leftover temporary directory
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["shards"] == 2 and meta["num_examples"] == N_TRAIN and meta["layers"] == [2]

    # The joined shards hold what one process computes for every example, in order.
    import pkd
    from pkd.cache import TeacherCache

    single = pkd.build_cache(str(setup["one"]), "sst2", [2], data_dir=setup["glue"],
                             cache_dir=setup["root"] / "cache1", max_seq_len=24)
    sharded = TeacherCache(cache)  # opens only if the checksums match
    assert Path(single.path).name == cache.name  # the same key: any number of ranks finds it
    np.testing.assert_allclose(np.asarray(sharded.logits, np.float32), np.asarray(single.logits, np.float32),
                               atol=2e-3)  # fp16 storage; padding to another length moves the last bit
    np.testing.assert_allclose(np.asarray(sharded.cls, np.float32), np.asarray(single.cls, np.float32), atol=2e-3)
    with capsys.disabled():
        print(f"\n[multiprocess] distill (cache + 1 epoch) wall time, 2 processes: {t2:.1f} s")


def test_batch_size_must_split_across_processes(monkeypatch):
    import pkd.dist
    from pkd.config import TrainConfig
    from pkd.dist import check_device
    from pkd.errors import UsageError

    class TwoRanks:
        num_processes, device = 2, torch.device("cpu")

    monkeypatch.setattr(pkd.dist, "state", lambda: TwoRanks())
    check_device(TrainConfig(batch_size=16, eval_batch_size=8))
    with pytest.raises(UsageError, match=r"^--batch-size 15: .* multiple of 2$"):
        check_device(TrainConfig(batch_size=15))
    with pytest.raises(UsageError, match=r"^--eval-batch-size 9: "):
        check_device(TrainConfig(batch_size=16, eval_batch_size=9))


# Runs pkd's CLI with three additions for the test below: each rank appends the example ids of every training
# batch to ids-rank{R}.jsonl in $PKD_TEST_LOG; rank 1 draws once more from torch's generator per batch than rank 0
# (on the CPU both ranks' dropout draws alike; on GPUs each rank draws on its own device), so each rank's random
# state is its own; and rank 0 SIGKILLs itself right after writing checkpoint $PKD_TEST_KILL_AT (the launcher then
# stops the other rank), as a crash would.
KILLABLE = """
import json, os, signal, sys
import torch
import pkd.train
from pkd.cli import main

log, kill_at, rank = os.environ["PKD_TEST_LOG"], int(os.environ["PKD_TEST_KILL_AT"]), os.environ["RANK"]
real_loss, real_save = pkd.train.batch_loss, pkd.train.save_checkpoint

def logged_loss(model, batch, *args, **kwargs):
    with open(os.path.join(log, f"ids-rank{rank}.jsonl"), "a") as f:
        f.write(json.dumps(batch["idx"].tolist()) + "\\n")
    if rank == "1":
        torch.rand(1)
    return real_loss(model, batch, *args, **kwargs)

def save_then_kill(run, keep):
    path = real_save(run, keep)
    if run.progress.step == kill_at and run.accelerator.is_main_process:
        os.kill(os.getpid(), signal.SIGKILL)
    return path

pkd.train.batch_loss, pkd.train.save_checkpoint = logged_loss, save_then_kill
sys.exit(main(sys.argv[1:]))
"""


def _killable_launch(script: Path, args: list[str], log: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    log.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**_env(), "PKD_TEST_LOG": str(log), "PKD_TEST_KILL_AT": str(kill_at)})


def _batches(log: Path, rank: int) -> list[list[int]]:
    return [json.loads(line) for line in (log / f"ids-rank{rank}.jsonl").read_text().splitlines()]


def test_two_process_run_killed_mid_epoch_resumes_to_the_same_order_and_weights(tmp_path):
    """Killed in its second epoch and resumed under `accelerate launch`, each rank sees the uninterrupted run's
    examples in its order, and the weights are the same. Dropout is on and the ranks' random states differ: each
    rank's own must come back."""
    from conftest import WORDS

    model = make_tiny_model(tmp_path / "model")  # dropout 0.1
    glue = write_glue(tmp_path / "glue", n_train=8, n_dev=N_DEV)
    rng = random.Random(1)
    (glue / "SST-2" / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{' '.join(rng.choices(WORDS, k=rng.randint(1, 20)))}\t{rng.randint(0, 1)}\n" for _ in range(96)))
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE)
    # --keep-checkpoints 1 keeps the last epoch's weights (model.safetensors holds the best epoch's)
    args = ["finetune", "--task", "sst2", "--model", str(model), "--data-dir", str(glue), *ARGS, "--epochs", "3",
            "--save-every", "1", "--keep-checkpoints", "1"]
    full = _killable_launch(script, [*args, "--out", str(tmp_path / "full")], tmp_path / "log-full")
    assert full.returncode == 0, full.stderr[-3000:]
    kill_at = 8  # 96 examples, 6 steps an epoch: 2 batches into the second epoch
    killed = _killable_launch(script, [*args, "--out", str(tmp_path / "run")], tmp_path / "log-killed", kill_at)
    assert killed.returncode != 0
    *_, newest = sorted((tmp_path / "run" / "checkpoints").iterdir())
    state = json.loads((newest / "state.json").read_text())
    assert (newest.name, state["epoch"], state["batch"]) == (f"step-{kill_at:08d}", 1, 2)  # mid-epoch, not the first
    resumed = _killable_launch(script, [*args, "--out", str(tmp_path / "run"), "--resume"], tmp_path / "log-resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    for rank in (0, 1):
        seen, after_kill = _batches(tmp_path / "log-full", rank), _batches(tmp_path / "log-resumed", rank)
        assert len(seen) == 18 and after_kill == seen[kill_at:], f"rank {rank}"
    last = Path("checkpoints", "step-00000018", "model.safetensors")
    a, b = load_file(tmp_path / "full" / last), load_file(tmp_path / "run" / last)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=k)
    for x, y in zip(read_jsonl(tmp_path / "full" / "metrics.jsonl"), read_jsonl(tmp_path / "run" / "metrics.jsonl"),
                    strict=True):
        assert y["train_loss"] == pytest.approx(x["train_loss"], abs=1e-6) and y["score"] == x["score"]


def test_a_command_destroys_its_process_group_before_the_interpreter_exits(tmp_path):
    """Left to the interpreter's exit, gloo's threads could be torn down while joinable and abort a finished rank
    (SIGABRT, seen once under load): every command ends by destroying the group, an error too."""
    import torch.distributed as torch_dist

    from pkd.cli import main

    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert torch_dist.is_initialized()
    with pytest.raises(SystemExit):  # argparse's exit: missing --out and more
        main(["distill", "--task", "sst2"])
    assert not torch_dist.is_initialized()


CLOSING_RANK = """
import json, sys, time
import torch.distributed as td
from pkd.dist import shutdown

td.init_process_group("gloo")  # env://: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
rank, times = td.get_rank(), {}
if rank == 0:
    time.sleep(2.0)  # still writing result.json when rank 1 is done
times["work_done"] = time.time()
real = td.destroy_process_group
td.destroy_process_group = lambda *a, **k: (times.setdefault("destroy", time.time()), real(*a, **k))
shutdown()
open(sys.argv[1], "w").write(json.dumps(times))
"""


def test_finished_ranks_wait_for_each_other_and_rank_0_closes_last(tmp_path):
    """The resumed 2-process SIGABRT: a finished rank tore its group down while rank 0 was still writing. Every
    rank now waits at a barrier, and rank 0 destroys its group after the others have."""
    script = tmp_path / "rank.py"
    script.write_text(CLOSING_RANK)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / f"{r}.json")],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    zero, one = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert one["destroy"] >= zero["work_done"]  # rank 1 waited for rank 0's work
    assert zero["destroy"] >= one["destroy"]  # and rank 0 went last
