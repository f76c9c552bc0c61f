"""``ngser.save(obj, path, format="hdf5", vtk=True)``: an ngser HDF5 file that ParaView opens too.

The ``/VTKHDF`` group is read with VTK's own reader (vtkHDFReader, ParaView's); the same file still
loads, opens, and passes ``ngser info``/``verify``/``convert``; a failed save leaves the old file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from ngsolve import CF, H1, L2, FacetFESpace, GridFunction, VectorH1, x, y
from ngsolve.meshes import MakeStructured2DMesh

import ngser
import ngser.vtk

vtk = pytest.importorskip("vtk")

from helpers import ngser_cli  # noqa: E402
from vtk_reading import node_error, read  # noqa: E402

TOL = 1e-12


@pytest.fixture
def state() -> dict[str, Any]:
    mesh = MakeStructured2DMesh(quads=False, nx=4, ny=3)
    u = GridFunction(H1(mesh, order=3))
    u.Set(x * x * y - 2 * x + y * y * y)
    v = GridFunction(VectorH1(mesh, order=2))
    v.Set(CF((x * y, 1 - y)))
    c = GridFunction(H1(mesh, order=1, complex=True))
    c.Set(x + 1j * y)
    return {"fields": {"u": u, "v": v}, "c": c, "t": 0.5, "mesh": mesh}


@pytest.mark.parametrize("name", ["result.vtkhdf", "result.hdf", "result.h5"])
def test_the_saved_file_opens_in_vtk_with_the_fields_at_the_nodes(
    tmp_path: Path, state: dict[str, Any], name: str
) -> None:
    path = tmp_path / name
    ngser.save(state, path, format="hdf5", vtk=True)
    mesh = state["mesh"]
    reader, grid = read(path)
    assert reader.GetNumberOfSteps() == 1
    assert grid.GetNumberOfCells() == mesh.ne == 24
    assert grid.GetNumberOfPoints() == 10 * mesh.ne  # order-3 triangles (the highest field order)
    names = {grid.GetPointData().GetArrayName(i) for i in range(grid.GetPointData().GetNumberOfArrays())}
    assert names == {"fields.u", "fields.v", "c_real", "c_imag"}
    assert node_error(grid, "fields.u", state["fields"]["u"], mesh) <= TOL
    assert node_error(grid, "fields.v", state["fields"]["v"], mesh) <= TOL
    assert node_error(grid, "c_real", state["c"].real, mesh) <= TOL
    assert node_error(grid, "c_imag", state["c"].imag, mesh) <= TOL
    with h5py.File(path, "r") as f:
        assert set(f) == {"ngser", "fields", "c", "mesh", "VTKHDF"} and "Steps" not in f["VTKHDF"]
    # the same file is an ngser file: the format is recognised from its first bytes, whatever its name
    loaded = ngser.load(path)
    assert loaded["t"] == 0.5
    np.testing.assert_array_equal(loaded["fields"]["u"].vec.FV().NumPy(), state["fields"]["u"].vec.FV().NumPy())
    with ngser.open(path) as view:
        assert view.format == "hdf5"
        np.testing.assert_array_equal(view.load("c").vec.FV().NumPy(), state["c"].vec.FV().NumPy())
    plain = tmp_path / f"plain{path.suffix}"
    ngser.save(state, plain, format="hdf5")  # without vtk=True too: such a name is an HDF5 file
    with ngser.open(plain) as view:
        np.testing.assert_array_equal(view.load("c").vec.FV().NumPy(), state["c"].vec.FV().NumPy())


def test_info_verify_and_convert_work_on_such_files(tmp_path: Path, state: dict[str, Any]) -> None:
    path = tmp_path / "r.vtkhdf"
    ngser.save(state, path, vtk=True)  # a .vtkhdf name saves as HDF5 with vtk=True
    info = ngser_cli("info", str(path))
    assert info.returncode == 0 and "format:         hdf5" in info.stdout, info.stderr
    verify = ngser_cli("verify", str(path))
    assert verify.returncode == 0 and "OK (hdf5" in verify.stdout, verify.stdout
    for out in ("r.msgpack", "r2.h5"):
        result = ngser_cli("convert", str(path), str(tmp_path / out))
        assert result.returncode == 0, result.stderr
        again = ngser.load(tmp_path / out)
        np.testing.assert_array_equal(again["fields"]["v"].vec.FV().NumPy(), state["fields"]["v"].vec.FV().NumPy())
    with h5py.File(tmp_path / "r2.h5", "r") as f:
        assert "VTKHDF" not in f  # convert rewrites ngser's graph only; `ngser export` makes the VTK view
    result = ngser_cli("export", str(path), str(tmp_path / "e.vtkhdf"))
    assert result.returncode == 0, result.stderr
    with h5py.File(path, "r") as a, h5py.File(tmp_path / "e.vtkhdf", "r") as b:
        for key in ("Points", "Connectivity", "PointData/fields.u", "PointData/c_imag"):
            np.testing.assert_array_equal(a["VTKHDF"][key][:], b["VTKHDF"][key][:])


def test_vtk_needs_hdf5_a_path_and_a_named_gridfunction(tmp_path: Path, state: dict[str, Any]) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"path": tmp_path / "r.msgpack"}, "needs format='hdf5'"),
        ({"path": tmp_path / "r.h5", "format": "pickle"}, "needs format='hdf5'"),
        ({"path": tmp_path / "r.bin"}, "cannot tell the format"),
        ({"path": io.BytesIO(), "format": "hdf5"}, "not a file object"),
        ({"path": tmp_path / "r.h5", "vtk": "yes"}, "vtk= must be True or False"),
        ({"path": tmp_path / "r.h5", "vtk": 1}, "vtk= must be True or False"),
        ({"path": tmp_path / "r.h5", "obj": {"a": 1, "m": state["mesh"]}}, "found no GridFunction under a name"),
        ({"path": tmp_path / "r.h5", "obj": [state["c"]]}, "found no GridFunction under a name"),
    ]
    for kwargs, message in cases:
        kwargs = {"obj": state, "vtk": True, **kwargs}
        with pytest.raises(ngser.ArgumentError, match=message):
            ngser.save(kwargs.pop("obj"), kwargs.pop("path"), **kwargs)
    assert os.listdir(tmp_path) == []  # nothing written, no temporary left
    ngser.save(state, tmp_path / "r.h5", vtk=False)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert "VTKHDF" not in f
    ngser.save(state["c"], tmp_path / "bare.h5", vtk=True)  # a GridFunction on its own: under its name
    _, grid = read(tmp_path / "bare.h5")
    assert grid.GetPointData().GetArray(f"{state['c'].name}_real") is not None


def test_fields_vtk_cannot_hold_are_left_out_with_a_warning(tmp_path: Path, state: dict[str, Any]) -> None:
    other = GridFunction(L2(MakeStructured2DMesh(nx=2, ny=2), order=0))
    facet = GridFunction(FacetFESpace(state["mesh"], order=1))
    path = tmp_path / "r.h5"
    with pytest.warns(ngser.NgserWarning, match=r"left out of the VTK grid: 'other' \(on another mesh.*'facet'") as w:
        ngser.save({"u": state["fields"]["u"], "other": other, "facet": facet}, path, vtk=True)
    assert w[0].filename == __file__
    _, grid = read(path)
    assert grid.GetPointData().GetNumberOfArrays() == 1 and grid.GetPointData().GetArray("u") is not None
    with pytest.raises(ngser.ArgumentError, match="none of the GridFunctions facet can be evaluated"):
        ngser.save({"facet": facet}, path, vtk=True)


def test_a_failed_save_leaves_the_old_file(tmp_path: Path, state: dict[str, Any], monkeypatch: Any) -> None:
    path = tmp_path / "r.vtkhdf"
    ngser.save({"u": state["fields"]["u"]}, path, vtk=True)
    before = path.read_bytes()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ngser.vtk, "write", broken)  # fails after the ngser groups were written
    with pytest.raises(ngser.FileAccessError, match="previous file, if any, is unchanged"):
        ngser.save(state, path, vtk=True)
    monkeypatch.undo()
    with pytest.raises(ngser.ArgumentError):
        ngser.save({"nothing": 1}, path, vtk=True)  # fails before anything is written
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["r.vtkhdf"]
    assert set(ngser.load(path)) == {"u"}


def test_the_reader_ignores_the_vtk_group_whatever_it_holds(tmp_path: Path, state: dict[str, Any]) -> None:
    """ngser's reader never opens /VTKHDF: links out of the file or odd datasets there change nothing."""
    path = tmp_path / "r.h5"
    ngser.save(state, path, vtk=True)
    with h5py.File(path, "a") as f:
        f["VTKHDF/outside"] = h5py.ExternalLink("/etc/passwd", "/x")
        f["VTKHDF/soft"] = h5py.SoftLink("/nowhere")
        f["VTKHDF"].create_dataset("big", shape=(10**12,), dtype="f8", chunks=(1024,))
    loaded = ngser.load(path)
    np.testing.assert_array_equal(loaded["fields"]["u"].vec.FV().NumPy(), state["fields"]["u"].vec.FV().NumPy())
    assert ngser_cli("verify", str(path)).returncode == 0


def test_a_mesh_without_volume_elements_is_refused(tmp_path: Path) -> None:
    from netgen.occ import Box, OCCGeometry, Pnt
    from ngsolve import Mesh

    surface = Mesh(OCCGeometry(Box(Pnt(0, 0, 0), Pnt(1, 1, 1)).faces[0], dim=3).GenerateMesh(maxh=0.5))
    s = GridFunction(H1(surface, order=1, definedon=surface.Boundaries(".*")))
    with pytest.raises(ngser.ArgumentError, match="no volume elements"):
        ngser.save({"s": s}, tmp_path / "s.h5", vtk=True)
    assert os.listdir(tmp_path) == []
