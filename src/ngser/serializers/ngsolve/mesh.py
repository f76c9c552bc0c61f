"""Meshes as arrays: netgen's ``Mesh`` and NGSolve's ``Mesh`` wrapping it.

The netgen mesh is stored as its points, its elements per dimension (vertex numbers, element
type and region index, in the original element order so that dof numberings come back
identical), its region names for every codimension, face and edge descriptors, periodic
identifications, curve order and a reference to its geometry. Rebuilding uses netgen's bulk
``AddPoints`` / ``AddElements`` (one call per run of elements with equal index and node
count), so large meshes cost no Python loop per element.
"""

from __future__ import annotations

from typing import Any

import netgen.meshing as nm
import ngsolve
import numpy as np

from ...errors import StateError
from ..base import Serializer
from ._checks import MAX_CURVE_ORDER, checked_mesh_state, int_in

__all__ = ["NetgenMeshSerializer", "MeshSerializer", "dump_netgen_mesh", "load_netgen_mesh"]

#: Element type codes of netgen (``Elements*D().NumPy()["type"]``) rebuilt from a vertex count.
_EXPECTED_TYPES = {
    2: {3: 10, 4: 11, 6: 12, 8: 13},  # TRIG, QUAD, TRIG6, QUAD8
    3: {4: 20, 10: 21, 5: 22, 6: 23, 15: 24, 8: 25, 20: 26, 13: 27},  # TET .. HEX20, PYRAMID13
}

_FD_FIELDS = ("surfnr", "domin", "domout", "bc", "bcname")
_ED_FIELDS = ("index", "edgenr", "surfnr", "domin", "domout", "fdindex", "tlosurf", "name")


def _elements(ngmesh: Any, dim: int) -> dict[str, np.ndarray]:
    """Vertex numbers (1-based, 0-padded), region index and (for 2D/3D) type of all elements of ``dim``."""
    if dim == 0:
        els = list(ngmesh.Elements0D())
        verts = np.array([[int(el.vertices[0].nr)] for el in els], dtype=np.int32).reshape(len(els), 1)
        # Element0D exposes no index attribute; its text form is "<vertex>, index = <n>".
        index = np.array([int(str(el).rsplit("=", 1)[1]) for el in els], dtype=np.int32)
        return {"vertices": verts, "index": index}
    table = {1: ngmesh.Elements1D, 2: ngmesh.Elements2D, 3: ngmesh.Elements3D}[dim]().NumPy()
    out = {
        "vertices": np.ascontiguousarray(table["nodes"], dtype=np.int32),
        "index": np.ascontiguousarray(table["index"], dtype=np.int32),
    }
    if dim >= 2:
        out["type"] = np.ascontiguousarray(table["type"], dtype=np.uint8)
    return out


def dump_netgen_mesh(ngmesh: Any) -> dict[str, Any]:
    """The graph state of a ``netgen.meshing.Mesh`` (see ``docs/ngsolve.md``)."""
    dim = int(ngmesh.dim)
    state: dict[str, Any] = {"dim": dim, "points": np.array(ngmesh.Coordinates(), dtype=np.float64, order="C")}
    for d in (3, 2, 1, 0):
        if d > dim:
            continue
        for key, arr in _elements(ngmesh, d).items():
            state[f"elements{d}d_{key}"] = arr
    state["region_names"] = [list(ngmesh.GetRegionNames(codim=c)) for c in range(dim + 1)]
    state["face_descriptors"] = [
        {"surfnr": fd.surfnr, "domin": fd.domin, "domout": fd.domout, "bc": fd.bc, "bcname": fd.bcname}
        for fd in ngmesh.FaceDescriptors()
    ]
    state["edge_descriptors"] = [
        {key: (list(getattr(ed, key)) if key == "surfnr" else getattr(ed, key)) for key in _ED_FIELDS}
        for ed in ngmesh.EdgeDescriptors()
    ]
    idents = [[_nr(p1), _nr(p2), int(nr)] for p1, p2, nr in ngmesh.GetIdentifications()]
    state["identifications"] = np.array(idents, dtype=np.int32).reshape(len(idents), 3)
    state["identification_types"] = [
        ngmesh.GetIdentificationType(nr).name for nr in range(1, ngmesh.GetNrIdentifications() + 1)
    ]
    state["curve_order"] = int(ngmesh.GetCurveOrder())
    state["geometry"] = _geometry_of(ngmesh)
    return state


def _nr(point: Any) -> int:
    """A 1-based point number from a ``PointId`` or an int."""
    return int(getattr(point, "nr", point))


def _geometry_of(ngmesh: Any) -> Any:
    """The mesh's geometry when it is a real one (not netgen's empty default)."""
    from .geometry import is_real_geometry

    geo = ngmesh.GetGeometry()
    return geo if geo is not None and is_real_geometry(geo) else None


