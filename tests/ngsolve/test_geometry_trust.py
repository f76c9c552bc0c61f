"""Geometries are trusted-only, and OCC geometries carry a BREP form besides NGSolve's archive bytes.

An untrusted load hands nothing of a geometry node to NGSolve (damaged archive bytes crash its
reader): the node loads as a ``MissingGeometry`` with a ``GeometryWarning`` and the meshes load
without it. A trusted load restores the geometry, from the archive bytes or the BREP form in the
order ``ngser/serializers/ngsolve/geometry.py`` gives. "Another NGSolve version" is simulated by
editing the ``version_stored`` of the geometry node (the netgen that wrote the archive), so that
CI needs one NGSolve only; loading a file of 6.2.2608 under 6.2.2501 was checked by hand the same
way (the OCC geometry comes back from its BREP form).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import ngsolve
import pytest
from netgen.csg import unit_cube
from netgen.geom2d import unit_square as spline_square
from netgen.occ import Box, OCCGeometry, Rectangle, X, Y

import ngser
from conftest import FORMATS, RECURVES, disk_mesh, square_mesh
from ngser.backends import get_backend
from ngser.graph import Graph
from ngser.serializers.ngsolve import GeometryWarning
from ngser.serializers.ngsolve.geometry import MissingGeometry

UNTRUSTED = "not loaded because the file is not trusted"


def _counts(mesh: ngsolve.Mesh) -> tuple[int, ...]:
    return (mesh.nv, mesh.ne, mesh.nedge, mesh.nface, len(mesh.ngmesh.Elements1D()), len(mesh.ngmesh.Elements2D()))


def _named_box() -> OCCGeometry:
    box = Box((0, 0, 0), (1, 1, 1))
    box.faces.Min(X).name = "left"
    box.faces.Max(X).maxh = 0.2
    box.faces.Min(Y).col = (0, 1, 0)
    box.mat("steel")
    return OCCGeometry(box)


def _graph(obj: Any) -> Graph:
    return get_backend("msgpack").read_bytes(ngser.dumps(obj, format="msgpack"))


def _edited(obj: Any, **changes: Any) -> bytes:
    """``obj`` saved, the geometry node's state updated with ``changes`` (``None`` drops a key)."""
    graph = _graph(obj)
    for node in graph.nodes:
        if node.name.startswith("netgen.") and node.name.endswith("Geometry"):
            node.state.update(changes)
            for key in [key for key, value in changes.items() if value is None]:
                del node.state[key]
    graph._flat = None
    return get_backend("msgpack").write_bytes(graph)


def _versions(netgen: str) -> bytes:
    """An ngcore version list as archived (``version_stored``): netgen and ngsolve at ``netgen``."""
    out = struct.pack("<q", 2)
    for name in ("netgen", "ngsolve"):
        for text in (name, netgen):
            out += struct.pack("<i", len(text)) + text.encode()
    return out


def _geometry_of(mesh: ngsolve.Mesh) -> Any:
    return mesh.ngmesh.GetGeometry()


