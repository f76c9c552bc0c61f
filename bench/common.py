"""Timing helpers for the benchmarks: warm up, run the compared cases in turns, print ratios.

This virtual machine hands idle memory back to its host, so first touches of memory are slow
and single runs jump 3-10x at random. :func:`timed` therefore warms every case up once, then
runs the cases in turns (A, B, A, B, ...) ``repeat`` times, so that a slow spell of the machine
hits ngser and its baseline alike. The time shown for a case is its best run; the ratio of two
cases is the median of the ratios of their runs in the same turn (a paired comparison, which
one lucky run of either side cannot move).
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

#: (label, ngser seconds, baseline seconds, ratio, note)
Row = tuple[str, float, float, float, str]


class Timings:
    """The wall times of each case, run in turns; see the module's docstring."""

    def __init__(self, runs: dict[str, list[float]]) -> None:
        self.runs = runs

    def best(self, name: str) -> float:
        """The best time of ``name``, in seconds."""
        return min(self.runs[name])

    def ratio(self, name: str, base: str) -> float:
        """The median over turns of ``time(name) / time(base)``."""
        return statistics.median(a / b for a, b in zip(self.runs[name], self.runs[base]))

    def row(self, label: str, name: str, base: str, note: str = "") -> Row:
        """A report row comparing ``name`` with ``base``."""
        return (label, self.best(name), self.best(base), self.ratio(name, base), note)


def settle_io() -> None:
    """Let file I/O of the previous case finish before the next one starts (untimed): the
    kernel's write-back of files saved without fsync (the baselines), and ngser's release
    of replaced files on its helper threads. Otherwise one case's deferred work lands on
    the next case's clock."""
    for thread in threading.enumerate():
        if thread.name == "ngser-release":
            thread.join()
    if hasattr(os, "sync"):
        os.sync()


def timed(funcs: dict[str, Callable[[], Any]], repeat: int = 7, settle: Callable[[], None] | None = None) -> Timings:
    """Run each function once to warm up, then all of them in turns ``repeat`` times,
    calling ``settle`` (untimed) before each run."""
    for func in funcs.values():
        func()
    runs: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            if settle is not None:
                settle()
            gc.collect()
            start = time.perf_counter()
            func()
            runs[name].append(time.perf_counter() - start)
    return Timings(runs)


def size(path: str | os.PathLike[str]) -> int:
    return os.path.getsize(path)


def report(title: str, rows: list[Row], target: float | None = None) -> None:
    """Print ``rows`` (see :data:`Row`), flagging ratios above ``target``."""
    print(f"\n## {title}")
    print(f"{'case':<44} {'ngser':>10} {'baseline':>10} {'ratio':>7}  note")
    for label, ours, theirs, ratio, note in rows:
        flag = "" if target is None else ("  ok" if ratio <= target else f"  > {target}x")
        print(f"{label:<44} {ours * 1e3:>8.1f}ms {theirs * 1e3:>8.1f}ms {ratio:>6.2f}x  {note}{flag}")