def _runs(index: np.ndarray, counts: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of maximal runs of equal ``(index, count)``."""
    n = len(index)
    if n == 0:
        return []
    change = np.flatnonzero((index[1:] != index[:-1]) | (counts[1:] != counts[:-1])) + 1
    bounds = np.concatenate(([0], change, [n]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def _add_elements(ngmesh: Any, dim: int, verts: np.ndarray, index: np.ndarray) -> None:
    verts = np.ascontiguousarray(verts, dtype=np.int32)
    index = np.asarray(index)
    counts = (verts != 0).sum(axis=1) if verts.size else np.zeros(len(index), dtype=np.int64)
    for start, stop in _runs(index, counts):
        width = int(counts[start])
        block = np.ascontiguousarray(verts[start:stop, :width])
        # No project_geometry: it moves points; curving from the geometry works without it.
        ngmesh.AddElements(dim, int(index[start]), block, base=1)


def load_netgen_mesh(state: dict[str, Any]) -> Any:
    """Rebuild a ``netgen.meshing.Mesh`` from :func:`dump_netgen_mesh`'s state, checked first
    (:func:`~._checks.checked_mesh_state`): nothing unchecked reaches netgen."""
    state = checked_mesh_state(state)
    dim = state["dim"]
    points = np.ascontiguousarray(state["points"], dtype=np.float64)
    ngmesh = nm.Mesh(dim=dim)
    geometry = state.get("geometry")
    if geometry is not None:
        ngmesh.SetGeometry(geometry)
    ngmesh.AddPoints(points)
    for fd in state.get("face_descriptors", []):
        desc = nm.FaceDescriptor(
            surfnr=int(fd["surfnr"]), domin=int(fd["domin"]), domout=int(fd["domout"]), bc=int(fd["bc"])
        )
        desc.bcname = str(fd["bcname"])
        ngmesh.Add(desc)
    for ed in state.get("edge_descriptors", []):
        desc = nm.EdgeDescriptor()
        for key in _ED_FIELDS:
            if key in ed:
                setattr(desc, key, tuple(ed[key]) if key == "surfnr" else ed[key])
        ngmesh.Add(desc)
    for d in (3, 2, 1):
        if d > dim or f"elements{d}d_vertices" not in state:
            continue
        _add_elements(ngmesh, d, state[f"elements{d}d_vertices"], state[f"elements{d}d_index"])
    if "elements0d_vertices" in state:
        verts, index = np.asarray(state["elements0d_vertices"]), np.asarray(state["elements0d_index"])
        for v, i in zip(verts[:, 0].tolist() if verts.size else [], index.tolist()):
            ngmesh.Add(nm.Element0D(nm.PointId(v), index=i))
    _set_names(ngmesh, state.get("region_names", []))
    idents = np.asarray(state.get("identifications", np.zeros((0, 3), np.int32)))
    types = state.get("identification_types", [])
    for p1, p2, nr in idents.tolist():
        kind = getattr(nm.IdentificationType, types[nr - 1]) if nr - 1 < len(types) else nm.IdentificationType.PERIODIC
        ngmesh.AddPointIdentification(nm.PointId(p1), nm.PointId(p2), identnr=nr, type=kind)
    _check_types(ngmesh, state, dim)
    return ngmesh


def _set_names(ngmesh: Any, names: list[list[str]]) -> None:
    # Setters differ in index base: SetMaterial 1-based, SetBCName 0-based, SetCD2Name/SetCD3Name 1-based.
    setters = [
        lambda i, n: ngmesh.SetMaterial(i + 1, n),
        lambda i, n: ngmesh.SetBCName(i, n),
        lambda i, n: ngmesh.SetCD2Name(i + 1, n),
        lambda i, n: ngmesh.SetCD3Name(i + 1, n),
    ]
    for codim, level in enumerate(names):
        current = list(ngmesh.GetRegionNames(codim=codim))  # once per level: linear in the names
        for i, name in enumerate(level):
            if i < len(current) and current[i] == name:
                continue
            setters[codim](i, str(name))


def _check_types(ngmesh: Any, state: dict[str, Any], dim: int) -> None:
    """Refuse a rebuild whose element types differ from the stored ones (e.g. an unknown element kind)."""
    for d in (3, 2):
        key = f"elements{d}d_type"
        if d > dim or key not in state:
            continue
        stored = np.asarray(state[key])
        rebuilt = (ngmesh.Elements3D() if d == 3 else ngmesh.Elements2D()).NumPy()["type"]
        if stored.shape != rebuilt.shape or not np.array_equal(stored, rebuilt):
            bad = sorted(set(np.unique(stored).tolist()) - set(np.unique(rebuilt).tolist()))
            raise StateError(
                f"the state of netgen.Mesh has {d}D elements of netgen type codes {bad} that AddElements rebuilds "
                "as another element type; this element kind is not supported"
            )


class NetgenMeshSerializer(Serializer):
    """``netgen.Mesh``: a ``netgen.meshing.Mesh`` as arrays (see ``docs/ngsolve.md``)."""

    name = "netgen.Mesh"
    version = 1
    types = (nm.Mesh,)

    def dump(self, obj: Any) -> Any:
        return dump_netgen_mesh(obj)

    def load(self, state: Any) -> Any:
        ngmesh = load_netgen_mesh(state)
        order = int(state.get("curve_order", 1))  # checked by load_netgen_mesh
        if order > 1:
            ngmesh.Curve(order)
        return ngmesh


class MeshSerializer(Serializer):
    """``ngsolve.Mesh``: a reference to its netgen mesh (shared) plus its curve order."""

    name = "ngsolve.Mesh"
    version = 1
    types = (ngsolve.Mesh,)

    def dump(self, obj: Any) -> Any:
        ngmesh = obj.ngmesh
        return {"ngmesh": ngmesh, "curve_order": int(ngmesh.GetCurveOrder())}

    def load(self, state: Any) -> Any:
        ngmesh = state.get("ngmesh") if isinstance(state, dict) else None
        if not isinstance(ngmesh, nm.Mesh):
            raise StateError("the state of ngsolve.Mesh does not refer to a netgen.Mesh")
        mesh = ngsolve.Mesh(ngmesh)
        order = int_in(state.get("curve_order", 1), 1, MAX_CURVE_ORDER, "ngsolve.Mesh: curve_order")
        if order > 1 and int(ngmesh.GetCurveOrder()) != order:
            mesh.Curve(order)
        return mesh
