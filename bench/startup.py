"""``import ngser`` against ``import numpy`` (which it needs), each in a fresh interpreter.

Bytecode is written and used as after ``pip install`` (the benchmark's own environment may say
``PYTHONDONTWRITEBYTECODE``; compiling the sources on every import is not what users pay).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from common import Row, report, timed

_CHILD = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def _importer(module: str, env: dict[str, str], seconds: list[float]) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD.format(module)], env=env, capture_output=True, text=True, check=True
        )
        seconds.append(float(done.stdout))

    return run


def _row(label: str, env: dict[str, str], repeat: int) -> Row:
    own: dict[str, list[float]] = {"numpy": [], "ngser": []}
    timed({name: _importer(name, env, own[name]) for name in own}, repeat=repeat)
    best = {name: min(times[1:]) for name, times in own.items()}  # the first run is the warm-up
    ratios = sorted(a / b for a, b in zip(own["ngser"][1:], own["numpy"][1:]))
    return (label, best["ngser"], best["numpy"], ratios[len(ratios) // 2], "")


def bench_import(quick: bool) -> None:
    repeat = 5 if quick else 15
    installed = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    rows = [_row("import ngser (numpy included)", installed, repeat)]
    report("import ngser vs import numpy, in-process import time of a fresh interpreter (target 1.3x)", rows, 1.3)
