"""ngser.open: a read-only view that lists a file and loads parts of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from ngser.backends import get_backend


@ngser.register(name="tests.view.Holder")
class Holder:
    def __init__(self, points: np.ndarray, name: str, other: Any = None) -> None:
        self.points, self.name, self.other = points, name, other


@pytest.fixture
def saved(fmt: str, tmp_path: Path) -> Path:
    shared = Holder(np.arange(6.0).reshape(3, 2), "shared")
    path = tmp_path / f"view{get_backend(fmt).extensions[0]}"
    ngser.save({"a": Holder(np.ones(4), "a", shared), "b": [shared, 7], "big": np.arange(1000)}, path)
    return path


def test_lists_objects_and_arrays(saved: Path) -> None:
    with ngser.open(saved) as view:
        names = sorted(name for _, name, _ in view.objects())
        assert names == ["tests.view.Holder", "tests.view.Holder"]
        infos = {info.label: info for info in view.arrays()}
        assert infos["tests.view.Holder/points"].shape in {(4,), (3, 2)}
        big = [info for info in view.arrays() if info.shape == (1000,)]
        assert big and big[0].dtype == np.arange(1000).dtype and big[0].nbytes == 8000
        assert view.writers == {"tests.view.Holder": 1}


def test_load_parts_by_path_and_id(saved: Path) -> None:
    with ngser.open(saved) as view:
        b = view.load("b")
        assert b[1] == 7 and b[0].name == "shared"
        shared = view.load("b/0")
        assert shared.name == "shared" and shared.points.shape == (3, 2)
        a = view.load("a")
        assert a.other.name == "shared"
        node_id = next(nid for nid, _, _ in view.objects())
        assert isinstance(view.load(node_id), Holder)
        whole = view.load()
        assert whole["a"].other is whole["b"][0]


def test_read_one_array(saved: Path) -> None:
    with ngser.open(saved) as view:
        big = next(info for info in view.arrays() if info.shape == (1000,))
        np.testing.assert_array_equal(view.array(big.id), np.arange(1000))


def test_bad_keys_are_clear_errors(saved: Path) -> None:
    with ngser.open(saved) as view:
        with pytest.raises(ngser.NgserError, match="nothing at 'zzz'"):
            view.load("a/zzz")
        with pytest.raises(ngser.NgserError, match="no node with id"):
            view.load(10**6)
        with pytest.raises(ngser.NgserError, match="no array called"):
            view.array("missing")


def test_lazy_msgpack_array_detects_damage(tmp_path: Path) -> None:
    path = tmp_path / "lazy.msgpack"
    ngser.save({"x": np.arange(100_000, dtype=np.float64)}, path)
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # inside the array payload
    path.write_bytes(bytes(data))
    with ngser.open(path) as view:  # opening reads only the graph
        assert view.arrays()[0].shape == (100_000,)
        with pytest.raises(ngser.FormatError, match="checksum"):
            view.array(view.arrays()[0].id)
