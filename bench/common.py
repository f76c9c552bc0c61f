"""Timing helpers for the benchmarks: warm up, take the best of several runs, print ratios.

This virtual machine hands idle memory back to its host, so first touches of memory are slow
and single runs jump 3-10x at random: every figure is the best of ``repeat`` runs after one
warm-up run.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

Row = tuple[str, float, float, str]


def best(func: Callable[[], Any], repeat: int = 5) -> float:
    """Best wall time of ``func()`` in seconds, after one warm-up call."""
    func()
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def size(path: str | os.PathLike[str]) -> int:
    return os.path.getsize(path)


def report(title: str, rows: list[Row], target: float | None = None) -> None:
    """Print ``rows`` of (label, ngser seconds, baseline seconds, note) with their ratios."""
    print(f"\n## {title}")
    print(f"{'case':<44} {'ngser':>10} {'baseline':>10} {'ratio':>7}  note")
    for label, ours, theirs, note in rows:
        ratio = ours / theirs if theirs else float("nan")
        flag = "" if target is None else ("  ok" if ratio <= target else f"  > {target}x")
        print(f"{label:<44} {ours * 1e3:>8.1f}ms {theirs * 1e3:>8.1f}ms {ratio:>6.2f}x  {note}{flag}")
