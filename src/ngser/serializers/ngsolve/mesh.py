"""Meshes as arrays: netgen's ``Mesh`` and NGSolve's ``Mesh`` wrapping it.

The netgen mesh is stored as its points, its elements per dimension (vertex numbers, element
type and region index, in the original element order so that dof numberings come back
identical), its region names for every codimension, face and edge descriptors, periodic
identifications, curve order, the curved element map (:mod:`._curvature`, so that a curved
mesh comes back curved without its geometry) and a reference to its geometry. Rebuilding uses netgen's bulk
``AddPoints`` / ``AddElements`` (one call per run of elements with equal index and node
count), so large meshes cost no Python loop per element.
"""

from __future__ import annotations

import weakref
from typing import Any

import netgen.meshing as nm
import ngsolve
import numpy as np

from ...errors import StateError
from ..base import Serializer
from ._checks import MAX_CURVE_ORDER, checked_mesh_state, int_in
from ._compat import (
    HAS_EDGE_DESCRIPTORS,
    add_elements,
    add_segments,
    curve_order,
    curves_rebuilt_meshes,
    element_table,
    face_descriptor_state,
    face_descriptors,
    identification_kind,
    identifications,
    point_singularities,
    segment_singularities,
    segments_carry_edgenr,
    set_point_singularities,
    set_segment_singularities,
)
from ._curvature import apply_curvature, checked_curvature, dump_curvature, file_curvature, matches_measures
from ._deformation import apply_deformation, dump_deformation
from ._fingerprints import mesh_fingerprint, netgen_mesh_fingerprint
from .geometry import MissingGeometry, is_real_geometry, warn_cannot_curve, warn_curvature_lost

__all__ = ["NetgenMeshSerializer", "MeshSerializer", "dump_netgen_mesh", "load_netgen_mesh"]

_ED_FIELDS = ("index", "edgenr", "surfnr", "domin", "domout", "fdindex", "tlosurf", "name")
#: The hp-refinement marks of an edge descriptor (floats; files of older ngser lack them).
_ED_MARKS = ("singedge_left", "singedge_right")

#: netgen meshes rebuilt without the geometry their file named (it could not be rebuilt).
_LOST_GEOMETRY: weakref.WeakSet[Any] = weakref.WeakSet()
#: Rebuilt netgen meshes left straight although their file asks for a curve order (the geometry
#: is missing, or this netgen cannot curve rebuilt meshes): the ``ngsolve.Mesh`` serializer
#: must not curve them either.
_LEFT_STRAIGHT: weakref.WeakSet[Any] = weakref.WeakSet()
#: Of those, the ones whose file holds their curvature: the ``ngsolve.Mesh`` wrapping them
#: applies it as a deformation.
_PENDING_CURVATURE: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
#: Rebuilt netgen meshes curved from their geometry, with the curvature their file stores: the
#: ``ngsolve.Mesh`` wrapping them compares the measures and falls back to the stored curvature.
_TO_CHECK: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _elements(ngmesh: Any, dim: int) -> dict[str, np.ndarray]:
    """Vertex numbers (1-based, 0-padded), region index and (for 2D/3D) type of all elements of ``dim``."""
    if dim == 0:
        els = list(ngmesh.Elements0D())
        verts = np.array([[int(el.vertices[0].nr)] for el in els], dtype=np.int32).reshape(len(els), 1)
        # Element0D exposes no index attribute; its text form is "<vertex>, index = <n>".
        index = np.array([int(str(el).rsplit("=", 1)[1]) for el in els], dtype=np.int32)
        return {"vertices": verts, "index": index}
    table = {1: ngmesh.Elements1D, 2: ngmesh.Elements2D, 3: ngmesh.Elements3D}[dim]().NumPy()
    return element_table(table, dim)


