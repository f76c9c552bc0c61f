"""Versions: each serializer's version is stored with its nodes; older states are upgraded by
registered migrations, newer files give a clear error naming both versions.

Files are written with one registry (the "old" installed version of a class) and read
with another (the "new" one), the way a package upgrade looks to a saved file.
"""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from helpers import EXTENSION, msgpack_file, msgpack_parts
from ngser.backends._codec import pack_value_document, unpack_value_document
from ngser.graph import FORMAT_VERSION


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


def registries() -> tuple[ngser.Registry, ngser.Registry, ngser.Registry]:
    """Three installed versions of the ``Point`` serializer: v1 {x, y}, v2 {xy}, v3 {coords, unit}."""
    v1, v2, v3 = ngser.Registry(), ngser.Registry(), ngser.Registry()
    ngser.register(Point, name="tests.Point", version=1, registry=v1)
    ngser.register(
        Point,
        name="tests.Point",
        version=2,
        dump=lambda p: {"xy": [p.x, p.y]},
        load=lambda s: Point(*s["xy"]),
        registry=v2,
    )
    ngser.register(
        Point,
        name="tests.Point",
        version=3,
        dump=lambda p: {"coords": np.array([p.x, p.y]), "unit": "m"},
        load=lambda s: Point(*s["coords"].tolist()),
        registry=v3,
    )
    for registry in (v2, v3):

        @ngser.migration("tests.Point", from_version=1, registry=registry)
        def one_to_two(state: dict[str, Any]) -> dict[str, Any]:
            return {"xy": [state["x"], state["y"]]}

    @ngser.migration("tests.Point", from_version=2, registry=v3)
    def two_to_three(state: dict[str, Any]) -> dict[str, Any]:
        return {"coords": np.array(state["xy"]), "unit": "m"}

    return v1, v2, v3


def test_version_is_stored_with_nodes_and_header(tmp_path: Path, fmt: str) -> None:
    _, v2, _ = registries()
    path = tmp_path / f"p{EXTENSION[fmt]}"
    ngser.save(Point(1.0, 2.0), path, registry=v2)
    graph = ngser.read_graph(path)
    assert graph.writers == {"tests.Point": 2}
    assert [(node.name, node.version) for node in graph.nodes] == [("tests.Point", 2)]


def test_chain_1_to_2_to_3(tmp_path: Path, fmt: str) -> None:
    v1, v2, v3 = registries()
    path = tmp_path / f"old{EXTENSION[fmt]}"
    shared = Point(1.5, -2.0)
    ngser.save({"a": shared, "b": [shared, Point(3.0, 4.0)]}, path, registry=v1)
    loaded = ngser.load(path, registry=v3)
    assert (loaded["a"].x, loaded["a"].y) == (1.5, -2.0)
    assert loaded["b"][0] is loaded["a"]
    assert (loaded["b"][1].x, loaded["b"][1].y) == (3.0, 4.0)
    loaded2 = ngser.load(path, registry=v2)
    assert (loaded2["a"].x, loaded2["a"].y) == (1.5, -2.0)


def test_chain_runs_each_step_once_in_order(fmt: str) -> None:
    old, new = ngser.Registry(), ngser.Registry()
    ngser.register(Point, name="tests.Point", version=1, registry=old)
    ngser.register(Point, name="tests.Point", version=4, load=lambda s: s, dump=lambda p: {}, registry=new)
    calls: list[int] = []
    for version in (3, 1, 2):  # registration order does not matter

        def step(state: dict[str, Any], version: int = version) -> dict[str, Any]:
            calls.append(version)
            return {**state, "trail": [*state.get("trail", []), version]}

        ngser.migration("tests.Point", from_version=version, registry=new)(step)
    state = ngser.loads(ngser.dumps(Point(0.0, 0.0), format=fmt, registry=old), registry=new)
    assert calls == [1, 2, 3]
    assert state == {"x": 0.0, "y": 0.0, "trail": [1, 2, 3]}


def test_current_version_runs_no_migration(fmt: str) -> None:
    _, _, v3 = registries()
    calls = []
    ngser.migration("tests.Point", from_version=3, registry=v3)(lambda s: calls.append(s))
    loaded = ngser.loads(ngser.dumps(Point(5.0, 6.0), format=fmt, registry=v3), registry=v3)
    assert (loaded.x, loaded.y) == (5.0, 6.0) and calls == []


def test_missing_step_names_it(fmt: str) -> None:
    v1, _, _ = registries()
    gap = ngser.Registry()
    ngser.register(Point, name="tests.Point", version=3, load=lambda s: s, dump=lambda p: {}, registry=gap)
    ngser.migration("tests.Point", from_version=1, registry=gap)(lambda s: s)
    data = ngser.dumps(Point(1.0, 2.0), format=fmt, registry=v1)
    with pytest.raises(ngser.VersionError) as info:
        ngser.loads(data, registry=gap)
    message = str(info.value)
    assert "'tests.Point'" in message and "node 0" in message
    assert "version 1" in message and "installed version is 3" in message
    assert "no migration from version 2" in message
    assert "ngser.migration('tests.Point', from_version=2)" in message


