"""Mesh details come back unchanged: the mesh's own ``.vol`` text after a round trip is the
original's (apart from what netgen's Python API can neither read nor set, listed in
``_comparable``), face descriptors keep ``tlosurf`` and colours, edges and points keep their
hp-refinement marks."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netgen.meshing as nm
import ngsolve
import numpy as np
import pytest
from netgen.csg import CSGeometry, OrthoBrick, Pnt
from netgen.csg import Sphere as CSGSphere
from netgen.geom2d import SplineGeometry
from netgen.occ import Box, OCCGeometry, Rectangle, X, Y

import ngser
from conftest import MESHES, RECURVES, write_edited
from ngser.serializers.ngsolve._compat import HAS_EDGE_DESCRIPTORS


def csg_mesh() -> ngsolve.Mesh:
    """A CSG cube minus a ball: face descriptors with top-level surfaces (``tlosurf``)."""
    geo = CSGeometry()
    geo.Add(OrthoBrick(Pnt(0, 0, 0), Pnt(1, 1, 1)).bc("cube") - CSGSphere(Pnt(0.5, 0.5, 0.5), 0.3).bc("ball"))
    return ngsolve.Mesh(geo.GenerateMesh(maxh=0.4))


def hp_edges_mesh() -> ngsolve.Mesh:
    """A geom2d square whose bottom edge has hpref=2 and left edge hpref=1."""
    geo = SplineGeometry()
    p1, p2, p3, p4 = (geo.AppendPoint(*p) for p in [(0, 0), (1, 0), (1, 1), (0, 1)])
    geo.Append(["line", p1, p2], bc="bottom", hpref=2)
    geo.Append(["line", p2, p3], bc="right")
    geo.Append(["line", p3, p4], bc="top")
    geo.Append(["line", p4, p1], bc="left", hpref=1)
    return ngsolve.Mesh(geo.GenerateMesh(maxh=0.4))


def hp_point_mesh() -> ngsolve.Mesh:
    """A geom2d square with a singular corner (hpref=1 at the origin)."""
    geo = SplineGeometry()
    pts = [geo.AppendPoint(*p, hpref=h) for p, h in [((0, 0), 1), ((1, 0), 0), ((1, 1), 0), ((0, 1), 0)]]
    for a, b in zip(pts, pts[1:] + pts[:1]):
        geo.Append(["line", a, b], bc="side")
    return ngsolve.Mesh(geo.GenerateMesh(maxh=0.4))


def occ_colours_3d() -> ngsolve.Mesh:
    box = Box((0, 0, 0), (1, 1, 1))
    box.faces.Min(X).col = (1, 0, 0)
    box.faces.Max(Y).col = (0.25, 0.5, 0.75)
    box.faces.Min(X).name = "left"
    return ngsolve.Mesh(OCCGeometry(box).GenerateMesh(maxh=0.5))


def occ_colours_2d() -> ngsolve.Mesh:
    face = Rectangle(1, 1).Face()
    face.col = (0.2, 0.4, 0.6)
    face.edges.Min(X).name = "left"
    return ngsolve.Mesh(OCCGeometry(face, dim=2).GenerateMesh(maxh=0.4))


DETAILED: dict[str, Callable[[], ngsolve.Mesh]] = {
    "csg": csg_mesh,
    "hp-edges": hp_edges_mesh,
    "hp-point": hp_point_mesh,
    "occ-colours-3d": occ_colours_3d,
    "occ-colours-2d": occ_colours_2d,
}
ALL = {**MESHES, **DETAILED}


@pytest.fixture(scope="module")
def built() -> dict[str, ngsolve.Mesh]:
    return {}


def _mesh(name: str, built: dict[str, ngsolve.Mesh]) -> ngsolve.Mesh:
    if name not in built:
        built[name] = ALL[name]()
    return built[name]


def vol_text(ngmesh: nm.Mesh, tmp_path: Path) -> list[str]:
    path = tmp_path / "mesh.vol"
    ngmesh.Save(str(path))
    return path.read_text().splitlines()


def _comparable(lines: list[str], curved_elements: bool = False) -> list[str]:
    """The ``.vol`` text without what netgen's Python API can neither read nor set (native pickle
    loses it too): the ``geomtype`` number and, following from it, the surface elements' uv
    parameters (``surfaceelementsuv``); the segments' geometry data (STL triangles, curve
    parameters ``dist``; under 6.2.2501 also their sides' domains or surfaces and edge numbers,
    which its ``Element1D`` sets from the region index); the
    identification names; and the geometry's own archive text after ``endmesh``. netgen's own
    curved elements (``curvedelements``) only with ``curved_elements``: a mesh loaded without its
    geometry, or by a netgen that cannot curve rebuilt meshes, is curved by a deformation."""
    out: list[str] = []
    section, np_col, names_left = "", 4, 0
    for line in lines:
        token = line.strip()
        if token == "endmesh" or (token == "curvedelements" and not curved_elements):
            out.append("endmesh")
            break
        if not token or token.startswith("#"):
            continue
        if section == "identificationnames":
            if not names_left:  # the count line
                names_left = int(token)
                out.append(token)
                continue
            names_left -= 1
            out.append("*")
            if not names_left:
                section = "identificationnames done"
            continue
        if re.fullmatch(r"[a-z_][a-z_0-9]*", token):
            section = "surfaceelements" if token == "surfaceelementsuv" else token
            out.append(section)
            continue
        parts = token.split()
        if section == "geomtype" and parts:
            parts = ["*"]
        elif section == "surfaceelements" and len(parts) > np_col:
            parts = parts[: np_col + 1 + int(parts[np_col])]
        elif section == "edgesegmentsgi3" and len(parts) == 7:
            parts = [parts[0], parts[1], parts[6]]  # p1 p2 edge descriptor
        elif section == "edgesegmentsgi2" and len(parts) == 12:
            parts = [parts[i] for i in (0, 2, 3)]  # si p1 p2
        out.append(" ".join(parts))
    return out


@pytest.mark.parametrize("name", sorted(ALL))
def test_vol_text_is_the_originals(name: str, built: dict[str, ngsolve.Mesh], roundtrip: Any, tmp_path: Path) -> None:
    mesh = _mesh(name, built)
    original = vol_text(mesh.ngmesh, tmp_path)
    loaded = roundtrip(mesh)
    assert _comparable(vol_text(loaded.ngmesh, tmp_path)) == _comparable(original)


@pytest.mark.skipif(not RECURVES, reason="this netgen cannot curve a rebuilt mesh from its geometry")
@pytest.mark.parametrize("name", ["disk-curved", "ball-in-box-curved"])
def test_trusted_curved_meshes_have_the_same_curved_elements(
    name: str, built: dict[str, ngsolve.Mesh], tmp_path: Path
) -> None:
    mesh = _mesh(name, built)
    loaded = ngser.loads(ngser.dumps(mesh), trusted=True)
    assert "curvedelements" in _comparable(vol_text(mesh.ngmesh, tmp_path), curved_elements=True)
    assert _comparable(vol_text(loaded.ngmesh, tmp_path), True) == _comparable(vol_text(mesh.ngmesh, tmp_path), True)


@pytest.mark.parametrize("name", sorted(ALL))
def test_native_pickle_agrees_on_what_is_compared(name: str, built: dict[str, ngsolve.Mesh], tmp_path: Path) -> None:
    """The parts :func:`_comparable` leaves out are the ones native pickle loses too."""
    mesh = _mesh(name, built)
    native = pickle.loads(pickle.dumps(mesh))
    assert _comparable(vol_text(native.ngmesh, tmp_path)) == _comparable(vol_text(mesh.ngmesh, tmp_path))


def _tlosurf(fd: Any) -> int:
    return int(re.search(r"tlosurf = (-?\d+)", str(fd)).group(1))  # type: ignore[union-attr]


def test_csg_face_descriptors_keep_tlosurf(roundtrip: Any) -> None:
    mesh = csg_mesh()
    before = [_tlosurf(fd) for fd in mesh.ngmesh.FaceDescriptors()]
    assert any(t != -1 for t in before)  # -1 is what a descriptor made in Python has
    loaded = roundtrip(mesh)
    assert [_tlosurf(fd) for fd in loaded.ngmesh.FaceDescriptors()] == before
    assert [str(fd) for fd in loaded.ngmesh.FaceDescriptors()] == [str(fd) for fd in mesh.ngmesh.FaceDescriptors()]


def _edge_marks(ngmesh: nm.Mesh) -> list[tuple[float, float]]:
    """The hp marks of every segment: (left, right) from its edge descriptor, or the segment's own."""
    if HAS_EDGE_DESCRIPTORS:
        eds = list(ngmesh.EdgeDescriptors())
        index = ngmesh.Elements1D().NumPy()["index"].tolist()
        return [(eds[i - 1].singedge_left, eds[i - 1].singedge_right) for i in index]
    return [(s.singular, s.singular) for s in ngmesh.Elements1D()]