def dump_netgen_mesh(ngmesh: Any, *, curvature: bool = True) -> dict[str, Any]:
    """The graph state of a ``netgen.meshing.Mesh`` (see ``docs/ngsolve.md``); without its
    curvature for ``curvature=False`` (``ngser.mpi`` gathers it itself)."""
    dim = int(ngmesh.dim)
    state: dict[str, Any] = {"dim": dim, "points": np.array(ngmesh.Coordinates(), dtype=np.float64, order="C")}
    for d in (3, 2, 1, 0):
        if d > dim:
            continue
        for key, arr in _elements(ngmesh, d).items():
            state[f"elements{d}d_{key}"] = arr
    state["region_names"] = [list(ngmesh.GetRegionNames(codim=c)) for c in range(dim + 1)]
    # An unnamed boundary is "default" in NGSolve; netgen 6.2.2501 lists it as "" (6.2.2608 as
    # "default"): store the name NGSolve shows, so that files of both versions agree.
    if len(state["region_names"]) > 1:
        state["region_names"][1] = [name or "default" for name in state["region_names"][1]]
    state["face_descriptors"] = [face_descriptor_state(fd) for fd in ngmesh.FaceDescriptors()]
    # Older netgen has no edge descriptors (its segments name their codim-2 region themselves).
    state["edge_descriptors"] = [
        {
            **{key: (list(getattr(ed, key)) if key == "surfnr" else getattr(ed, key)) for key in _ED_FIELDS},
            **{key: float(getattr(ed, key)) for key in _ED_MARKS},
        }
        for ed in (ngmesh.EdgeDescriptors() if HAS_EDGE_DESCRIPTORS else [])
    ]
    marks = segment_singularities(ngmesh)  # older netgen: the hp marks are on the segments
    if marks is not None:
        state["elements1d_singular"] = marks
    numbers, values = point_singularities(ngmesh)
    if len(numbers):
        state["singular_points"], state["singular_points_values"] = numbers, values
    state["identifications"], state["identification_types"] = identifications(ngmesh)
    state["curve_order"] = order = curve_order(ngmesh)
    if order > 1 and curvature:
        state["curvature"] = dump_curvature(ngmesh, order)
    state["geometry"] = _geometry_of(ngmesh)
    return state


def _geometry_of(ngmesh: Any) -> Any:
    """The mesh's geometry when it is a real one (not netgen's empty default)."""
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
        add_elements(ngmesh, dim, int(index[start]), np.ascontiguousarray(verts[start:stop, :width]))


def load_netgen_mesh(state: dict[str, Any]) -> Any:
    """Rebuild a ``netgen.meshing.Mesh`` from :func:`dump_netgen_mesh`'s state, checked first
    (:func:`~._checks.checked_mesh_state`): nothing unchecked reaches netgen."""
    state = checked_mesh_state(state)
    dim = state["dim"]
    points = np.ascontiguousarray(state["points"], dtype=np.float64)
    ngmesh = nm.Mesh(dim=dim)
    geometry = state.get("geometry")
    if isinstance(geometry, MissingGeometry):
        _LOST_GEOMETRY.add(ngmesh)  # the geometry node warned why; the mesh loads without it
    elif geometry is not None:
        if not is_real_geometry(geometry):
            raise StateError(f"netgen.Mesh: geometry must refer to a netgen geometry, not {type(geometry).__name__}")
        ngmesh.SetGeometry(geometry)
    ngmesh.AddPoints(points)
    for desc in face_descriptors(state.get("face_descriptors", [])):
        ngmesh.Add(desc)
    # An older netgen has no edge descriptors: its segments carry their codim-2 region number
    # (the stored index) themselves, and the names come from region_names.
    for ed in state.get("edge_descriptors", []) if HAS_EDGE_DESCRIPTORS else []:
        desc = nm.EdgeDescriptor()
        for key in (*_ED_FIELDS, *_ED_MARKS):
            if key in ed:
                setattr(desc, key, tuple(ed[key]) if key == "surfnr" else ed[key])
        ngmesh.Add(desc)
    for d in (3, 2, 1):
        if d > dim or f"elements{d}d_vertices" not in state:
            continue
        if d == 1 and segments_carry_edgenr():
            verts = np.ascontiguousarray(state["elements1d_vertices"], dtype=np.int32)
            index = np.asarray(state["elements1d_index"])
            add_segments(ngmesh, verts, index, _edge_numbers(state, index, dim))
            continue
        _add_elements(ngmesh, d, state[f"elements{d}d_vertices"], state[f"elements{d}d_index"])
    if "elements0d_vertices" in state:
        verts, index = np.asarray(state["elements0d_vertices"]), np.asarray(state["elements0d_index"])
        for v, i in zip(verts[:, 0].tolist() if verts.size else [], index.tolist()):
            ngmesh.Add(nm.Element0D(nm.PointId(v), index=i))
    _set_names(ngmesh, state.get("region_names", []))
    _set_marks(ngmesh, state)
    idents = np.asarray(state.get("identifications", np.zeros((0, 3), np.int32)))
    types = state.get("identification_types", [])
    kinds = [identification_kind(name) for name in types]
    for p1, p2, nr in idents.tolist():
        kind = kinds[nr - 1] if nr - 1 < len(kinds) else nm.IdentificationType.PERIODIC
        ngmesh.AddPointIdentification(nm.PointId(p1), nm.PointId(p2), identnr=nr, type=kind)
    _check_types(ngmesh, state, dim)
    return ngmesh