def test_newer_serializer_names_both_versions(tmp_path: Path, fmt: str) -> None:
    v1, _, v3 = registries()
    path = tmp_path / f"new{EXTENSION[fmt]}"
    ngser.save(Point(1.0, 2.0), path, registry=v3)
    with pytest.raises(ngser.VersionError) as info:
        ngser.load(path, registry=v1)
    message = str(info.value)
    assert str(path) in message and "'tests.Point'" in message
    assert "version 3 of its serializer" in message and "installed one is version 1" in message


def test_failing_migration_names_the_node(fmt: str) -> None:
    v1 = registries()[0]
    new = ngser.Registry()
    ngser.register(Point, name="tests.Point", version=2, registry=new)

    @ngser.migration("tests.Point", from_version=1, registry=new)
    def broken(state: Any) -> Any:
        raise KeyError("z")

    with pytest.raises(ngser.SerializerError, match=r"rebuilding 'tests.Point' \(node 0\) failed: KeyError"):
        ngser.loads(ngser.dumps(Point(1.0, 2.0), format=fmt, registry=v1), registry=new)


def test_duplicate_migration_refused() -> None:
    _, _, v3 = registries()
    with pytest.raises(ngser.RegistrationError, match="from version 2 is already registered"):
        ngser.migration("tests.Point", from_version=2, registry=v3)(lambda s: s)


def test_migration_with_unknown_raw_keeps_stored_state(fmt: str) -> None:
    v1 = registries()[0]
    raw = ngser.loads(ngser.dumps(Point(1.0, 2.0), format=fmt, registry=v1), unknown="raw", registry=ngser.Registry())
    assert isinstance(raw, ngser.RawNode) and raw.version == 1 and raw.state == {"x": 1.0, "y": 2.0}


# -- newer ngser format ---------------------------------------------------------------------


def _msgpack_with_format(data: bytes, version: int) -> bytes:
    """A msgpack file whose document says ``format: version``, with length and checksum made right."""
    doc_bytes, arrays = msgpack_parts(data)
    doc = unpack_value_document(doc_bytes, "test")
    doc["format"] = version
    return msgpack_file(pack_value_document(doc), arrays)


def _pickle_with_format(data: bytes, version: int) -> bytes:
    tag, _, inner, crc, buffers = pickle.loads(data)
    assert zlib.crc32(inner) == crc
    return pickle.dumps((tag, version, inner, crc, buffers), protocol=5)


def _hdf5_with_format(path: Path, version: int) -> None:
    import h5py

    with h5py.File(path, "r+") as file:
        file["ngser"].attrs["format"] = np.int64(version)


@pytest.mark.parametrize("fmt_", ["msgpack", "pickle", "hdf5"])
def test_newer_format_version_names_both(tmp_path: Path, fmt_: str) -> None:
    if fmt_ not in ngser.backends.available():
        pytest.skip(f"{fmt_} backend not available")
    path = tmp_path / f"future{EXTENSION[fmt_]}"
    ngser.save({"values": np.arange(3.0), "p": [1, 2]}, path)
    newer = FORMAT_VERSION + 1
    if fmt_ == "msgpack":
        path.write_bytes(_msgpack_with_format(path.read_bytes(), newer))
    elif fmt_ == "pickle":
        path.write_bytes(_pickle_with_format(path.read_bytes(), newer))
    else:
        _hdf5_with_format(path, newer)
    with pytest.raises(ngser.VersionError) as info:
        ngser.load(path)
    message = str(info.value)
    assert str(path) in message
    assert f"format version {newer}" in message and f"up to version {FORMAT_VERSION}" in message
    assert "upgrade ngser" in message


@pytest.mark.parametrize("fmt_", ["msgpack", "pickle"])
def test_rewritten_current_format_still_loads(fmt_: str) -> None:
    """The crafting helpers above change only the version: with the current version the file loads."""
    data = ngser.dumps({"values": np.arange(3.0)}, format=fmt_)
    rewrite = _msgpack_with_format if fmt_ == "msgpack" else _pickle_with_format
    loaded = ngser.loads(rewrite(data, FORMAT_VERSION))
    assert np.array_equal(loaded["values"], np.arange(3.0))


@pytest.mark.parametrize("fmt_", ["msgpack", "pickle"])
def test_invalid_format_version_is_a_format_error(fmt_: str) -> None:
    data = ngser.dumps([1], format=fmt_)
    rewrite = _msgpack_with_format if fmt_ == "msgpack" else _pickle_with_format
    for bad in (0, -1):
        with pytest.raises(ngser.FormatError, match="no valid format version"):
            ngser.loads(rewrite(data, bad))