def test_hp_marks_of_edges_survive(roundtrip: Any) -> None:
    mesh = hp_edges_mesh()
    marks = _edge_marks(mesh.ngmesh)
    assert {2.0, 1.0} <= {m for pair in marks for m in pair}
    native, loaded = pickle.loads(pickle.dumps(mesh)).ngmesh, roundtrip(mesh).ngmesh
    assert _edge_marks(native) == marks
    assert _edge_marks(loaded) == marks


def test_hp_marks_of_points_survive(roundtrip: Any) -> None:
    mesh = hp_point_mesh()
    marks = [p.singular for p in mesh.ngmesh.Points()]
    assert marks.count(1.0) == 1
    # keep the loaded meshes alive: Points() is a view into the mesh
    loaded, native = roundtrip(mesh).ngmesh, pickle.loads(pickle.dumps(mesh)).ngmesh
    assert [p.singular for p in loaded.Points()] == marks
    assert [p.singular for p in native.Points()] == marks


@pytest.mark.skipif(
    not HAS_EDGE_DESCRIPTORS,
    reason="6.2.2501: the marks apply to a segment's domin/domout sides, which its Python API cannot set",
)
def test_hp_refinement_of_the_loaded_mesh_is_the_originals(roundtrip: Any) -> None:
    """What the marks are for: ``RefineHP`` refines towards them, the same way after loading."""
    mesh, loaded = hp_edges_mesh(), roundtrip(hp_edges_mesh())
    for m in (mesh, loaded):
        m.RefineHP(2)
    assert loaded.ne == mesh.ne > hp_edges_mesh().ne
    np.testing.assert_array_equal(np.array(loaded.ngmesh.Coordinates()), np.array(mesh.ngmesh.Coordinates()))


