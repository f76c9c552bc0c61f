"""Meshes and round-trip helpers for the NGSolve serializer tests (small meshes: the suite stays fast)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import netgen.meshing as nm
import ngsolve
import numpy as np
import pytest
from netgen.occ import Box, Circle, Glue, OCCGeometry, Rectangle, Sphere, X, unit_square
from ngsolve.meshes import MakeStructured2DMesh, MakeStructured3DMesh

import ngser
import ngser.shim
from ngser.backends import available
from ngser.serializers.ngsolve._compat import curves_rebuilt_meshes
from ngser.serializers.ngsolve._curvature import CURVATURE_NAME

FORMATS = available()
#: Whether this netgen curves a mesh rebuilt from arrays from its geometry. 6.2.2501 does not (its
#: segments need geometry data ngser does not store): curved meshes come back curved there by the
#: curvature their file stores, as a deformation.
RECURVES = curves_rebuilt_meshes()


_LOAD_EACH = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import ngser
for path in sys.argv[1:]:
    try:
        ngser.load(path)
    except ngser.NgserError as exc:
        print(path, type(exc).__name__, " ".join(str(exc).split()), flush=True)
    else:
        print(path, "LOADED", flush=True)
"""


def add_array(graph: Any, array: np.ndarray) -> Any:
    """A reference to ``array``, added to ``graph``'s arrays under a new id (for editing a state)."""
    from ngser.graph import ArrayNode, Ref

    new_id = max(n.id for n in [*graph.nodes, *graph.arrays]) + 1
    graph.arrays.append(ArrayNode(new_id, np.ascontiguousarray(array), "edited"))
    graph._flat = None
    return Ref(new_id)


def write_edited(obj: Any, edit: Callable[[Any], None], path: Path) -> Path:
    """Save ``obj`` to ``path``, apply ``edit`` to its graph (node table as a list) and write the
    graph again with ngser's own msgpack writer, so that every checksum matches."""
    from ngser.backends import get_backend

    ngser.save(obj, path)
    graph = ngser.read_graph(path)
    graph.nodes  # noqa: B018  # the node table as a list, edited in place
    edit(graph)
    graph._flat = None
    get_backend("msgpack").write_path(graph, path)
    return path


def load_each_in_child(paths: list[Path]) -> dict[str, str]:
    """Load every file untrusted, one after the other, in one child process: path -> ``"LOADED"``
    or ``"<ErrorType> <message>"``. A crash kills only the child; the assertion names how far it got."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_EACH, *map(str, paths)], capture_output=True, text=True, timeout=300, env=env
    )
    verdicts = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert out.returncode == 0, f"the child died after {len(verdicts)} files: {out.stderr[-1500:]}"
    return verdicts


def crafted_verdicts(crafted: dict[str, tuple[Any, Callable[[Any], None], str]], tmp_path: Path) -> dict[str, str]:
    """Save each case's object, apply its edit (:func:`write_edited`), load every file in one child
    process (:func:`load_each_in_child`): case -> ``"LOADED"`` or ``"<ErrorType> <message>"``."""
    paths = {
        case: write_edited(obj, edit, tmp_path / f"case{i}.msgpack")
        for i, (case, (obj, edit, _)) in enumerate(sorted(crafted.items()))
    }
    verdicts = load_each_in_child(list(paths.values()))
    return {case: verdicts.get(str(path), "") for case, path in paths.items()}


def curved_order(mesh: ngsolve.Mesh) -> int:
    """How curved ``mesh`` is: netgen's curve order, or that of the curvature a file gave it."""
    field = mesh.deformation
    if mesh.GetCurveOrder() == 1 and field is not None and field.name == CURVATURE_NAME:
        return int(field.space.globalorder)
    return int(mesh.GetCurveOrder())


def same_topology_when_copied(mesh: ngsolve.Mesh) -> bool:
    """Whether a copy of ``mesh`` numbers its faces as ``mesh`` does. netgen 6.2.2501's boundary-layer
    meshes do not: their topology counts faces the elements do not have (a Copy differs too), so a
    mesh rebuilt from the elements numbers the dofs on faces differently."""
    return ngsolve.Mesh(mesh.ngmesh.Copy()).nface == mesh.nface


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    """Every format whose backend is installed."""
    return request.param


@pytest.fixture(params=[*FORMATS, "shim"])
def roundtrip(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Any], Any]]:
    """Save an object to a real file in each format and load it back, or send it through plain
    ``pickle`` with the shim installed (``ngser.shim.install_ngsolve()``, undone afterwards)."""
    way = request.param
    counter = iter(range(1_000_000))

    def run(obj: Any) -> Any:
        path = tmp_path / f"obj{next(counter)}.{way}"
        ngser.save(obj, path, format=way)
        return ngser.load(path)

    if way != "shim":
        yield run
        return
    classes = ngser.shim.install_ngsolve()

    def through_pickle(obj: Any) -> Any:
        data = pickle.dumps(obj)
        assert b"ngser.shim" in data, "not routed through ngser"
        return pickle.loads(data)

    try:
        yield through_pickle
    finally:
        for cls in classes:
            ngser.shim.uninstall(cls)


def square_mesh(maxh: float = 0.3) -> ngsolve.Mesh:
    return ngsolve.Mesh(unit_square.GenerateMesh(maxh=maxh))


