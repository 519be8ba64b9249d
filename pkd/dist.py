"""The device and the processes a command runs on, from Accelerate's PartialState, for the API outside the
training loop as well as inside it.

Under `accelerate launch` every rank runs the same command; these let rank 0 alone create directories and
write files while the others wait. In a plain single process they cost nothing and do nothing. check_device
refuses, before any work, settings this device or this number of processes cannot run.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pkd.errors import UsageError

if TYPE_CHECKING:
    from accelerate import PartialState

    from pkd.config import TrainConfig

_T = TypeVar("_T")


def launched() -> bool:
    """True when started by `accelerate launch` / torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def state() -> PartialState:
    """Accelerate's PartialState; call this before anything else creates it (pkd's own code does)."""
    from accelerate import PartialState  # imported late: `pkd --help` need not load torch
    from accelerate.utils import parse_flag_from_env

    st = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    if launched() and st.num_processes == 1:
        # Several processes but no GPU (torchrun, or `accelerate launch --multi_gpu` on a CPU machine): Accelerate
        # only sets up its gloo process group when told cpu=True, and would otherwise let every process train
        # alone and write the same files.
        PartialState._reset_state()
        st = PartialState(cpu=True)
    return st


def is_main() -> bool:
    return state().is_main_process if launched() else True


def say(line: str) -> None:
    """One line for the person running pkd (stderr, main process only); nothing for an empty line."""
    if line and is_main():
        print(line, file=sys.stderr, flush=True)


def barrier() -> None:
    if launched():
        state().wait_for_everyone()


def shutdown(finished: bool = True) -> None:
    """Destroy the process group of an `accelerate launch`, if one was made. Left to the interpreter's exit, gloo's
    threads can be torn down while still joinable, and a rank that finished its work aborts ("terminate called
    without an active exception") with a non-zero status.

    finished (the command succeeded on this rank): wait for every rank first, since rank 0 may still be writing
    (result.json) over a group the others would tear down, and let rank 0, whose process serves the rendezvous
    store when torchrun does not, go last (close_in_order). After an error, destroy at once: the other ranks may
    never arrive, and the launcher stops them."""
    if "torch" not in sys.modules:  # nothing ran that could have made one (`pkd --help`, a usage error)
        return
    import torch.distributed

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    if finished:
        torch.distributed.barrier()
        close_in_order(torch.distributed.get_rank(), torch.distributed.get_world_size())
    else:
        torch.distributed.destroy_process_group()


def close_in_order(rank: int, world: int, timeout_s: float = 30.0) -> None:
    """Destroy the process group, rank 0 after every other rank has (counted on the rendezvous store of
    MASTER_ADDR:MASTER_PORT). Without that store (a file:// group), or when a rank does not report within
    timeout_s, destroy anyway: the order avoids an abort, it must not cause a hang."""
    import torch.distributed

    group = torch.distributed.group.WORLD
    try:
        store = torch.distributed.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                           is_master=False, timeout=timedelta(seconds=timeout_s))
        # One key per run: torchrun's agent store outlives a restarted worker group.
        key = "pkd/closed/" + "/".join(os.environ.get(v, "") for v in ("TORCHELASTIC_RUN_ID",
                                                                       "TORCHELASTIC_RESTART_COUNT"))
    except (KeyError, ValueError, RuntimeError, OSError):
        torch.distributed.destroy_process_group(group)
        return
    if rank != 0:
        torch.distributed.destroy_process_group(group)
        store.add(key, 1)
        return
    deadline = time.monotonic() + timeout_s
    while store.add(key, 0) < world - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    torch.distributed.destroy_process_group(group)


def broadcast(obj: _T) -> _T:
    """Rank 0's value of `obj` on every rank."""
    if not launched():
        return obj
    from accelerate.utils import broadcast_object_list

    state()  # the process group must exist
    return broadcast_object_list([obj], from_process=0)[0]


def prepare_out_dir_once(out: str | Path, overwrite: bool = False, resume: bool = False) -> Path:
    """pkd.rundir.prepare_out_dir on rank 0 only (an --overwrite clears the directory once), then everyone goes on.
    Rank 0 waits for the others first: its lock on the directory must not meet their check_out_dir's probe."""
    from pkd.rundir import prepare_out_dir

    barrier()
    if is_main():
        prepare_out_dir(out, overwrite, resume)
    barrier()
    return Path(out)


def check_device(cfg: TrainConfig) -> None:
    """Refuse, in one line and before any work, a precision this device cannot do or a batch size that does not
    split evenly across the processes of an `accelerate launch`."""
    import torch

    st = state()
    if cfg.precision == "fp16" and st.device.type == "cpu":
        raise UsageError("--precision fp16: needs a GPU and this run is on the CPU (Accelerate would silently "
                         "train in fp32); use --precision bf16 or fp32")
    if cfg.precision == "bf16" and st.device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: this GPU ({torch.cuda.get_device_name(st.device)}) cannot do bf16; "
                         "use --precision fp16 or fp32")
    for name in ("batch_size", "eval_batch_size"):
        value = getattr(cfg, name)
        if value % st.num_processes:
            raise UsageError(f"--{name.replace('_', '-')} {value}: the global batch is split across the "
                             f"{st.num_processes} processes, so it must be a multiple of {st.num_processes}")
