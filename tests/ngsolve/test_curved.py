"""Curved meshes come back curved without their geometry: the file stores the curved element map,
and integrals on the loaded mesh match the original's to 1e-10."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import ngsolve
import numpy as np
import pytest
from netgen.meshing import MeshingStep
from netgen.occ import OCCGeometry, Pnt, Sphere
from ngsolve import BND, VOL, x, y, z

import ngser
from conftest import FORMATS, add_array, ball_in_box_mesh, curved_order, disk_mesh
from ngser.backends import get_backend
from ngser.graph import Graph
from ngser.serializers.ngsolve import GeometryWarning


def sphere_surface(order: int = 3) -> ngsolve.Mesh:
    """A curved surface mesh: a 3D mesh of triangles only."""
    ngmesh = OCCGeometry(Sphere(Pnt(0, 0, 0), 1)).GenerateMesh(maxh=0.5, perfstepsend=MeshingStep.MESHSURFACE)
    mesh = ngsolve.Mesh(ngmesh)
    mesh.Curve(order)
    return mesh


CURVED: dict[str, Callable[[], ngsolve.Mesh]] = {
    "disk order 2": lambda: disk_mesh(order=2),
    "disk order 5": lambda: disk_mesh(order=5),
    "ball in box order 2": ball_in_box_mesh,
    "ball in box order 4": lambda: ball_in_box_mesh(order=4),
    "sphere surface order 3": sphere_surface,
}


def _graph(obj: Any) -> Graph:
    return get_backend("msgpack").read_bytes(ngser.dumps(obj, format="msgpack"))


def _without_geometry(graph: Graph) -> Graph:
    """The graph with every mesh's reference to its geometry removed (as a file without one)."""
    for node in graph.nodes:
        if node.name == "netgen.Mesh":
            node.state["geometry"] = None
    graph.nodes[:] = [n for n in graph.nodes if not n.name.endswith("Geometry")]
    graph._flat = None
    return graph


def _load(graph: Graph, fmt: str) -> Any:
    return ngser.loads(get_backend(fmt).write_bytes(graph))


def _integrals(mesh: ngsolve.Mesh) -> list[float]:
    f = x * x * y + y**4 + (z * z * x if mesh.dim == 3 else 0)
    kinds = (VOL, BND) if mesh.ne > 0 else (BND,)
    return [float(ngsolve.Integrate(g, mesh, vb, order=12)) for vb in kinds for g in (1, f)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(CURVED))
def test_curved_mesh_without_geometry_keeps_its_integrals(name: str, fmt: str) -> None:
    mesh = CURVED[name]()
    straight = ngsolve.Mesh(mesh.ngmesh.Copy())  # netgen's Copy drops the curvature
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)  # nothing is lost: no warning
        loaded = _load(_without_geometry(_graph(mesh)), fmt)
    assert type(loaded.ngmesh.GetGeometry()).__name__ == "NetgenGeometry"  # netgen's empty default
    assert curved_order(loaded) == mesh.GetCurveOrder()
    got, expected = _integrals(loaded), _integrals(mesh)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    assert not np.allclose(_integrals(straight), expected, rtol=0, atol=1e-6)  # the test can tell
    # a GridFunction on the loaded mesh integrates as on the original
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=2))
    gfu.Set(x * y + 1, **({} if mesh.ne > 0 else {"definedon": mesh.Boundaries(".*")}))
    vb = VOL if mesh.ne > 0 else BND
    mesh2, gfu2 = _load(_without_geometry(_graph([mesh, gfu])), fmt)
    assert ngsolve.Integrate(gfu2 * gfu2, mesh2, vb) == pytest.approx(ngsolve.Integrate(gfu * gfu, mesh, vb), abs=1e-10)


def test_state_holds_one_row_per_dof_that_is_not_a_vertex() -> None:
    mesh = disk_mesh(order=3)
    graph = _graph(mesh)
    (state,) = [n.state for n in graph.nodes if n.name == "netgen.Mesh"]
    curvature = state["curvature"]
    assert curvature["order"] == 3 and state["curve_order"] == 3
    assert _displacement(graph).shape == (ngsolve.H1(mesh, order=3).ndof - mesh.nv, 2)
    assert curvature["measures"][0] == pytest.approx(ngsolve.Integrate(1, mesh), abs=1e-14)
    straight = ngser.encode(ngsolve.Mesh(disk_mesh(order=1).ngmesh))
    assert all("curvature" not in n.state for n in straight.nodes if n.name == "netgen.Mesh")


