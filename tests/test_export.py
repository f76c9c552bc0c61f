"""``ngser export`` / ``ngser.export``: VTKHDF files from saved files and checkpoints, read back with
VTK's own reader (vtkHDFReader, ParaView's); and ``ngser.open(path, step=k)`` of a checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

ngsolve = pytest.importorskip("ngsolve")
vtk = pytest.importorskip("vtk")

from netgen.occ import unit_square  # noqa: E402
from ngsolve import CF, H1, GridFunction, Mesh, VectorH1, x, y  # noqa: E402

import ngser  # noqa: E402
from helpers import ngser_cli  # noqa: E402
from ngser.cli import main  # noqa: E402
from vtk_reading import node_error, read, times_of  # noqa: E402

TOL = 1e-12
#: Files of meshes with an OCC geometry load without it when not trusted (and say so): not tested here.
pytestmark = pytest.mark.filterwarnings("ignore::ngser.serializers.ngsolve.GeometryWarning")


def square(h: float = 0.3) -> Any:
    return Mesh(unit_square.GenerateMesh(maxh=h))


@pytest.fixture
def fields() -> dict[str, Any]:
    mesh = square()
    u = GridFunction(H1(mesh, order=2))
    u.Set(x * x - 3 * x * y + y)
    v = GridFunction(VectorH1(mesh, order=1))
    v.Set(CF((x + 1, 2 * y)))
    return {"u": u, "v": v, "n": 7}


def heat_checkpoint(path: Path, steps: int = 5) -> tuple[Any, list[np.ndarray]]:
    """A checkpoint of ``steps`` steps of an order-3 field on one mesh; the field's dof vectors."""
    mesh = square(0.35)
    u = GridFunction(H1(mesh, order=3))
    vectors = []
    with ngser.Checkpoint(path, mode="w") as ck:
        for n in range(steps):
            u.Set((1 + n) * x * x * y - n * y * y * y)
            vectors.append(u.vec.FV().NumPy().copy())
            ck.append({"u": u, "step": n}, time=0.25 * n)
    return mesh, vectors


# -- a saved file ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".h5", ".msgpack", ".pkl"])
def test_a_saved_file_in_any_format_exports_to_a_grid_without_steps(
    tmp_path: Path, fields: dict[str, Any], suffix: str
) -> None:
    src, dst = tmp_path / f"result{suffix}", tmp_path / "result.vtkhdf"
    ngser.save(fields, src)
    ngser.export(src, dst)
    mesh = fields["u"].space.mesh
    reader, grid = read(dst)
    assert reader.GetNumberOfSteps() == 1 and times_of(reader) == ()
    with h5py.File(dst, "r") as f:
        assert "Steps" not in f["VTKHDF"] and set(f) == {"VTKHDF"}
    assert grid.GetNumberOfCells() == mesh.ne
    assert grid.GetNumberOfPoints() == 6 * mesh.ne  # order-2 triangles, nodes not shared
    assert {grid.GetCellType(c) for c in range(grid.GetNumberOfCells())} == {69}  # VTK_LAGRANGE_TRIANGLE
    assert node_error(grid, "u", fields["u"], mesh) <= TOL
    assert node_error(grid, "v", fields["v"], mesh) <= TOL
    assert grid.GetPointData().GetNumberOfArrays() == 2


