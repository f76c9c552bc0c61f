"""What differs between the supported NGSolve versions, and geometries as optional parts of a file.

The cross-version files themselves are in ``tests/fixtures/`` (``ngsolve-<version>.*``, checked
by ``tests/test_fixtures.py``); ``make test`` runs this module under the newest NGSolve and
under the oldest (``make test-ngsolve-oldest``).
"""

from __future__ import annotations

import struct
import warnings
from typing import Any

import netgen.meshing as nm
import ngsolve
import numpy as np
import pytest

import ngser
from conftest import MESHES, RECURVES, disk_mesh, periodic_mesh, square_mesh
from ngser.backends import get_backend
from ngser.graph import ObjectNode
from ngser.serializers.ngsolve import GeometryWarning
from ngser.serializers.ngsolve import _compat as compat
from ngser.serializers.ngsolve.geometry import MissingGeometry, written_by
from ngser.serializers.ngsolve.mesh import dump_netgen_mesh


def _archive_versions(pairs: list[tuple[str, str]]) -> bytes:
    """An ngcore version list as archived: a count, then length-prefixed names and versions."""
    out = struct.pack("<q", len(pairs))
    for name, version in pairs:
        for text in (name, version):
            out += struct.pack("<i", len(text)) + text.encode()
    return out


def _with_geometry_needing(obj: Any, version: str) -> bytes:
    """``obj`` saved, its geometry's bytes marked as needing netgen ``version`` (NGSolve refuses them)
    and the BREP form of an OCC geometry dropped (as in a file of an older ngser): nothing rebuilds it."""
    graph = ngser.encode(obj)
    for i, node in enumerate(graph.nodes):
        if node.name.startswith("netgen.") and node.name.endswith("Geometry"):
            state = {k: v for k, v in node.state.items() if k not in ("brep", "dim", "properties")}
            state["version_needed"] = _archive_versions([("netgen", version)])
            graph.nodes[i] = ObjectNode(node.id, node.name, node.version, state)
    graph._flat = None
    return get_backend("msgpack").write_bytes(graph)


def test_a_geometry_that_cannot_be_rebuilt_is_dropped_with_a_warning():
    mesh = square_mesh(0.4)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=2, dirichlet="left"))
    gfu.Set(ngsolve.x * ngsolve.y)
    data = _with_geometry_needing({"mesh": mesh, "u": gfu}, "v99.0.0")
    with pytest.warns(GeometryWarning, match=r"netgen\.OCCGeometry node could not be rebuilt .*at least v99") as rec:
        loaded = ngser.loads(data, trusted=True)
    assert len(rec) == 1
    assert "written by netgen v" in str(rec[0].message)
    assert not isinstance(loaded["mesh"].ngmesh.GetGeometry(), MissingGeometry)
    assert type(loaded["mesh"].ngmesh.GetGeometry()).__name__ == "NetgenGeometry"  # netgen's empty default
    assert loaded["u"].space.mesh is loaded["mesh"]
    np.testing.assert_array_equal(loaded["u"].vec.FV().NumPy(), gfu.vec.FV().NumPy())
    assert ngsolve.Integrate(loaded["u"], loaded["mesh"]) == pytest.approx(ngsolve.Integrate(gfu, mesh), rel=1e-12)


def test_a_curved_mesh_without_its_geometry_keeps_its_curvature():
    mesh = disk_mesh(order=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = ngser.loads(_with_geometry_needing(mesh, "v99.0.0"), trusted=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, GeometryWarning)]
    assert len(messages) == 1 and "could not be rebuilt" in messages[0], messages
    assert isinstance(loaded.ngmesh.GetGeometry(), type(nm.Mesh(dim=2).GetGeometry()))  # none: netgen's default
    for vb in (ngsolve.VOL, ngsolve.BND):
        for f in (1, ngsolve.x * ngsolve.x * ngsolve.y + ngsolve.y**4):
            expected = ngsolve.Integrate(f, mesh, vb, order=10)
            assert abs(ngsolve.Integrate(f, loaded, vb, order=10) - expected) < 1e-10
    assert (
        abs(ngsolve.Integrate(1, loaded) - np.pi)
        < 1e-3
        < abs(ngsolve.Integrate(1, ngsolve.Mesh(mesh.ngmesh.Copy())) - np.pi)
    )
    # saved again, the loaded mesh (its netgen mesh straight, curved by a deformation) stays curved
    again = ngser.loads(ngser.dumps(loaded))
    assert abs(ngsolve.Integrate(1, again, ngsolve.BND) - ngsolve.Integrate(1, mesh, ngsolve.BND)) < 1e-10