def _set_marks(ngmesh: Any, state: dict[str, Any]) -> None:
    """The hp-refinement marks of points and segments (checked by :func:`checked_mesh_state`)."""
    if "singular_points" in state:
        set_point_singularities(ngmesh, np.asarray(state["singular_points"]), state["singular_points_values"])
    marks, stored = state.get("elements1d_singular"), state.get("edge_descriptors", [])
    if HAS_EDGE_DESCRIPTORS:
        # the descriptors hold the marks; a file of a netgen without them has them per segment
        if marks is not None and not any(key in ed for ed in stored for key in _ED_MARKS):
            set_segment_singularities(ngmesh, np.asarray(marks, dtype=np.float64), ngmesh.EdgeDescriptors())
        return
    if marks is None:
        # a file of a netgen with edge descriptors: each segment gets the (left) mark of the
        # descriptor its index names
        table = np.array([float(ed.get("singedge_left", 0.0)) for ed in stored], dtype=np.float64)
        index = np.asarray(state.get("elements1d_index", np.zeros(0, np.int32)), dtype=np.int64)
        if not (table.any() and index.size):
            return
        inside = (index >= 1) & (index <= len(table))
        marks = np.where(inside, table[np.clip(index - 1, 0, len(table) - 1)], 0.0)
    set_segment_singularities(ngmesh, np.asarray(marks, dtype=np.float64), [])


def _edge_numbers(state: dict[str, Any], index: np.ndarray, dim: int) -> np.ndarray:
    """The edge number of every segment, for a netgen whose segments carry one: as stored (a file
    of such a netgen); from the edge descriptors a segment's index refers to (a 2D mesh of a netgen
    with edge descriptors); otherwise the index itself (in 3D the codim-2 region number either way)."""
    if "elements1d_edgenr" in state:
        return np.asarray(state["elements1d_edgenr"])
    descriptors = state.get("edge_descriptors", [])
    if dim == 2 and descriptors:
        table = np.array([int(ed.get("edgenr", i + 1)) for i, ed in enumerate(descriptors)], dtype=np.int64)
        inside = (index >= 1) & (index <= len(table))
        return np.where(inside, table[np.clip(index - 1, 0, len(table) - 1)], index)
    return index


