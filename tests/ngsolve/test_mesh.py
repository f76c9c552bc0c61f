"""Meshes come back with the same points, elements, names, curvature and identifications."""

from __future__ import annotations

import netgen.meshing as nm
import ngsolve
import numpy as np
import pytest

import ngser
from conftest import (
    FORMATS,
    curved_order,
    disk_mesh,
    integrals,
    periodic_mesh,
    square_mesh,
)
from ngser.serializers.ngsolve import GeometryWarning
from ngser.serializers.ngsolve._compat import identifications


def _element_tables(ngmesh: nm.Mesh) -> list[np.ndarray]:
    tables = [ngmesh.Elements1D().NumPy()[["nodes", "index"]]]
    for d, elements in ((2, ngmesh.Elements2D), (3, ngmesh.Elements3D)):
        if ngmesh.dim >= d:
            table = elements().NumPy()  # netgen 6.2.2501 has no "type" field, but "np" (the node count)
            tables.append(table[[f for f in ("nodes", "index", "type", "np") if f in table.dtype.names]])
    return tables


def _names(ngmesh: nm.Mesh, codim: int) -> list[str]:
    # netgen's SetCD2Name/SetCD3Name store an empty name as "default" (a documented limit); an
    # unnamed boundary is "default" in NGSolve, and ngser stores it so (netgen 6.2.2501 lists "")
    names = ngmesh.GetRegionNames(codim=codim)
    return [n or "default" for n in names] if codim >= 1 else names


def test_mesh_roundtrip_keeps_everything(any_mesh, roundtrip):
    mesh = any_mesh
    loaded = roundtrip(mesh)
    assert isinstance(loaded, ngsolve.Mesh)
    a, b = mesh.ngmesh, loaded.ngmesh
    np.testing.assert_array_equal(np.array(a.Coordinates()), np.array(b.Coordinates()))
    for ta, tb in zip(_element_tables(a), _element_tables(b)):
        np.testing.assert_array_equal(ta, tb)
    for codim in range(mesh.dim + 1):
        assert _names(a, codim) == _names(b, codim)
    assert curved_order(loaded) == mesh.GetCurveOrder()
    assert a.GetIdentifications() == b.GetIdentifications()
    np.testing.assert_array_equal(identifications(a)[0], identifications(b)[0])
    assert identifications(a)[1] == identifications(b)[1]
    f = ngsolve.x * ngsolve.x + 2 * ngsolve.y + 1
    np.testing.assert_allclose(integrals(f, loaded), integrals(f, mesh), rtol=1e-12, atol=1e-14)


def test_curved_mesh_is_curved_again(roundtrip):
    mesh = disk_mesh(order=3)
    straight = ngsolve.Integrate(1, ngsolve.Mesh(disk_mesh(order=1).ngmesh))
    loaded = roundtrip(mesh)  # from its geometry, or (6.2.2501) from the curvature the file stores
    area = ngsolve.Integrate(1, loaded)
    assert abs(area - np.pi) < 1e-3 < abs(straight - np.pi)
    assert area == pytest.approx(ngsolve.Integrate(1, mesh), abs=1e-13)
    assert ngsolve.Integrate(1, loaded, definedon=loaded.Boundaries("circle")) == pytest.approx(2 * np.pi, abs=1e-3)
    assert curved_order(loaded) == 3


def test_curved_3d_volume_per_material(ball, roundtrip):
    loaded = roundtrip(ball)
    for name, exact in [("ball", 4 / 3 * np.pi * 0.3**3), ("box", 1 - 4 / 3 * np.pi * 0.3**3)]:
        got = ngsolve.Integrate(1, loaded, definedon=loaded.Materials(name))
        assert got == pytest.approx(ngsolve.Integrate(1, ball, definedon=ball.Materials(name)), abs=1e-13)
        assert got == pytest.approx(exact, abs=1e-3)
    assert ngsolve.Integrate(1, loaded, BND := ngsolve.BND) == pytest.approx(ngsolve.Integrate(1, ball, BND))


def test_netgen_mesh_alone_and_shared(square, roundtrip):
    ng_loaded, mesh_loaded = roundtrip([square.ngmesh, square])
    assert isinstance(ng_loaded, nm.Mesh)
    assert mesh_loaded.ngmesh is ng_loaded
    assert ng_loaded.GetRegionNames(codim=1) == square.ngmesh.GetRegionNames(codim=1)


def test_geometry_is_one_shared_node(fmt):
    mesh = square_mesh()
    graph = ngser.encode([mesh, square_mesh(0.4).ngmesh])
    names = [node.name for node in graph.nodes]
    assert names.count("netgen.Mesh") == 2
    # unit_square is one OCC geometry object shared by both meshes
    assert names.count("netgen.OCCGeometry") == 1
    with pytest.warns(GeometryWarning, match="not loaded because the file is not trusted"):
        loaded = ngser.loads(ngser.dumps(mesh, format=fmt))  # untrusted: the geometry's bytes are not read
    assert type(loaded.ngmesh.GetGeometry()).__name__ == "NetgenGeometry" and loaded.ne == mesh.ne
    assert type(ngser.loads(ngser.dumps(mesh), trusted=True).ngmesh.GetGeometry()).__name__ == "OCCGeometry"


def test_periodic_identifications_survive(roundtrip):
    mesh = periodic_mesh()
    loaded = roundtrip(mesh)
    assert loaded.ngmesh.GetIdentifications() == mesh.ngmesh.GetIdentifications()
    assert identifications(loaded.ngmesh)[1] == identifications(mesh.ngmesh)[1] == ["PERIODIC"]
    v, w = ngsolve.Periodic(ngsolve.H1(mesh, order=2)), ngsolve.Periodic(ngsolve.H1(loaded, order=2))
    assert v.ndof == w.ndof


def test_mesh_points_are_a_labelled_array(any_mesh):
    """A mesh's points are stored as one array (not one value per point), labelled ``.../points``.
    How fast large meshes encode is measured in bench/, not asserted here."""
    graph = ngser.encode(any_mesh.ngmesh)
    assert any(a.label and a.label.endswith("/points") for a in graph.arrays)


@pytest.mark.skipif("hdf5" not in FORMATS, reason="the HDF5 backend is not installed")
def test_hdf5_layout_has_readable_mesh_arrays(square, tmp_path):
    import h5py

    path = tmp_path / "mesh.h5"
    ngser.save(square, path, format="hdf5")
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    np.testing.assert_array_equal(found["ngmesh/points"], np.array(square.ngmesh.Coordinates()))
    assert "ngmesh/elements2d_vertices" in found  # the mesh is the root object: its state keys are at the top
    with h5py.File(path, "r") as f:
        assert f.attrs["type"] == "ngsolve.Mesh" and f["ngmesh"].attrs["type"] == "netgen.Mesh"
