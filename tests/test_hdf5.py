"""The HDF5 layout: readable with h5py alone, compact for many objects, fast and checked for big arrays."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import ngser
from ngser.backends.hdf5_format import INLINE_LIMIT, SMALL_DATASETS
from ngser.backends.hdf5_layout import MAX_NAME_DEPTH, Names, quote_name
from ngser.graph import ArrayNode, Graph, ObjectNode, Ref


@ngser.register(name="tests.hdf5.Mesh")
class Mesh:
    def __init__(self, points: np.ndarray, cells: np.ndarray) -> None:
        self.points, self.cells = points, cells


@ngser.register(name="tests.hdf5.Vector")
class Vector:
    def __init__(self, mesh: Mesh, values: np.ndarray) -> None:
        self.mesh, self.values = mesh, values


@ngser.register(name="tests.hdf5.Small")
class Small:
    def __init__(self, i: int, name: str) -> None:
        self.i, self.name = i, name

    def __eq__(self, other: object) -> bool:
        return type(other) is Small and (other.i, other.name) == (self.i, self.name)


def _sample() -> tuple[Mesh, Vector, Vector]:
    rng = np.random.default_rng(0)
    mesh = Mesh(rng.random((1000, 3)), np.arange(3000, dtype=np.int32).reshape(1000, 3))
    return mesh, Vector(mesh, rng.random(1000)), Vector(mesh, rng.random(1000))


def _visit(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def note(name: str, obj: Any) -> None:  # returning a value would stop the visit
        found[name] = type(obj).__name__

    with h5py.File(path, "r") as file:
        file.visititems(note)
    return found


def test_readable_names_for_h5py_users(tmp_path: Path) -> None:
    mesh, u, v = _sample()
    path = tmp_path / "r.h5"
    ngser.save({"mesh": mesh, "u": u, "v": v}, path)
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["mesh/points"][...], mesh.points)
        np.testing.assert_array_equal(file["mesh/cells"][...], mesh.cells)
        np.testing.assert_array_equal(file["u/values"][...], u.values)
        np.testing.assert_array_equal(file["v/values"][...], v.values)
        assert file["u/mesh"] == file["mesh"] == file["v/mesh"]  # one group under each name (hard links)
        assert file["u/mesh/points"] == file["mesh/points"]
        assert dict(file["u"].attrs) == {"type": "tests.hdf5.Vector", "version": 1}
        assert file["mesh"].attrs["type"] == "tests.hdf5.Mesh"
        points = file["mesh/points"]
        assert dict(points.attrs) == {}  # its id and checksum are in the array table only
        assert points.chunks is None  # contiguous
        group = file["ngser"]
        assert group.attrs["format"] == 1
        assert json.loads(group.attrs["writers"]) == {"tests.hdf5.Mesh": 1, "tests.hdf5.Vector": 1}
        types = file["ngser/types"].asstr()[...].tolist()
        names = [types[i] for i in file["ngser/nodes/type"][...]]
        assert sorted(names) == ["tests.hdf5.Mesh", "tests.hdf5.Vector", "tests.hdf5.Vector"]
        ids = set(file["ngser/nodes/id"][...].tolist())
        assert len(ids) == 3
    out = ngser.load(path)
    assert out["u"].mesh is out["v"].mesh is out["mesh"]
    np.testing.assert_array_equal(out["v"].values, v.values)


def test_survives_h5copy_of_the_whole_tree(tmp_path: Path) -> None:
    mesh, u, _ = _sample()
    src, dst = tmp_path / "a.h5", tmp_path / "b.h5"
    ngser.save([mesh, u], src)
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        for name in a:
            a.copy(a[name], b, name=name)
        for key, value in a["ngser"].attrs.items():
            b["ngser"].attrs[key] = value
    m, w = ngser.load(dst)
    assert w.mesh is m
    np.testing.assert_array_equal(m.points, mesh.points)


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_compression(tmp_path: Path, compression: str) -> None:
    data = {"zeros": np.zeros(500_000), "ramp": np.arange(200_000, dtype=np.int64)}
    plain, packed = tmp_path / "plain.h5", tmp_path / "packed.h5"
    ngser.save(data, plain)
    ngser.save(data, packed, compression=compression)
    assert packed.stat().st_size < plain.stat().st_size / 10
    with h5py.File(packed, "r") as file:
        datasets = [file[name] for name in data]
        assert {d.compression for d in datasets} == {compression}
        assert all(d.chunks is not None for d in datasets)
    out = ngser.load(packed)
    np.testing.assert_array_equal(out["ramp"], data["ramp"])


def test_compression_options_checked(tmp_path: Path) -> None:
    with pytest.raises(ngser.ArgumentError, match="compression='zstd' is not supported"):
        ngser.save(np.zeros(10), tmp_path / "x.h5", compression="zstd")
    with pytest.raises(ngser.ArgumentError, match="compression_level"):
        ngser.save(np.zeros(10), tmp_path / "x.h5", compression="lzf", compression_level=3)
    ngser.save(np.zeros(10_000), tmp_path / "x.h5", compression="gzip", compression_level=9)
    assert not (tmp_path / "x.h5").stat().st_size > 20_000


def test_uncompressed_size_close_to_raw_bytes(tmp_path: Path) -> None:
    arrays = [np.random.default_rng(i).random(500_000) for i in range(4)]
    path = tmp_path / "big.h5"
    ngser.save(arrays, path)
    raw = sum(a.nbytes for a in arrays)
    assert raw <= path.stat().st_size <= raw * 1.02


def test_dtypes_hdf5_lacks_are_stored_as_bytes_with_a_description(tmp_path: Path) -> None:
    words = np.array(["alpha", "ω"] * 2000)
    dates = np.arange("2026-01-01", "2031-01-01", dtype="datetime64[D]")
    path = tmp_path / "d.h5"
    ngser.save({"words": words, "dates": dates, "matrix": np.asfortranarray(np.ones((300, 20)))}, path)
    with h5py.File(path, "r") as file:
        kinds = {name: file[name] for name in ("words", "dates", "matrix")}
        raw = [d for d in kinds.values() if "dtype" in d.attrs]
        assert sorted(json.loads(d.attrs["dtype"]) for d in raw) == ["<M8[D]", "<U5"]
        assert all(d.dtype == np.uint8 for d in raw)
        (matrix,) = [d for d in kinds.values() if "fortran" in d.attrs]
        assert matrix.shape == (20, 300)  # stored transposed: the bytes stay in Fortran order
    out = ngser.load(path)
    assert out["words"].dtype == words.dtype and (out["words"] == words).all()
    assert out["matrix"].flags.f_contiguous


def test_many_small_objects_use_a_packed_table(tmp_path: Path) -> None:
    objs = [Small(i, f"n{i}") for i in range(20_000)]
    path = tmp_path / "small.h5"
    ngser.save(objs, path)
    assert len(_visit(path)) < 12  # no group or dataset per object
    ngser.save(objs, tmp_path / "small.msgpack")
    assert path.stat().st_size < 1.2 * (tmp_path / "small.msgpack").stat().st_size
    assert ngser.load(path) == objs


def test_small_arrays_beyond_the_dataset_budget_are_packed(tmp_path: Path) -> None:
    arrays = [np.full(3, float(i)) for i in range(SMALL_DATASETS + 10)]
    path = tmp_path / "m.h5"
    ngser.save({"big": np.arange(INLINE_LIMIT), "small": arrays}, path)
    datasets = [name for name, kind in _visit(path).items() if kind == "Dataset" and not name.startswith("ngser/")]
    assert len(datasets) == SMALL_DATASETS + 1
    assert "small/0" in datasets and f"small/{SMALL_DATASETS}" not in datasets and "big" in datasets
    with h5py.File(path, "r") as file:
        assert file["ngser/packed"].shape[0] == 10 * 24
    out = ngser.load(path)
    assert all((a == i).all() for i, a in enumerate(out["small"]))


def test_every_array_of_any_size_is_a_dataset_by_name(tmp_path: Path) -> None:
    path = tmp_path / "l.h5"
    ngser.save([np.arange(INLINE_LIMIT), np.arange(3), {"run": {"temperature": np.ones(2)}}], path)
    datasets = sorted(n for n, k in _visit(path).items() if k == "Dataset" and not n.startswith("ngser"))
    assert datasets == ["0", "1", "2/run/temperature"]
    with h5py.File(path, "r") as file:
        assert "packed" not in file["ngser"]
        np.testing.assert_array_equal(file["2/run/temperature"][...], np.ones(2))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_damaged_array_names_node_and_dataset(tmp_path: Path) -> None:
    mesh, _, _ = _sample()
    path = tmp_path / "x.h5"
    ngser.save(mesh, path)
    with h5py.File(path, "r") as file:
        offset = file["points"].id.get_offset()
    _flip(path, offset + 100)
    with pytest.raises(ngser.FormatError, match=r"x\.h5: array node \d+ \(/points\).*checksum"):
        ngser.load(path)
    with ngser.open(path) as view:  # a lazy view finds the damage when the array is read
        assert view.objects()[0][1] == "tests.hdf5.Mesh"
        with pytest.raises(ngser.FormatError, match="checksum"):
            view.array("tests.hdf5.Mesh/points")
        np.testing.assert_array_equal(view.array("tests.hdf5.Mesh/cells"), mesh.cells)


def test_damaged_graph_detected(tmp_path: Path) -> None:
    path = tmp_path / "g.h5"
    ngser.save({"key": "some text to damage"}, path)
    with h5py.File(path, "r") as file:
        offset = file["ngser/graph"].id.get_offset()
    _flip(path, offset + 3)
    with pytest.raises(ngser.FormatError, match="graph is damaged"):
        ngser.load(path)


def test_plain_hdf5_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as file:
        file["x"] = np.arange(3)
    with pytest.raises(ngser.FormatError, match="not one written by ngser"):
        ngser.load(path)


def test_truncated_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    ngser.save(np.arange(10_000.0), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ngser.FormatError, match=r"t\.h5"):
        ngser.load(path)


def test_newer_format_version_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.h5"
    ngser.save([1], path)
    with h5py.File(path, "r+") as file:
        file["ngser"].attrs["format"] = 99
    with pytest.raises(ngser.VersionError, match="format version 99"):
        ngser.load(path)


def test_bytes_are_an_hdf5_file_image(tmp_path: Path) -> None:
    before = set(os.listdir("."))
    data = ngser.dumps({"a": np.arange(5000)}, format="hdf5")
    assert data[:8] == b"\x89HDF\r\n\x1a\n"
    assert set(os.listdir(".")) == before  # nothing written to disk
    path = tmp_path / "image.h5"
    path.write_bytes(data)
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["a"][...], np.arange(5000))
    np.testing.assert_array_equal(ngser.loads(data)["a"], np.arange(5000))


def test_quote_name() -> None:
    assert quote_name("a/b%c") == "a%2Fb%25c"
    assert quote_name(".") == "%2E"
    assert quote_name("..") == "%2E%2E"
    assert quote_name("") == "%00"
    assert quote_name("a\0b") == "a%00b"
    assert quote_name("\udcff") == "\\udcff"
    assert quote_name("ngsolve.Mesh") == "ngsolve.Mesh"


def test_names_follow_keys_share_by_link_and_skip_objects_without_arrays() -> None:
    nodes = [
        ObjectNode(0, "T", 1, {"child": Ref(1), "points": Ref(2), "name": "first"}),
        ObjectNode(1, "T", 2, {"points": Ref(3), "nested": {"deep": Ref(4)}, "up": Ref(0)}),
        ObjectNode(8, "Small", 1, {"i": 1}),
    ]
    arrays = [ArrayNode(i, np.zeros(1)) for i in (2, 3, 4, 5, 6)]
    root = {"a": Ref(0), "b": Ref(1), "list": [Ref(5), Ref(8)], "ngser": Ref(6), "s": Ref(8), "again": Ref(2)}
    names = Names(Graph(root, nodes, arrays), {2, 3, 4, 5, 6})
    paths = [names.path(i) for i in (2, 3, 4, 5, 6)]
    assert paths == ["/again", "/b/points", "/b/nested/deep", "/list/0", "/ngser~2"]  # the shortest name
    groups = dict(names.groups)
    assert list(groups) == ["/", "/a", "/b", "/list", "/b/nested"]  # parents first; none for Small
    assert groups["/a"] == {"type": "T", "version": 1, "name": "first"}
    assert groups["/b"] == {"type": "T", "version": 2} and groups["/b/nested"] == {}
    assert sorted(names.links) == [("/a/child", "/b"), ("/a/points", "/again"), ("/b/up", "/a")]


def test_names_with_a_group_of_links_only_and_deep_chains() -> None:
    """A group that holds only links exists when something links to it; chains deeper than
    MAX_NAME_DEPTH put their arrays under /arrays instead of making paths without end."""
    nodes = [ObjectNode(0, "M", 1, {"points": Ref(9)}), ObjectNode(1, "X", 1, {"mesh": Ref(0)})]
    names = Names(Graph({"m": Ref(0), "x": Ref(1), "y": Ref(1)}, nodes, [ArrayNode(9, np.zeros(1))]), {9})
    assert [path for path, _ in names.groups] == ["/", "/m", "/x"]
    assert sorted(names.links) == [("/x/mesh", "/m"), ("/y", "/x")]
    depth = MAX_NAME_DEPTH + 5
    chain = [ObjectNode(i, "L", 1, {"next": Ref(i + 1)}) for i in range(depth)]
    chain.append(ObjectNode(depth, "L", 1, {"values": Ref(1000)}))
    names = Names(Graph(Ref(0), chain, [ArrayNode(1000, np.zeros(1))]), {1000})
    assert names.path(1000) == "/arrays/1000"


def test_root_array_and_shared_names_load_back(tmp_path: Path) -> None:
    path = tmp_path / "r.h5"
    ngser.save(np.arange(INLINE_LIMIT), path)
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["data"][...], np.arange(INLINE_LIMIT))
    ngser.save({"VTKHDF": np.arange(3)}, path)  # the name ParaView's view takes (ngser.save(..., vtk=True))
    with h5py.File(path, "r") as file:
        assert list(file) == ["VTKHDF~2", "ngser"]
    mesh, u, v = _sample()
    ngser.save({"ngser": mesh, "runs": [{"u": u}, {"v": v}], "u": u, 7: v}, path)
    with h5py.File(path, "r") as file:
        assert file["ngser~2/points"] == file["runs/0/u/mesh/points"] == file["u/mesh/points"]
        assert file["runs/1/v"] == file["7"]
    out = ngser.load(path)
    assert out["u"] is out["runs"][0]["u"] and out[7].mesh is out["ngser"]


DIRECT_DTYPES = ["<f8", ">f8", "<f4", "<f2", "<i8", ">i4", "<u2", "|i1", "|u1", "<c16", ">c8", "|b1", "<M8[s]", "<U3"]


@pytest.mark.parametrize("dtype", DIRECT_DTYPES)
def test_arrays_written_at_their_dataset_offsets_read_back_with_plain_h5py(tmp_path: Path, dtype: str) -> None:
    """Saving to a file writes the bytes of uncompressed arrays at the offset HDF5 allocated:
    the dataset must hold exactly the array, for HDF5 itself and for ngser."""
    rng = np.random.default_rng(1)
    data = np.arange(6000).astype(dtype) if np.dtype(dtype).kind in "MU" else (rng.random(6000) * 100).astype(dtype)
    arrays = {"c": data.reshape(60, 100), "f": np.asfortranarray(data.reshape(60, 100))}
    path = tmp_path / "direct.h5"
    ngser.save(arrays, path)
    with h5py.File(path, "r") as file:
        datasets = [file[name] for name in sorted(arrays)]
        for dataset in datasets:
            assert dataset.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
            if "dtype" not in dataset.attrs:  # HDF5 has the type: h5py reads the values themselves
                stored = dataset[...]
                expected = arrays["f"].T if "fortran" in dataset.attrs else arrays["c"]
                np.testing.assert_array_equal(stored, expected)
    out = ngser.load(path)
    for key, value in arrays.items():
        assert out[key].dtype == value.dtype
        np.testing.assert_array_equal(out[key], value)
    assert ngser.loads(ngser.dumps(arrays, format="hdf5"))["c"].tobytes() == arrays["c"].tobytes()