def _set_names(ngmesh: Any, names: list[list[str]]) -> None:
    # Setters differ in index base: SetMaterial 1-based, SetBCName 0-based, SetCD2Name/SetCD3Name 1-based.
    setters = [
        lambda i, n: ngmesh.SetMaterial(i + 1, n),
        lambda i, n: ngmesh.SetBCName(i, n),
        lambda i, n: ngmesh.SetCD2Name(i + 1, n),
        # an unnamed codim-3 region is a null name in netgen, which only "default" sets ("" would
        # be a name of its own, written to the .vol text)
        lambda i, n: ngmesh.SetCD3Name(i + 1, n or "default"),
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
        rebuilt = element_table((ngmesh.Elements3D() if d == 3 else ngmesh.Elements2D()).NumPy(), d)["type"]
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

    def fingerprint(self, obj: Any) -> Any:
        """Checkpoints store it once while this stays the same (:mod:`._fingerprints`)."""
        return netgen_mesh_fingerprint(obj)

    def dump(self, obj: Any) -> Any:
        return dump_netgen_mesh(obj)

    def load(self, state: Any) -> Any:
        ngmesh = load_netgen_mesh(state)
        order = int(state.get("curve_order", 1))  # checked by load_netgen_mesh
        stored = state.get("curvature") if order > 1 else None
        curvature = None if stored is None else checked_curvature(stored, int(state["dim"]), order)
        # netgen curves a mesh from its geometry: without one (none in the file, or one that could
        # not be rebuilt) or where rebuilt meshes cannot be curved, the stored curvature does it
        no_geometry = state.get("geometry") is None or ngmesh in _LOST_GEOMETRY
        cannot_curve = order > 1 and (no_geometry or not curves_rebuilt_meshes())
        if cannot_curve and curvature is not None:
            _LEFT_STRAIGHT.add(ngmesh)
            _PENDING_CURVATURE[ngmesh] = curvature  # the ngsolve.Mesh wrapping it curves it
        elif cannot_curve and no_geometry:
            warn_curvature_lost(state.get("geometry"), order)
            _LEFT_STRAIGHT.add(ngmesh)
        elif cannot_curve:
            warn_cannot_curve(order)
            _LEFT_STRAIGHT.add(ngmesh)
        elif order > 1:
            ngmesh.Curve(order)
            if curvature is not None:  # checked by the ngsolve.Mesh, which builds the topology anyway
                _TO_CHECK[ngmesh] = curvature
        return ngmesh


class MeshSerializer(Serializer):
    """``ngsolve.Mesh``: a reference to its netgen mesh (shared) plus its curve order, the
    curvature when it came from a file onto a straight netgen mesh (see :mod:`._curvature`) and
    the user's deformation (see :mod:`._deformation`)."""

    name = "ngsolve.Mesh"
    version = 1
    types = (ngsolve.Mesh,)

    def fingerprint(self, obj: Any) -> Any:
        """Checkpoints store it once while this stays the same (:mod:`._fingerprints`)."""
        return mesh_fingerprint(obj)

    def dump(self, obj: Any) -> Any:
        state: dict[str, Any] = {"ngmesh": obj.ngmesh, "curve_order": int(obj.GetCurveOrder())}
        curvature = file_curvature(obj) if state["curve_order"] == 1 else None
        if curvature is not None:
            state["curve_order"] = curvature["order"]
            state["curvature"] = curvature
        deformation = dump_deformation(obj)  # a user's SetDeformation (not a file's curvature)
        if deformation is not None:
            state["deformation"] = deformation
        return state

    def load(self, state: Any) -> Any:
        ngmesh = state.get("ngmesh") if isinstance(state, dict) else None
        if not isinstance(ngmesh, nm.Mesh):
            raise StateError("the state of ngsolve.Mesh does not refer to a netgen.Mesh")
        order = int_in(state.get("curve_order", 1), 1, MAX_CURVE_ORDER, "ngsolve.Mesh: curve_order")
        own = state.get("curvature") if order > 1 else None
        curvature = _PENDING_CURVATURE.get(ngmesh)
        if own is not None:
            curvature = checked_curvature(own, int(ngmesh.dim), order)
        mesh = ngsolve.Mesh(ngmesh)
        check = _TO_CHECK.pop(ngmesh, None)
        if check is not None and not matches_measures(mesh, check):
            mesh.Curve(1)  # netgen curved it wrongly from the geometry: straight again, then the stored curvature
            curvature = check
        if curvature is not None and int(mesh.GetCurveOrder()) == 1:
            apply_curvature(mesh, curvature)
        elif order > 1 and int(mesh.GetCurveOrder()) != order:
            if ngmesh in _LEFT_STRAIGHT:
                pass  # left straight on purpose: its serializer warned why
            elif not curves_rebuilt_meshes():
                warn_cannot_curve(order)
                _LEFT_STRAIGHT.add(ngmesh)
            else:
                mesh.Curve(order)
        if state.get("deformation") is not None:
            apply_deformation(mesh, state["deformation"])  # after the curvature, which it adds to
        return mesh
