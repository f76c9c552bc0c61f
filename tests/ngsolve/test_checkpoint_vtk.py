"""Checkpoints with ``vtk=True``: the same file is a VTKHDF time series that VTK's own reader
(``vtkHDFReader``, ParaView's) opens, at every moment of a run, with every kept step's fields
equal to the GridFunctions at the cells' nodes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import ngsolve
import numpy as np
import pytest
from ngsolve import CF, cos, sin, x, y

import ngser
from conftest import disk_mesh, square_mesh
from ngser.checkpoint._describe import describe_checkpoint, verify_checkpoint

vtk = pytest.importorskip("vtk")
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

from vtk_reading import read, reader_of  # noqa: E402


def steps_of(path: Path) -> int:
    return int(reader_of(path).GetNumberOfSteps())


def vtk_times(path: Path) -> list[float]:
    with h5py.File(path, "r", locking=False) as f:
        return [float(t) for t in f["VTKHDF/Steps/Values"][:]]


def node_error(grid: Any, name: str, gfu: Any) -> float:
    """Largest difference between the array ``name`` of the grid VTK read and ``gfu`` at the
    nodes of ngser.vtk's cells of its mesh (whose sampling tests/test_vtkhdf.py checks)."""
    layout = ngser.vtk.sample(gfu.space.mesh, {name: gfu}, order=gfu.space.globalorder)
    expected = ngser.vtk.point_data(layout, {name: gfu})[name]
    points = vtk_to_numpy(grid.GetPoints().GetData())
    assert np.abs(points - layout.points).max() < 1e-12
    return float(np.abs(vtk_to_numpy(grid.GetPointData().GetArray(name)) - expected).max())


def point_error(grid: Any, name: str, gfu: Any) -> float:
    """Largest difference between the array ``name`` and ``gfu`` evaluated at the grid's points."""
    values = vtk_to_numpy(grid.GetPointData().GetArray(name))
    points = vtk_to_numpy(grid.GetPoints().GetData())
    mesh = gfu.space.mesh
    exact = np.array([gfu(mesh(p[0], p[1])) for p in points])
    return float(np.abs(values - exact).max())


def field(n: int) -> Any:
    return sin((n + 1) * x) * cos(y) + 0.1 * n


def run(path: Path, mesh: ngsolve.Mesh, steps: range, order: int = 3, **options: Any) -> ngsolve.GridFunction:
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=order), name="u")
    with ngser.Checkpoint(path, vtk=True, **options) as ck:
        for n in steps:
            gfu.Set(field(n))
            ck.append({"u": gfu, "n": n}, time=0.5 * n)
    return gfu


def test_every_step_is_in_the_vtk_view_with_the_fields_values(tmp_path: Path) -> None:
    path = tmp_path / "heat.vtkhdf"
    mesh = square_mesh(0.25)
    gfu = run(path, mesh, range(9))  # past the first room of 4 steps: the view grows twice
    assert steps_of(path) == 9
    assert vtk_times(path) == [0.5 * n for n in range(9)]
    with ngser.Checkpoint(path, mode="r") as ck:
        for n in range(9):
            grid = read(path, n)[1]
            assert grid.GetNumberOfCells() == mesh.ne
            gfu.Set(field(n))
            assert node_error(grid, "u", gfu) < 1e-12
            assert point_error(grid, "u", gfu) < 1e-12
            assert ck.load(n)["n"] == n
    assert verify_checkpoint(str(path)).startswith("OK")
    assert "VTK view:       /VTKHDF, 9 of the kept steps" in describe_checkpoint(str(path))  # ngser info


def test_steps_that_fill_the_data_grow_the_file_without_damage(tmp_path: Path) -> None:
    """Regression: a step that outgrew the data while the view had a free slot was written past
    the data dataset, over HDF5's metadata."""
    path = tmp_path / "big.h5"
    gfu = ngsolve.GridFunction(ngsolve.H1(square_mesh(0.3), order=1))
    with ngser.Checkpoint(path, vtk=True) as ck:
        for n in range(3):
            ck.append({"u": gfu, "extra": np.full(200_000, float(n))}, time=float(n))
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: None)  # every object header intact
    assert steps_of(path) == 3 and verify_checkpoint(str(path)).startswith("OK")
    with ngser.Checkpoint(path, mode="r") as ck:
        assert [float(ck.load(i)["extra"][-1]) for i in range(3)] == [0.0, 1.0, 2.0]