def test_a_curved_mesh_of_a_file_without_curvature_loads_straight_with_a_warning():
    """Files written before the curvature was stored: without the geometry, the mesh is straight."""
    mesh = disk_mesh(order=3)
    straight = ngsolve.Integrate(1, ngsolve.Mesh(mesh.ngmesh.Copy()))
    graph = get_backend("msgpack").read_bytes(_with_geometry_needing(mesh, "v99.0.0"))
    for node in graph.nodes:
        if node.name == "netgen.Mesh":
            del node.state["curvature"]
    graph._flat = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = ngser.loads(get_backend("msgpack").write_bytes(graph), trusted=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, GeometryWarning)]
    assert len(messages) == 2, messages
    assert "curve order 3 was loaded without its netgen.OCCGeometry node" in messages[1]
    assert loaded.GetCurveOrder() == 1 and loaded.deformation is None
    assert ngsolve.Integrate(1, loaded) == pytest.approx(straight, abs=1e-13)


def test_a_geometry_alone_loads_as_a_placeholder():
    with pytest.warns(GeometryWarning):
        loaded = ngser.loads(_with_geometry_needing(square_mesh(0.5).ngmesh.GetGeometry(), "v99.0.0"), trusted=True)
    assert isinstance(loaded, MissingGeometry) and not loaded
    assert loaded.name == "netgen.OCCGeometry" and "v99" in loaded.reason and loaded.written_by.startswith("netgen v")


def test_written_by_reads_the_version_list():
    assert written_by(_archive_versions([("netgen", "v6.2.2501"), ("ngsolve", "v6.2.2501")])) == (
        "netgen v6.2.2501, ngsolve v6.2.2501"
    )
    assert written_by(b"\x05\x00") == written_by(b"\xff" * 40) == written_by(None) == ""


@pytest.mark.parametrize("name", sorted(MESHES))
def test_element_types_from_vertex_counts_match_netgen(name, mesh_cache):
    """Where netgen lists element types, the types ngser derives from vertex counts (for netgen
    versions without the field) are the same."""
    if name not in mesh_cache:
        mesh_cache[name] = MESHES[name]()
    ngmesh = mesh_cache[name].ngmesh
    for d, elements in ((2, ngmesh.Elements2D), (3, ngmesh.Elements3D)):
        if d > ngmesh.dim:
            continue
        table = elements().NumPy()
        counts = (table["nodes"] != 0).sum(axis=1)
        derived = compat.types_from_counts(counts, d)
        assert (derived != 0).all()
        if "type" in table.dtype.names:
            np.testing.assert_array_equal(derived, table["type"])
        stored = compat.element_table(table, d)
        assert stored["vertices"].shape[1] == counts.max()  # padding beyond the widest element dropped


def test_identifications_from_the_vol_text_match_the_api():
    """The fallback for netgen without numbered identifications (6.2.2501) agrees with the API."""
    ngmesh = periodic_mesh().ngmesh
    rows, kinds = compat._identifications_from_vol(ngmesh)
    api_rows, api_kinds = compat.identifications(ngmesh)
    assert sorted(map(tuple, rows)) == sorted(map(tuple, api_rows.tolist()))
    assert kinds == api_kinds == ["PERIODIC"]
    assert len(rows) > 0


def test_unknown_identification_type_is_a_state_error():
    state = dump_netgen_mesh(periodic_mesh().ngmesh)
    state["identification_types"] = ["NO_SUCH_TYPE"]
    with pytest.raises(ngser.StateError, match="identification type 'NO_SUCH_TYPE' does not exist"):
        ngser.serializers.ngsolve.mesh.load_netgen_mesh(state)


def test_segment_edge_numbers_follow_the_netgen_version():
    """Stored where netgen's segments carry them (6.2.2501), and checked like the other arrays."""
    state = dump_netgen_mesh(square_mesh(0.5).ngmesh)
    assert ("elements1d_edgenr" in state) == compat.segments_carry_edgenr()
    state["elements1d_edgenr"] = np.full(len(state["elements1d_index"]), 10**6, dtype=np.int32)
    with pytest.raises(ngser.StateError, match="edge numbers"):
        ngser.serializers.ngsolve.mesh.load_netgen_mesh(state)


def test_curving_rebuilt_meshes_is_a_feature_test():
    assert compat.curves_rebuilt_meshes() == RECURVES == (not compat.segments_carry_edgenr())
    assert compat.curves_rebuilt_meshes() == ("edgenr" not in nm.Mesh(dim=2).Elements1D().NumPy().dtype.names)