def disk_mesh(order: int = 3) -> ngsolve.Mesh:
    """A curved 2D disk of radius 1 with a named circle boundary."""
    face = Circle((0, 0), 1).Face()
    face.edges.name = "circle"
    face.faces.name = "disk"
    mesh = ngsolve.Mesh(OCCGeometry(face, dim=2).GenerateMesh(maxh=0.5))
    mesh.Curve(order)
    return mesh


def ball_in_box_mesh(order: int = 2) -> ngsolve.Mesh:
    """Two materials (a curved ball inside a box), named faces."""
    box = Box((0, 0, 0), (1, 1, 1))
    box.faces.name = "outer"
    box.faces.Min(X).name = "left"
    ball = Sphere((0.5, 0.5, 0.5), 0.3)
    ball.mat("ball")
    ball.faces.name = "sphere"
    box.mat("box")
    mesh = ngsolve.Mesh(OCCGeometry(Glue([box - ball, ball])).GenerateMesh(maxh=0.35))
    mesh.Curve(order)
    return mesh


def prism_layer_mesh() -> ngsolve.Mesh:
    """Tets and prisms mixed: a boundary layer on one face of a box."""
    box = Box((0, 0, 0), (1, 1, 1))
    box.faces.Min(X).name = "left"
    box.mat("inner")
    layer = nm.BoundaryLayerParameters(boundary="left", thickness=[0.05], new_material="layer")
    return ngsolve.Mesh(OCCGeometry(box).GenerateMesh(maxh=0.5, boundary_layers=[layer]))


def mixed_2d_mesh() -> ngsolve.Mesh:
    """A hand-built netgen mesh without geometry: one quad and two triangles, named regions."""
    ngmesh = nm.Mesh(dim=2)
    ngmesh.AddPoints(np.array([[0, 0], [1, 0], [1, 1], [0, 1], [2, 0], [2, 1]], dtype=float))
    ngmesh.Add(nm.FaceDescriptor(surfnr=1, domin=1, domout=0, bc=1))
    ngmesh.AddElements(2, 1, np.array([[1, 2, 3, 4]], dtype=np.int32), base=1)
    ngmesh.AddElements(2, 1, np.array([[2, 5, 6], [2, 6, 3]], dtype=np.int32), base=1)
    segments = [(1, [[1, 2], [2, 5]]), (2, [[5, 6]]), (3, [[6, 3], [3, 4]]), (4, [[4, 1]])]
    for index, segs in segments:
        ngmesh.AddElements(1, index, np.array(segs, dtype=np.int32), base=1)
    ngmesh.SetMaterial(1, "plate")
    for i, name in enumerate(["bottom", "right", "top", "left"]):
        ngmesh.SetBCName(i, name)
    return ngsolve.Mesh(ngmesh)


def periodic_mesh() -> ngsolve.Mesh:
    """A unit square whose left and right edges are identified periodically."""
    face = Rectangle(1, 1).Face()
    face.edges.Min(X).name = "left"
    face.edges.Max(X).name = "right"
    face.edges.Min(X).Identify(face.edges.Max(X), "periodic", nm.IdentificationType.PERIODIC)
    return ngsolve.Mesh(OCCGeometry(face, dim=2).GenerateMesh(maxh=0.3))


MESHES: dict[str, Callable[[], ngsolve.Mesh]] = {
    "square": square_mesh,
    "disk-curved": disk_mesh,
    "ball-in-box-curved": ball_in_box_mesh,
    "quads": lambda: MakeStructured2DMesh(quads=True, nx=3, ny=3),
    "hexes": lambda: MakeStructured3DMesh(hexes=True, nx=2, ny=2, nz=2),
    "prisms": lambda: MakeStructured3DMesh(hexes=False, prism=True, nx=2, ny=2, nz=2),
    "tets-structured": lambda: MakeStructured3DMesh(hexes=False, nx=2, ny=2, nz=2),
    "tets-and-prisms": prism_layer_mesh,
    "trigs-and-quad": mixed_2d_mesh,
    "periodic": periodic_mesh,
}


@pytest.fixture(scope="session")
def mesh_cache() -> dict[str, ngsolve.Mesh]:
    return {}


@pytest.fixture(params=sorted(MESHES))
def any_mesh(request: pytest.FixtureRequest, mesh_cache: dict[str, ngsolve.Mesh]) -> ngsolve.Mesh:
    """Every kind of mesh the serializers support (built once per session)."""
    name = request.param
    if name not in mesh_cache:
        mesh_cache[name] = MESHES[name]()
    return mesh_cache[name]


@pytest.fixture(scope="session")
def square() -> ngsolve.Mesh:
    return square_mesh()


@pytest.fixture(scope="session")
def ball() -> ngsolve.Mesh:
    return ball_in_box_mesh()


def integrals(cf: Any, mesh: ngsolve.Mesh, order: int = 5, vol: bool = True, bnd: bool = True) -> list[Any]:
    """Integrals of ``cf`` over the volume, each material and each named boundary."""
    values = [ngsolve.Integrate(cf, mesh, order=order)] if vol else []
    for name in sorted(set(mesh.GetMaterials())) if vol else []:
        values.append(ngsolve.Integrate(cf, mesh, definedon=mesh.Materials(name), order=order))
    for name in sorted(set(mesh.GetBoundaries())) if bnd else []:
        values.append(ngsolve.Integrate(cf, mesh, definedon=mesh.Boundaries(name), order=order))
    return values