def test_keep_rolls_the_view_and_reuses_its_room(tmp_path: Path) -> None:
    path = tmp_path / "rolling.h5"
    mesh = square_mesh(0.25)
    gfu = run(path, mesh, range(6), keep=3)
    size = os.path.getsize(path)
    run(path, mesh, range(6, 30), keep=3)
    assert os.path.getsize(path) == size  # four slots, reused
    assert steps_of(path) == 3 and vtk_times(path) == [13.5, 14.0, 14.5]
    for k, n in enumerate(range(27, 30)):
        gfu.Set(field(n))
        assert node_error(read(path, k)[1], "u", gfu) < 1e-12


def test_a_restarted_run_continues_the_view(tmp_path: Path) -> None:
    path = tmp_path / "restart.h5"
    run(path, disk_mesh(order=2), range(3), order=2)
    with ngser.Checkpoint(path, vtk=True) as ck:
        gfu = ck.load(-1)["u"]  # the stored mesh: the view's cells are the same
        with warnings.catch_warnings():
            warnings.simplefilter("error", ngser.NgserWarning)
            for n in range(3, 6):
                gfu.Set(field(n))
                ck.append({"u": gfu, "n": n}, time=0.5 * n)
    assert steps_of(path) == 6
    assert node_error(read(path, 5)[1], "u", gfu) < 1e-12


def test_vectors_and_complex_fields_are_point_arrays(tmp_path: Path) -> None:
    path = tmp_path / "fields.h5"
    mesh = square_mesh(0.3)
    vec = ngsolve.GridFunction(ngsolve.VectorH1(mesh, order=2))
    vec.Set(CF((x, y * y)))
    cplx = ngsolve.GridFunction(ngsolve.H1(mesh, order=2, complex=True))
    cplx.Set(x + 1j * y)
    with ngser.Checkpoint(path, vtk=True) as ck:
        ck.append({"v": vec, "c": cplx, "meta": {"nested": vec}}, time=1.0)
    grid = read(path, 0)[1]
    names = {grid.GetPointData().GetArrayName(i) for i in range(grid.GetPointData().GetNumberOfArrays())}
    assert names == {"v", "c_real", "c_imag", "meta.nested"}
    points = vtk_to_numpy(grid.GetPoints().GetData())
    v = vtk_to_numpy(grid.GetPointData().GetArray("v"))
    assert v.shape == (len(points), 3)
    assert np.abs(v[:, 0] - points[:, 0]).max() < 1e-12 and np.abs(v[:, 2]).max() == 0
    assert np.abs(vtk_to_numpy(grid.GetPointData().GetArray("c_imag")) - points[:, 1]).max() < 1e-12


def test_steps_the_view_cannot_hold_are_saved_and_left_out_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "mixed.h5"
    mesh, other = square_mesh(0.3), square_mesh(0.2)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=1))
    with ngser.Checkpoint(path, vtk=True) as ck:
        ck.append({"u": gfu}, time=0.0)
        with pytest.warns(ngser.NgserWarning, match="another mesh|mesh differs"):
            ck.append({"u": ngsolve.GridFunction(ngsolve.H1(other, order=1))}, time=1.0)
        with pytest.warns(ngser.NgserWarning, match="no GridFunction"):
            ck.append({"n": 3}, time=2.0)
        with pytest.warns(ngser.NgserWarning, match="point arrays"):
            ck.append({"w": gfu}, time=3.0)
        ck.append({"u": gfu}, time=4.0)
        assert len(ck) == 5
    assert vtk_times(path) == [0.0, 4.0]
    with ngser.Checkpoint(path, mode="r") as ck:
        assert ck.load(1)["u"].space.mesh.ne == other.ne


