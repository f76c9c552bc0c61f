"""Large arrays are not copied on their way to and from a file: a save allocates almost
nothing beyond the arrays, and a load allocates each array once."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import ngser
from ngser.backends import get_backend

SIZE = 64 * 2**20


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def _peak(func: object) -> int:
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    func()  # type: ignore[operator]
    return tracemalloc.get_traced_memory()[1] - start


def test_save_makes_no_copy_of_the_arrays(fmt: str, tmp_path: Path, traced: None) -> None:
    data = {"a": np.ones(SIZE // 8), "b": np.ones((SIZE // 16, 2), order="F")}
    path = tmp_path / f"big{get_backend(fmt).extensions[0]}"
    peak = _peak(lambda: ngser.save(data, path))
    assert peak < SIZE // 4, f"saving {2 * SIZE} bytes of arrays allocated {peak} bytes"


def test_load_allocates_each_array_once(fmt: str, tmp_path: Path, traced: None) -> None:
    path = tmp_path / f"big{get_backend(fmt).extensions[0]}"
    ngser.save({"a": np.ones(SIZE // 8)}, path)
    loaded: list[object] = []
    peak = _peak(lambda: loaded.append(ngser.load(path)))
    assert SIZE <= peak < 1.25 * SIZE, f"loading {SIZE} bytes of arrays allocated {peak} bytes at the peak"
    assert float(loaded[0]["a"].sum()) == SIZE // 8  # type: ignore[index]
