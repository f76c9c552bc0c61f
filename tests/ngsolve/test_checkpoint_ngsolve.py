"""Checkpoints of NGSolve objects: the mesh and the spaces stored once, every step's GridFunction
back with its values, steps of one open checkpoint sharing their mesh, and a restarted run
appending to the same file without storing the mesh again."""

from __future__ import annotations

import os
from pathlib import Path

import ngsolve
import numpy as np
import pytest
from ngsolve import sin, x, y

import ngser
from conftest import disk_mesh, square_mesh


def disk_size(path: Path) -> int:
    """Bytes of disk the file uses: a checkpoint reserves room in doubling steps, as a hole."""
    return os.stat(path).st_blocks * 512


def _run(path: Path, mesh: ngsolve.Mesh, steps: range, **options: object) -> ngsolve.GridFunction:
    fes = ngsolve.H1(mesh, order=3, dirichlet=".*")
    gfu = ngsolve.GridFunction(fes, name="u")
    with ngser.Checkpoint(path, **options) as ck:  # type: ignore[arg-type]
        for n in steps:
            gfu.Set(sin(n * x) * y)
            ck.append({"u": gfu, "n": n}, time=0.25 * n)
    return gfu


def test_fifty_steps_cost_the_mesh_once_plus_the_vectors(tmp_path: Path) -> None:
    mesh = square_mesh(0.05)
    path = tmp_path / "series.h5"
    gfu = _run(path, mesh, range(50))
    single = tmp_path / "single.h5"
    ngser.save({"u": gfu, "n": 0}, single)
    vector = gfu.vec.FV().NumPy().nbytes
    assert disk_size(path) <= 1.05 * (disk_size(single) + 49 * vector)


@pytest.mark.parametrize("make", [lambda: square_mesh(0.1), lambda: disk_mesh(order=3)], ids=["square", "curved"])
def test_every_step_comes_back_and_shares_the_mesh(tmp_path: Path, make: object) -> None:
    mesh = make()  # type: ignore[operator]
    path = tmp_path / "series.h5"
    gfu = _run(path, mesh, range(6))
    with ngser.Checkpoint(path, mode="r") as ck:
        assert np.array_equal(ck.load(-1)["u"].vec.FV().NumPy(), gfu.vec.FV().NumPy())
        assert len(ck) == 6 and ck.times == [0.25 * n for n in range(6)]
        first, last = ck.load(1), ck.load(-1)
        assert first["u"].space.mesh is last["u"].space.mesh and first["u"].space is last["u"].space
        for step in (first, last):
            mesh2 = step["u"].space.mesh
            expected = sin(step["n"] * x) * y
            error = ngsolve.Integrate((step["u"] - expected) ** 2, mesh2) ** 0.5
            original = ngsolve.GridFunction(gfu.space)
            original.Set(expected)  # what was appended at that step
            assert error == pytest.approx(ngsolve.Integrate((original - expected) ** 2, mesh) ** 0.5, rel=1e-6)
            assert step["u"].name == "u"
            assert ngsolve.Integrate(1, mesh2) == pytest.approx(ngsolve.Integrate(1, mesh), rel=1e-12)


def test_a_mesh_saved_beside_its_gridfunction_is_stored_once_and_shared(tmp_path: Path) -> None:
    """Regression: the mesh's fingerprint held the id of ``mesh.ngmesh``, a wrapper NGSolve makes
    anew once the last one died, so the mesh passed beside the GridFunction was stored again as
    the space's mesh and the steps' meshes were different objects."""
    mesh = square_mesh(0.2)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=2))
    path = tmp_path / "series.h5"
    with ngser.Checkpoint(path, mode="w") as ck:
        for n in range(3):
            ck.append({"mesh": mesh, "u": gfu}, time=n)
    with ngser.Checkpoint(path, mode="r") as ck:
        first, last = ck.load(0), ck.load(-1)
        assert first["mesh"] is last["mesh"] is first["u"].space.mesh is last["u"].space.mesh
        meshes = [obj for obj in ck._objects.values() if isinstance(obj, ngsolve.Mesh)]
        assert len(meshes) == 1


def test_a_restarted_run_appends_without_storing_the_mesh_again(tmp_path: Path) -> None:
    mesh = square_mesh(0.05)
    path = tmp_path / "series.h5"
    _run(path, mesh, range(3))
    size = disk_size(path)
    with ngser.Checkpoint(path) as ck:  # the restarted run: continue from the last step
        state = ck.load(-1)
        gfu = state["u"]
        for n in range(3, 6):
            gfu.Set(sin(n * x) * y)
            ck.append({"u": gfu, "n": n}, time=0.25 * n)
    vector = gfu.vec.FV().NumPy().nbytes
    assert disk_size(path) <= size + 3 * vector + 100_000  # no second mesh
    with ngser.Checkpoint(path, mode="r") as ck:
        assert [ck.load(i)["n"] for i in range(len(ck))] == list(range(6))
        assert ck.load(0)["u"].space is ck.load(5)["u"].space


def test_a_refined_mesh_is_stored_again(tmp_path: Path) -> None:
    """The fingerprint follows netgen's modification stamp: a mesh refined between steps is new."""
    mesh = square_mesh(0.3)
    fes = ngsolve.H1(mesh, order=2)
    gfu = ngsolve.GridFunction(fes)
    path = tmp_path / "adaptive.h5"
    with ngser.Checkpoint(path) as ck:
        gfu.Set(x * y)
        ck.append(gfu)
        mesh.Refine()
        fes.Update()
        gfu.Update()
        gfu.Set(x * y)
        ck.append(gfu)
        before, after = ck.load(0), ck.load(1)
        assert before.space.mesh.ne < after.space.mesh.ne == mesh.ne
        assert np.isclose(ngsolve.Integrate(after, after.space.mesh), 0.25)
