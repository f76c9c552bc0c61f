"""Large arrays are not copied on their way to and from a file: a save allocates almost
nothing beyond the arrays, and a load allocates each array once."""

from __future__ import annotations

import gc
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


@ngser.register(name="tests.memory.Item")
class Item:
    def __init__(self, parent: object, value: float) -> None:
        self.parent, self.value = parent, value


def test_nothing_per_object_is_kept_after_dumps_and_loads(fmt: str, traced: None) -> None:
    """Before 0.1.0 the msgpack encoding cached one extension object per reference id in
    module-level tables (up to a million entries, ~300 MB) that outlived every document."""
    parents = [Item(None, float(i)) for i in range(100)]
    items = [Item(parents[i % 100], float(i)) for i in range(50_000)]
    for item in (*items, *parents):
        vars(item)  # the instance dicts a first save creates are not ngser's to count
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    loaded = ngser.loads(ngser.dumps(items, format=fmt))
    assert loaded[7].parent is loaded[107].parent
    del loaded
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - start
    assert kept < 2**20, f"dumps + loads of 50,000 objects left {kept} bytes allocated"