# -- untrusted ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("make", [square_mesh, disk_mesh, lambda: ngsolve.Mesh(_named_box().GenerateMesh(maxh=0.5))])
def test_untrusted_load_gives_the_mesh_without_its_geometry(make: Any, fmt: str, tmp_path: Path) -> None:
    mesh = make()
    path = tmp_path / f"mesh.{fmt}"
    ngser.save({"mesh": mesh, "geometry": _geometry_of(mesh)}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = ngser.load(path)
    messages = [str(w.message) for w in caught if issubclass(w.category, GeometryWarning)]
    assert messages and UNTRUSTED in messages[0] and "trusted=True" in messages[0], messages
    assert "netgen.OCCGeometry" in messages[0] and "The rest of the file loads" in messages[0]
    assert _counts(loaded["mesh"]) == _counts(mesh)
    assert type(_geometry_of(loaded["mesh"])).__name__ == "NetgenGeometry"  # netgen's empty default
    missing = loaded["geometry"]
    assert isinstance(missing, MissingGeometry) and not missing and missing.name == "netgen.OCCGeometry"
    assert "not trusted" in missing.reason and missing.written_by.startswith("netgen v")


@pytest.mark.parametrize(
    ("geometry", "name"), [(spline_square, "netgen.SplineGeometry"), (unit_cube, "netgen.CSGeometry")]
)
def test_untrusted_load_of_other_geometries(geometry: Any, name: str) -> None:
    mesh = ngsolve.Mesh(geometry.GenerateMesh(maxh=0.5))
    with pytest.warns(GeometryWarning, match=UNTRUSTED):
        loaded = ngser.loads(ngser.dumps(mesh))
    assert _counts(loaded) == _counts(mesh)
    with pytest.warns(GeometryWarning, match=UNTRUSTED):
        alone = ngser.loads(ngser.dumps(geometry))
    assert isinstance(alone, MissingGeometry) and alone.name == name
    trusted = ngser.loads(ngser.dumps(mesh), trusted=True)
    assert type(_geometry_of(trusted)) is type(geometry) and _counts(trusted) == _counts(mesh)


def test_untrusted_load_hands_nothing_to_ngsolve() -> None:
    """Zeroed archive bytes and a garbage BREP text would crash or fail in NGSolve: not read at all."""
    data = _edited(square_mesh(), data=b"\0" * 64, brep="garbage", version_needed=b"")
    with pytest.warns(GeometryWarning, match=UNTRUSTED):
        loaded = ngser.loads(data)
    assert loaded.ne == square_mesh().ne


def test_the_refusal_of_other_untrusted_nodes_names_the_reason() -> None:
    """A geometry is an optional part; the trusted-only reason is still the serializer's."""
    from ngser.serializers import default_registry

    serializer = default_registry.for_name("netgen.OCCGeometry")
    assert serializer is not None and serializer.trusted_only
    assert serializer.trusted_reason == "its bytes go to NGSolve's archive reader unchecked"


# -- trusted -----------------------------------------------------------------------------------------------------


def test_trusted_load_restores_a_usable_geometry() -> None:
    mesh = square_mesh(0.4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)
        loaded = ngser.loads(ngser.dumps(mesh), trusted=True)
    geo = _geometry_of(loaded)
    assert type(geo) is OCCGeometry and _counts(loaded) == _counts(mesh)
    assert len(geo.GenerateMesh(maxh=0.4).Elements2D()) == len(mesh.ngmesh.Elements2D())
    loaded.ngmesh.Refine()
    assert len(loaded.ngmesh.Elements2D()) == 4 * len(mesh.ngmesh.Elements2D())
    if RECURVES:  # 6.2.2501 cannot curve a rebuilt mesh (see docs/ngsolve.md)
        again = ngser.loads(ngser.dumps(mesh), trusted=True)
        again.Curve(3)
        assert again.GetCurveOrder() == 3


def test_occ_geometries_store_their_brep_form() -> None:
    for node in _graph(_named_box()).nodes:
        if node.name == "netgen.OCCGeometry":
            state = node.state
    assert isinstance(state["brep"], str) and "CASCADE Topology" in state["brep"] and state["dim"] == 3
    assert state["properties"]["solids"] == [[0, {"name": "steel"}]]
    faces = dict((i, props) for i, props in state["properties"]["faces"])
    assert faces[0] == {"name": "left"} and faces[1] == {"maxh": 0.2} and faces[2]["col"] == [0.0, 1.0, 0.0, 1.0]
    face = Rectangle(1, 1).Face()
    (state2d,) = [node.state for node in _graph(OCCGeometry(face, dim=2)).nodes if node.name == "netgen.OCCGeometry"]
    assert state2d["dim"] == 2


def test_the_brep_form_of_a_meshed_geometry_leaves_out_its_triangulation() -> None:
    """Meshing triangulates the shape; the stored BREP text holds the geometry only (6.2.2501's
    WriteBrep cannot leave the triangulation out: a sphere's was 57 KB)."""
    from netgen.occ import Pnt, Sphere

    geometry = OCCGeometry(Sphere(Pnt(0, 0, 0), 1))
    geometry.GenerateMesh(maxh=0.3)
    (state,) = [n.state for n in _graph(geometry).nodes if n.name == "netgen.OCCGeometry"]
    assert "CASCADE Topology" in state["brep"] and len(state["brep"]) < 3000, len(state["brep"])
    assert "\nTriangulations" not in state["brep"] or "\nTriangulations 0" in state["brep"]
    path = Path(tempfile.mkdtemp()) / "sphere.brep"
    path.write_text(state["brep"], encoding="latin-1")
    assert len(OCCGeometry(str(path), dim=3).GenerateMesh(maxh=0.5).Points()) > 20


def test_the_brep_form_stands_in_when_ngsolve_refuses_the_bytes() -> None:
    """Bytes needing a newer netgen: NGSolve refuses them cleanly, the BREP form rebuilds the
    geometry with its names, mesh sizes and dimension, and without a warning."""
    geometry = _named_box()
    original = geometry.GenerateMesh(maxh=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)
        geo = ngser.loads(_edited(geometry, version_needed=_versions("v99.0.0")), trusted=True)
    assert type(geo) is OCCGeometry
    assert [f.name for f in geo.shape.faces][:1] == ["left"] and geo.shape.faces[1].maxh == 0.2
    assert [s.name for s in geo.shape.solids] == ["steel"]
    remeshed = geo.GenerateMesh(maxh=0.5)
    assert remeshed.ne == original.ne and remeshed.GetRegionNames(codim=1) == original.GetRegionNames(codim=1)
    face = Rectangle(2, 1).Face()
    flat = ngser.loads(_edited(OCCGeometry(face, dim=2), version_needed=_versions("v99.0.0")), trusted=True)
    assert flat.GenerateMesh(maxh=0.5).dim == 2


def test_both_forms_failing_gives_a_missing_geometry_with_both_reasons() -> None:
    mesh = square_mesh()
    data = _edited(mesh, version_needed=_versions("v99.0.0"), brep="garbage")
    with pytest.warns(GeometryWarning, match="could not be rebuilt") as record:
        loaded = ngser.loads(data, trusted=True)
    message = str(record[0].message)
    assert "at least v99" in message and "BREP text" in message
    assert type(_geometry_of(loaded)).__name__ == "NetgenGeometry" and _counts(loaded) == _counts(mesh)


def test_a_file_of_an_older_netgen_goes_to_the_archive_first() -> None:
    """An older writer: the archive bytes (which keep what BREP cannot) are read first."""
    data = _edited(square_mesh(), version_stored=_versions("v6.2.0001"), brep="garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)
        loaded = ngser.loads(data, trusted=True)
    assert type(_geometry_of(loaded)) is OCCGeometry


def test_a_file_of_an_older_ngser_without_brep_loads_from_its_bytes() -> None:
    data = _edited(square_mesh(), brep=None, dim=None, properties=None)
    assert type(_geometry_of(ngser.loads(data, trusted=True))) is OCCGeometry


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"brep": 5}, "is a int, not a str"),
        ({"dim": 7}, "no dimension 1, 2 or 3"),
        ({"dim": None}, "no dimension 1, 2 or 3"),
        ({"properties": {"shells": []}}, "keys among"),
    ],
)
def test_a_malformed_brep_form_is_a_state_error(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ngser.StateError, match=match):
        ngser.loads(_edited(square_mesh(), **changes), trusted=True)