def test_a_loaded_curvature_is_saved_again() -> None:
    mesh = ball_in_box_mesh()
    once = _load(_without_geometry(_graph(mesh)), "msgpack")
    assert once.GetCurveOrder() == 1 and once.deformation is not None  # curved by the file
    twice = ngser.loads(ngser.dumps(once))
    np.testing.assert_allclose(_integrals(twice), _integrals(mesh), rtol=0, atol=1e-10)


def _curvature_of(graph: Graph) -> dict[str, Any]:
    (node,) = [n for n in graph.nodes if n.name == "netgen.Mesh"]
    return node.state["curvature"]  # type: ignore[no-any-return]


def _displacement(graph: Graph) -> np.ndarray:
    ref = _curvature_of(graph)["displacement"]
    return next(a for a in graph.arrays if a.id == ref.id).load()


def _set(key: str, value: Any) -> Callable[[Graph], None]:
    return lambda g: _curvature_of(g).__setitem__(key, value)


def _set_array(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Graph], None]:
    return lambda g: _curvature_of(g).__setitem__("displacement", add_array(g, change(_displacement(g))))


def _mesh_state(graph: Graph) -> dict[str, Any]:
    return next(n.state for n in graph.nodes if n.name == "netgen.Mesh")


#: name -> (edit, message of the StateError)
BROKEN: dict[str, tuple[Callable[[Graph], None], str]] = {
    "order 1": (_set("order", 1), "curvature order"),
    "order 10**6": (_set("order", 10**6), "curvature order"),
    "order unlike curve_order": (_set("order", 4), "curve_order is 3"),
    "displacement as text": (_set("displacement", "0.1"), "float array of 2 columns"),
    "displacement of ints": (_set_array(lambda a: a.astype(np.int64)), "float array"),
    "displacement of 3 columns": (_set_array(lambda a: np.zeros((len(a), 3))), "2 columns"),
    "displacement of 1 dimension": (_set_array(lambda a: a.ravel()), "2 columns"),
    "displacement with NaN": (_set_array(lambda a: np.where(a == 0, np.nan, a)), "finite"),
    "measures missing": (_set("measures", None), "measures"),
    "measures of text": (_set("measures", ["1", "2"]), "measures"),
    "measures infinite": (_set("measures", [float("inf"), 1.0]), "measures"),
    "curvature not a dict": (lambda g: _mesh_state(g).__setitem__("curvature", [1, 2]), "curvature"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_curvature_ends_in_a_state_error(case: str) -> None:
    """Each of these fails in ngser's checks, before any value reaches NGSolve."""
    edit, message = BROKEN[case]
    graph = _without_geometry(_graph(disk_mesh(order=3)))
    edit(graph)
    graph._flat = None
    with pytest.raises(ngser.StateError, match=message):
        _load(graph, "msgpack")


@pytest.mark.parametrize(
    "case",
    ["one row too few", "one row too many", "measures of another mesh"],
)
def test_curvature_that_does_not_fit_leaves_the_mesh_straight_with_a_warning(case: str) -> None:
    mesh = disk_mesh(order=3)
    graph = _without_geometry(_graph(mesh))
    change = {
        "one row too few": _set_array(lambda a: a[:-1]),
        "one row too many": _set_array(lambda a: np.vstack([a, a[:1]])),
        "measures of another mesh": _set("measures", [1.0, 2.0]),
    }[case]
    change(graph)
    graph._flat = None
    with pytest.warns(GeometryWarning, match="loaded straight"):
        loaded = _load(graph, "msgpack")
    assert loaded.deformation is None
    straight = ngsolve.Mesh(mesh.ngmesh.Copy())
    assert ngsolve.Integrate(1, loaded) == pytest.approx(ngsolve.Integrate(1, straight), abs=1e-13)