def test_a_checkpoint_without_a_view_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "late.h5"
    mesh = square_mesh(0.3)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=2))
    with ngser.Checkpoint(path) as ck:
        ck.append({"u": gfu}, time=0.0)
    with h5py.File(path, "r") as f:
        assert "VTKHDF" not in f
    run(path, mesh, range(1, 3), order=2)
    assert vtk_times(path) == [0.5, 1.0]
    with ngser.Checkpoint(path, mode="r") as ck:
        assert ck.times == [0.0, 0.5, 1.0]


def test_a_writer_repairs_a_half_published_view(tmp_path: Path) -> None:
    path = tmp_path / "torn.h5"
    run(path, square_mesh(0.3), range(3), order=1)
    with h5py.File(path, "r+") as f:  # what a writer killed while it listed the steps may leave
        f["VTKHDF/Steps/Values"][:2] = [7.0, 7.0]
        f["VTKHDF/Steps/PointDataOffsets/u"][0] = 0
    with ngser.Checkpoint(path, vtk=True):
        pass
    assert vtk_times(path) == [0.0, 0.5, 1.0]


def test_a_damaged_locator_stops_a_writer_not_a_reader(tmp_path: Path) -> None:
    path = tmp_path / "locator.h5"
    run(path, square_mesh(0.3), range(2), order=1)
    with h5py.File(path, "r+") as f:
        f["ngser/checkpoint/vtk"][0] += 8
    with pytest.raises(ngser.FormatError, match="vtk"):
        ngser.Checkpoint(path, vtk=True)
    with ngser.Checkpoint(path, mode="r") as ck:
        assert [ck.load(i)["n"] for i in range(2)] == [0, 1]


def test_vtk_needs_a_writer() -> None:
    with pytest.raises(ngser.ArgumentError, match="mode"):
        ngser.Checkpoint("nothing.h5", mode="r", vtk=True)


_WRITER = """
    import sys
    import ngsolve
    from netgen.geom2d import unit_square
    import ngser
    path, start, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) or None
    mesh = ngsolve.Mesh(unit_square.GenerateMesh(maxh=0.05))
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=2))
    with ngser.Checkpoint(path, vtk=True, keep=keep) as ck:
        for n in range(start, start + 10_000):
            gfu.Set((n + 1) * ngsolve.x * ngsolve.x + ngsolve.y)  # in the space: exact at the nodes
            ck.append({"u": gfu, "n": n}, time=float(n))
            print(n, flush=True)
"""


@pytest.mark.parametrize("keep", [0, 3], ids=["all steps", "keep=3"])
def test_a_killed_writer_leaves_a_view_vtk_reads(tmp_path: Path, keep: int) -> None:
    """SIGKILL writers at random moments: after each, VTK's reader lists the steps of the last
    commit or of the one before, each with its step's values, and every committed step loads."""
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_WRITER))
    path = tmp_path / "run.h5"
    rng = random.Random(20261204 + keep)
    done = -1
    for _ in range(max(3, int(os.environ.get("NGSER_KILLS", "12")) // 2)):
        child = subprocess.Popen(
            [sys.executable, str(script), str(path), str(done + 1), str(keep)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(rng.uniform(1.0, 3.0))
        child.send_signal(signal.SIGKILL)
        child.communicate()
        if not path.exists():
            continue
        assert verify_checkpoint(str(path)).startswith("OK")
        with ngser.Checkpoint(path, mode="r") as ck:
            committed = ck.times
            done = int(ck.load(-1)["n"]) if len(ck) else done
        listed = vtk_times(path) if steps_of(path) else []
        # The view is the last commit's, or (killed between a commit and its listing) the one before.
        before = [committed[0] - 1, *committed[:-1]] if keep and committed[0] > 0 else committed[:-1]
        # a rolling view is hidden while its shifted rows are rewritten: killed then, it is empty
        assert listed in (committed, before) or (keep and listed == [])
        for k, t in enumerate(listed):
            values = vtk_to_numpy(read(path, k)[1].GetPointData().GetArray("u"))
            points = vtk_to_numpy(read(path, k)[1].GetPoints().GetData())
            assert np.abs(values - ((t + 1) * points[:, 0] ** 2 + points[:, 1])).max() < 1e-9 * (t + 1)