def test_bad_subshape_properties_fall_back_to_the_archive() -> None:
    """Properties naming a subshape that is not there fail the BREP form; the archive is next."""
    data = _edited(_named_box(), version_stored=_versions("v99.0.0"), properties={"faces": [[99, {"name": "x"}]]})
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)
        loaded = ngser.loads(data, trusted=True)
    assert type(loaded) is OCCGeometry and loaded.shape.faces[0].name == "left"


def test_brep_files_go_to_a_private_directory_that_is_removed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data = ngser.dumps(_named_box())
    ngser.loads(_edited(_named_box(), version_stored=_versions("v99.0.0")), trusted=True)
    assert ngser.loads(data, trusted=True) is not None
    assert list(tmp_path.iterdir()) == []


#: Loads the file argv[1] trusted in a child: damaged archive bytes crash NGSolve's reader.
TRUSTED_CHILD = """
import sys, warnings, ngser
warnings.simplefilter("error")
loaded = ngser.load(sys.argv[1], trusted=True)
geo = loaded["mesh"].ngmesh.GetGeometry()
print(type(geo).__name__, loaded["mesh"].ne, [f.name for f in geo.shape.faces][:1], geo.GenerateMesh(maxh=0.5).ne)
"""


def test_a_file_of_another_netgen_with_damaged_bytes_loads_from_brep(tmp_path: Path) -> None:
    """A file whose geometry was written by another (here: a newer) netgen: the BREP form goes
    first, so the archive bytes, zeroed here (NGSolve's reader segfaults on them), are never read."""
    geometry = _named_box()
    mesh = ngsolve.Mesh(geometry.GenerateMesh(maxh=0.5))
    path = tmp_path / "other-version.msgpack"
    graph = _graph({"mesh": mesh})
    for node in graph.nodes:
        if node.name == "netgen.OCCGeometry":
            node.state["data"] = b"\0" * len(node.state["data"])
            node.state["version_stored"] = _versions("v99.0.0")
    graph._flat = None
    get_backend("msgpack").write_path(graph, path)
    out = subprocess.run([sys.executable, "-c", TRUSTED_CHILD, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.returncode, out.stderr[-1000:])
    assert out.stdout.split()[:2] == ["OCCGeometry", str(mesh.ne)], out.stdout
    assert "['left']" in out.stdout and out.stdout.split()[-1] == str(geometry.GenerateMesh(maxh=0.5).ne)


def test_the_warning_points_at_the_line_that_loaded_the_file() -> None:
    data = ngser.dumps(square_mesh(0.5))
    with pytest.warns(GeometryWarning) as caught:
        ngser.loads(data)
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]