@pytest.mark.parametrize("make", [occ_colours_3d, occ_colours_2d])
def test_occ_face_colours_survive(make: Callable[[], ngsolve.Mesh], roundtrip: Any) -> None:
    mesh = make()
    colours = [tuple(fd.color)[:3] for fd in mesh.ngmesh.FaceDescriptors()]
    assert any(c != (0.0, 1.0, 0.0) for c in colours)  # (0, 1, 0) is netgen's default
    loaded = roundtrip(mesh)
    assert [tuple(fd.color)[:3] for fd in loaded.ngmesh.FaceDescriptors()] == colours
    assert [fd.transparency for fd in loaded.ngmesh.FaceDescriptors()] == [
        fd.transparency for fd in mesh.ngmesh.FaceDescriptors()
    ]


def test_old_states_without_the_new_fields_load() -> None:
    """Files of older ngser have no tlosurf, colours or marks: the mesh loads with netgen's defaults."""
    mesh = csg_mesh()
    state = ngser.serializers.ngsolve.mesh.dump_netgen_mesh(mesh.ngmesh)
    for fd in state["face_descriptors"]:
        for key in ("tlosurf", "color", "domin_singular", "domout_singular"):
            del fd[key]
    for ed in state["edge_descriptors"]:
        ed.pop("singedge_left"), ed.pop("singedge_right")
    loaded = ngser.serializers.ngsolve.mesh.load_netgen_mesh(state)
    assert [_tlosurf(fd) for fd in loaded.FaceDescriptors()] == [-1] * len(state["face_descriptors"])
    assert loaded.ne == mesh.ne


def _edit(key: str, value: Any) -> Callable[[Any], None]:
    def edit(graph: Any) -> None:
        from conftest import add_array

        node = next(n for n in graph.nodes if n.name == "netgen.Mesh")
        if key.startswith("fd."):
            node.state["face_descriptors"][0][key[3:]] = value
        else:
            node.state[key] = add_array(graph, value) if isinstance(value, np.ndarray) else value

    return edit


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("fd.color", [2.0, 0.0, 0.0, 1.0], "four numbers from 0 to 1"),
        ("fd.color", [0.0, 0.0, 1.0], "four numbers from 0 to 1"),
        ("fd.tlosurf", 2**40, "tlosurf must be an integer"),
        ("fd.domin_singular", float("nan"), "domin_singular must be a number"),
        ("singular_points", np.array([0], np.int32), "outside"),
        ("singular_points", np.array([1, 1], np.int32), "twice|marks"),
        ("singular_points_values", np.array([1.0, 2.0]), "hp-refinement marks"),
        ("elements1d_singular", np.array([1.0]), "hp-refinement marks"),
    ],
)
def test_damaged_details_end_in_state_errors(key: str, value: Any, match: str, tmp_path: Path) -> None:
    mesh = hp_point_mesh()
    path = write_edited(mesh.ngmesh, _edit(key, value), tmp_path / "edited.msgpack")
    with pytest.raises(ngser.StateError, match=match):
        ngser.load(path)
