"""Progress of a loop over batches: a tqdm bar at a terminal, a few plain lines anywhere else.

A bar redraws itself many times a second; in a file or a pipe (`make demo > log 2>&1`, a CI log, a sweep's
trial log) every redraw becomes a line, thousands of them, burying the results. So when stderr is not a
terminal, progress is one line at each tenth of the loop (and at least every 30 s), each with the postfix the
loop sets (loss, examples per second) and the time so far.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

LINE_EVERY_SECONDS = 30.0


class LineProgress:
    """The part of tqdm's interface the loops use (iteration, set_postfix, close), as lines on `file`."""

    def __init__(self, iterable: Iterable, total: int, desc: str, unit: str = "batch", initial: int = 0,
                 file: Any = None, every_seconds: float = LINE_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.iterable, self.total, self.desc, self.unit, self.n = iterable, total, desc, unit, initial
        self.file, self.every_seconds, self.clock = file or sys.stderr, every_seconds, clock
        self.postfix: dict[str, object] = {}
        self.start = self.last = clock()

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.n += 1
            now = self.clock()
            tenth = self.total > 0 and 10 * self.n // self.total > 10 * (self.n - 1) // self.total
            if tenth or now - self.last >= self.every_seconds:
                self.last = now
                self._line(now)

    def set_postfix(self, **values: object) -> None:
        self.postfix = values

    def close(self) -> None:
        pass

    def _line(self, now: float) -> None:
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {self.unit} {self.n}/{self.total}{share}{extra}, {now - self.start:.0f} s",
              file=self.file, flush=True)


def show_progress(iterable: Iterable, total: int, desc: str, unit: str = "batch", initial: int = 0,
             disable: bool = False) -> tqdm | LineProgress:
    """A tqdm bar when stderr is a terminal, else a LineProgress; a disabled tqdm (nothing shown) if `disable`."""
    if disable or sys.stderr.isatty():
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=disable)
    return LineProgress(iterable, total, desc, unit, initial)
