"""The cyclic garbage collector is paused while many small objects are encoded or built,
restored afterwards, and its first pass after resuming does not have to scan ngser's
own temporaries (the graph), only what the caller keeps."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ngser

N = 20_000


@ngser.register(name="tests.gc.Item")
class Item:
    def __init__(self, parent: Any, value: float) -> None:
        self.parent, self.value = parent, value


@pytest.fixture
def young_sizes() -> Iterator[list[int]]:
    """The size of generation 0 at the start of each young collection."""
    sizes: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 0:
            sizes.append(len(gc.get_objects(generation=0)))

    gc.callbacks.append(note)
    try:
        yield sizes
    finally:
        gc.callbacks.remove(note)


def _items() -> list[Item]:
    parents = [Item(None, float(i)) for i in range(100)]
    return [Item(parents[i % 100], float(i)) for i in range(N)]


def _run_then_allocate(func: Callable[[], Any], young_sizes: list[int]) -> Any:
    """Run ``func`` with an empty generation 0, then make a young collection happen."""
    gc.collect()
    young_sizes.clear()
    assert gc.isenabled()
    result = func()
    assert gc.isenabled()
    [[] for _ in range(2000)]  # enough new containers to trigger a young collection
    return result


def test_dumps_leaves_nothing_for_the_collector_to_scan(fmt: str, young_sizes: list[int]) -> None:
    items = _items()
    _run_then_allocate(lambda: ngser.dumps(items, format=fmt), young_sizes)
    assert young_sizes, "no young collection ran"
    # reading obj.__dict__ makes each instance's dict a real object (N of them, as pickle
    # does); before the fix the graph was still alive too, about 4 N objects
    assert max(young_sizes) < 1.5 * N, f"the collector scanned {max(young_sizes)} young objects after dumps()"


def test_save_leaves_nothing_for_the_collector_to_scan(fmt: str, tmp_path: Path, young_sizes: list[int]) -> None:
    items = _items()
    path = tmp_path / f"items{ngser.backends.get_backend(fmt).extensions[0]}"
    _run_then_allocate(lambda: ngser.save(items, path), young_sizes)
    assert max(young_sizes) < 1.5 * N, f"the collector scanned {max(young_sizes)} young objects after save()"


def test_loads_leaves_only_the_result_for_the_collector(fmt: str, young_sizes: list[int]) -> None:
    data = ngser.dumps(_items(), format=fmt)
    loaded = _run_then_allocate(lambda: ngser.loads(data), young_sizes)
    # what the caller keeps: N + 100 items, their __dict__s and the list; the graph is gone
    assert max(young_sizes) < 2 * (N + 100) + 5000, f"the collector scanned {max(young_sizes)} young objects"
    assert loaded[5].parent is loaded[105].parent


def test_the_collector_is_restored_after_errors() -> None:
    class Unregistered:
        pass

    with pytest.raises(ngser.UnsupportedTypeError):
        ngser.dumps([Unregistered()])
    assert gc.isenabled()
    gc.disable()
    try:
        ngser.dumps([1, 2])
        assert not gc.isenabled(), "a paused collector was switched on"
    finally:
        gc.enable()