def test_the_order_option_sets_the_cells(tmp_path: Path, fields: dict[str, Any]) -> None:
    ngser.save(fields, tmp_path / "r.h5")
    result = ngser_cli("export", str(tmp_path / "r.h5"), str(tmp_path / "r.vtkhdf"), "--order", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    _, grid = read(tmp_path / "r.vtkhdf")
    assert grid.GetNumberOfPoints() == 10 * fields["u"].space.mesh.ne
    assert node_error(grid, "u", fields["u"], fields["u"].space.mesh) <= TOL
    ngser.export(tmp_path / "r.h5", tmp_path / "linear.vtkhdf", order=1)
    _, grid = read(tmp_path / "linear.vtkhdf")
    assert {grid.GetCellType(c) for c in range(grid.GetNumberOfCells())} == {5}  # VTK_TRIANGLE


# -- a checkpoint -----------------------------------------------------------------------------
def test_a_checkpoint_exports_to_a_series_with_the_mesh_once(tmp_path: Path) -> None:
    src, dst = tmp_path / "heat.h5", tmp_path / "heat.vtkhdf"
    mesh, vectors = heat_checkpoint(src)
    result = ngser_cli("export", str(src), str(dst))
    assert result.returncode == 0, result.stderr
    reader, grid = read(dst)
    assert reader.GetNumberOfSteps() == 5
    assert times_of(reader) == (0.0, 0.25, 0.5, 0.75, 1.0)
    with h5py.File(dst, "r") as f:
        root = f["VTKHDF"]
        assert root["Points"].shape == (10 * mesh.ne, 3)  # the mesh once, order-3 cells
        assert not root["Steps/PointOffsets"][:].any() and not root["Steps/CellOffsets"][:].any()
        assert root["PointData/u"].shape == (5 * 10 * mesh.ne,)
    u = GridFunction(H1(mesh, order=3))
    for step, vector in enumerate(vectors):
        _, grid = read(dst, step)
        assert grid.GetNumberOfCells() == mesh.ne and grid.GetNumberOfPoints() == 10 * mesh.ne
        u.vec.FV().NumPy()[:] = vector
        assert node_error(grid, "u", u, mesh) <= TOL


def test_one_step_of_a_checkpoint_exports_alone(tmp_path: Path) -> None:
    src = tmp_path / "heat.h5"
    mesh, vectors = heat_checkpoint(src)
    result = ngser_cli("export", str(src), str(tmp_path / "s.vtkhdf"), "--step", "-2")
    assert result.returncode == 0, result.stderr
    reader, grid = read(tmp_path / "s.vtkhdf")
    assert reader.GetNumberOfSteps() == 1
    u = GridFunction(H1(mesh, order=3))
    u.vec.FV().NumPy()[:] = vectors[3]
    assert node_error(grid, "u", u, mesh) <= TOL
    result = ngser_cli("export", str(src), str(tmp_path / "t.vtkhdf"), "--step", "5")
    assert result.returncode == 1 and "step 5 does not exist" in result.stderr


def test_a_series_whose_mesh_changes_is_refused_and_the_old_file_stays(tmp_path: Path) -> None:
    src, dst = tmp_path / "moving.h5", tmp_path / "moving.vtkhdf"
    dst.write_bytes(b"the previous export")
    mesh = square(0.4)
    with ngser.Checkpoint(src, mode="w") as ck:
        for n in range(3):
            if n == 2:
                mesh.Refine()
            u = GridFunction(H1(mesh, order=1))
            u.Set(x + n)
            ck.append({"u": u})
    with pytest.raises(ngser.ArgumentError, match=r"step 2\).*mesh differs from step 0's.*--step K"):
        ngser.export(src, dst)
    assert dst.read_bytes() == b"the previous export"
    assert not [p for p in os.listdir(tmp_path) if "ngser-tmp" in p or "ngser-lock" in p]  # no temporary left
    ngser.export(src, dst, step=2)  # a single step of the refined mesh
    assert read(dst)[1].GetNumberOfCells() == mesh.ne


def test_an_equal_mesh_stored_again_continues_the_series(tmp_path: Path) -> None:
    src, dst = tmp_path / "copies.h5", tmp_path / "copies.vtkhdf"
    mesh = square(0.4)
    values = []
    with ngser.Checkpoint(src, mode="w") as ck:
        for n in range(3):
            ngmesh = mesh.ngmesh.Copy()
            ngmesh.SetBCName(0, f"wall{n}")  # another mesh each step (stored again), the same cells and nodes
            copy = Mesh(ngmesh)
            u = GridFunction(H1(copy, order=2))
            u.Set(x * y + n)
            values.append((copy, u))
            ck.append({"u": u}, time=n)
        meshes = [ck.load(n)["u"].space.mesh for n in range(3)]
        assert meshes[0] is not meshes[1] and meshes[1] is not meshes[2]
    ngser.export(src, dst)
    with h5py.File(dst, "r") as f:
        assert f["VTKHDF/Points"].shape == (6 * mesh.ne, 3)
    for step, (copy, u) in enumerate(values):
        reader, grid = read(dst, step)
        assert reader.GetNumberOfSteps() == 3
        assert node_error(grid, "u", u, copy) <= TOL


def test_steps_with_other_fields_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "ck.h5"
    mesh = square(0.4)
    u = GridFunction(H1(mesh, order=1))
    with ngser.Checkpoint(src, mode="w") as ck:
        ck.append({"u": u})
        ck.append({"u": u, "w": u})
        ck.append({"nothing": 1})
    with pytest.raises(ngser.ArgumentError, match=r"step 1\).*point arrays"):
        ngser.export(src, tmp_path / "out.vtkhdf")
    with pytest.raises(ngser.ArgumentError, match=r"step 2\): found no GridFunction"):
        ngser.export(src, tmp_path / "out.vtkhdf", step=2)
    assert not (tmp_path / "out.vtkhdf").exists()
    with ngser.Checkpoint(tmp_path / "empty.h5", mode="w"):
        pass
    with pytest.raises(ngser.ArgumentError, match="no steps"):
        ngser.export(tmp_path / "empty.h5", tmp_path / "out.vtkhdf")


def test_fields_on_another_mesh_are_left_out_with_a_warning(tmp_path: Path, fields: dict[str, Any]) -> None:
    other = GridFunction(H1(square(0.5), order=1))
    ngser.save({**fields, "other": other}, tmp_path / "r.msgpack")
    with pytest.warns(ngser.NgserWarning, match=r"left out.*'other' \(on another mesh") as caught:
        ngser.export(tmp_path / "r.msgpack", tmp_path / "r.vtkhdf")
    assert caught[0].filename == __file__  # attributed to the caller's line
    _, grid = read(tmp_path / "r.vtkhdf")
    assert grid.GetPointData().GetArray("other") is None and grid.GetPointData().GetArray("u") is not None


# -- safety and errors -------------------------------------------------------------------------
def test_loading_is_safe_unless_trusted(tmp_path: Path, fields: dict[str, Any]) -> None:
    src = tmp_path / "r.pkl"
    ngser.save({**fields, "f": lambda t: t + 1}, src, fallback="cloudpickle")
    result = ngser_cli("export", str(src), str(tmp_path / "r.vtkhdf"))
    assert result.returncode == 1 and "trusted" in result.stderr and not (tmp_path / "r.vtkhdf").exists()
    assert len(result.stderr.strip().splitlines()) == 1
    result = ngser_cli("export", str(src), str(tmp_path / "r.vtkhdf"), "--trusted")
    assert result.returncode == 0, result.stderr
    assert node_error(read(tmp_path / "r.vtkhdf")[1], "u", fields["u"], fields["u"].space.mesh) <= TOL


def test_odd_and_hostile_inputs_are_one_line_errors(tmp_path: Path, fields: dict[str, Any], capsys: Any) -> None:
    good = tmp_path / "good.h5"
    ngser.save(fields, good)
    damaged = tmp_path / "damaged.msgpack"
    ngser.save(fields, damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (tmp_path / "plain.h5").write_bytes(b"")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    ngser.save({"just": [1, 2]}, tmp_path / "nofields.msgpack")
    (tmp_path / "folder").mkdir()
    cases = {
        ("missing.h5", "o.vtkhdf"): "no such file",
        ("damaged.msgpack", "o.vtkhdf"): "damaged",
        ("plain.h5", "o.vtkhdf"): "not an ngser file",
        ("foreign.h5", "o.vtkhdf"): "not one written by ngser",
        ("nofields.msgpack", "o.vtkhdf"): "found no GridFunction",
        ("good.h5", "good.h5"): "is the source file",
        ("good.h5", "folder"): "is a folder",
        ("good.h5", "nowhere/o.vtkhdf"): "cannot create",
        ("folder", "o.vtkhdf"): "folder",
        ("good.h5", "o.vtkhdf --step 0"): "step= is for checkpoints",
        ("good.h5", "o.vtkhdf --order 0"): "order must be a positive int",
    }
    for (src, dst), message in cases.items():
        args = ["export", str(tmp_path / src), *[str(tmp_path / dst.split()[0]), *dst.split()[1:]]]
        assert main(args) == 1, (src, dst)
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (src, dst, err)
    assert not (tmp_path / "o.vtkhdf").exists()
    for bad in ({"order": 1.5}, {"order": True}, {"step": "1"}):
        with pytest.raises(ngser.ArgumentError):
            ngser.export(good, tmp_path / "o.vtkhdf", **bad)


def test_without_ngsolve_export_says_how_to_install_it(tmp_path: Path, fields: dict[str, Any]) -> None:
    ngser.save(fields, tmp_path / "r.h5")
    code = (
        "import sys; sys.modules['ngsolve'] = None\n"  # import ngsolve raises ImportError
        "from ngser.cli import main\n"
        "sys.exit(main(['export', sys.argv[1], sys.argv[2]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.h5"), str(tmp_path / "r.vtkhdf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "pip install 'ngser[ngsolve]'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.vtkhdf").exists()


def test_ngser_export_is_the_function_and_import_ngser_stays_light() -> None:
    code = "import ngser, sys; from ngser._export import command; sys.exit(not callable(ngser.export))"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0
    code = "import sys, ngser; sys.exit('h5py' in sys.modules or 'ngsolve' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


# -- ngser.open of a checkpoint step -----------------------------------------------------------
def test_open_views_one_step_and_loads_what_checkpoint_load_gives(tmp_path: Path) -> None:
    path = tmp_path / "heat.h5"
    mesh, vectors = heat_checkpoint(path)
    with ngser.open(path, step=2) as view:
        assert view.step == 2 and view.time == 0.5 and view.format == "hdf5"
        assert "step 2 (time 0.5) of a checkpoint" in repr(view)
        names = [name for _, name, _ in view.objects()]
        assert "ngser.Stored" in names and "ngsolve.Mesh" not in names  # the mesh is in its own segment
        state = view.load()
        assert state["step"] == 2 and view.load("step") == 2
        np.testing.assert_array_equal(state["u"].vec.FV().NumPy(), vectors[2])
        u = view.load("u")
        assert u.space.mesh is state["u"].space.mesh  # stored objects are shared by the view's loads
        stored = next(nid for nid, name, _ in view.objects() if name == "ngser.Stored")
        assert view.load(stored) is u.space
    reference = ngser.Checkpoint(path, mode="r").load(2)
    np.testing.assert_array_equal(state["u"].vec.FV().NumPy(), reference["u"].vec.FV().NumPy())
    assert state["u"].space.ndof == reference["u"].space.ndof and state["u"].space.mesh.ne == mesh.ne
    with ngser.open(path) as view:  # the last step
        assert view.step == 4 and view.time == 1.0
        np.testing.assert_array_equal(view.load("u").vec.FV().NumPy(), vectors[4])
    with ngser.open(path, step=-5) as view:
        assert view.step == 0


def test_open_step_arguments(tmp_path: Path, fields: dict[str, Any]) -> None:
    path = tmp_path / "heat.h5"
    heat_checkpoint(path, steps=2)
    with pytest.raises(ngser.NotFoundError, match="step 2 does not exist"):
        ngser.open(path, step=2)
    for bad in ("1", 1.0, True, [1]):
        with pytest.raises(ngser.ArgumentError, match="step= must be an int"):
            ngser.open(path, step=bad)  # type: ignore[arg-type]
    for suffix in (".h5", ".msgpack", ".pkl"):
        ngser.save(fields, tmp_path / f"r{suffix}")
        with pytest.raises(ngser.ArgumentError, match="step= views a step of a checkpoint"):
            ngser.open(tmp_path / f"r{suffix}", step=0)
        with ngser.open(tmp_path / f"r{suffix}") as view:
            assert view.step is None and view.time is None
    with ngser.Checkpoint(tmp_path / "empty.h5", mode="w"):
        pass
    with pytest.raises(ngser.NotFoundError, match="0 steps"):
        ngser.open(tmp_path / "empty.h5")


def test_open_step_with_a_registry_of_plain_objects(tmp_path: Path) -> None:
    """Stored objects of any serializer with a fingerprint, built with the registry given to load."""
    from ngser.serializers import Registry, Serializer

    class Grid:
        def __init__(self, points: np.ndarray) -> None:
            self.points = points

    class GridSerializer(Serializer):
        name = "test.ExportGrid"
        types = (Grid,)

        def fingerprint(self, obj: Grid) -> Any:
            return 0

        def dump(self, obj: Grid) -> Any:
            return {"points": obj.points}

        def load(self, state: Any) -> Grid:
            return Grid(state["points"])

    registry = Registry()
    registry.add(GridSerializer())
    grid = Grid(np.arange(30.0))
    path = tmp_path / "plain.h5"
    with ngser.Checkpoint(path, registry=registry) as ck:
        for n in range(3):
            ck.append({"grid": grid, "n": n})
    with ngser.open(path, step=1) as view:
        with pytest.raises(ngser.UnknownTypeError):
            view.load()  # the default registry has no test.ExportGrid
        first, again = view.load(registry=registry), view.load("grid", registry=registry)
        assert first["n"] == 1 and first["grid"] is again
        np.testing.assert_array_equal(first["grid"].points, grid.points)
        assert view.load("n") == 1
