"""What differs between the supported netgen/NGSolve versions, found by feature tests.

ngser supports NGSolve 6.2.2501 (January 2025) to the newest. The structured parts of a mesh
are stored the same way under every version; where an older netgen's Python API lacks
something, it is read another way here. Nothing compares version strings: every function tests
for the feature it needs.

=================================================  ============================================
newer netgen (6.2.2608)                            older netgen (6.2.2501)
=================================================  ============================================
``Elements2D/3D().NumPy()`` has a ``type`` field   no ``type`` (an ``np`` node count instead):
                                                   the type follows from the vertex count
``nodes`` padded to the widest element             ``nodes`` padded to 8 (2D) or 20 (3D)
                                                   columns: trimmed to the widest element
``EdgeDescriptor``/``EdgeDescriptors()``           neither: segments name their codim-2 region
                                                   themselves; stored descriptors are skipped
``Mesh.GetCurveOrder()``                           only ``ngsolve.Mesh.GetCurveOrder()``
``GetIdentifications()`` gives ``(p1, p2, nr)``,   ``(p1, p2)`` pairs and no
``GetIdentificationType(nr)``                      ``GetIdentificationType``: both are read from
                                                   the mesh's own ``.vol`` text (``Mesh.Save``)
``IdentificationType.OFFSET_POINT``                not there: such a file is refused on load
``AddElements`` builds every 3D element up to 10   only tetrahedra (4 points): the others are
points (not 13, 15, 20)                            added one by one (``Element3D``)
``netgen.__version__``                             ``netgen.config.version`` only
``EdgeDescriptor.singedge_left/right`` (hp marks)  marks on the segments: ``Element1D.singular``
                                                   (reads the left one, sets both)
``Curve(p)`` of a rebuilt mesh recomputes the      segments keep their own geometry data
curvature from the geometry                        (``edgenr``, edge parameters) that
                                                   ``AddElements`` leaves unset: curving a
                                                   rebuilt mesh gives straight or wrong elements,
                                                   or crashes (a spline-geometry disk). Rebuilt
                                                   meshes stay straight, with a warning
=================================================  ============================================
"""

from __future__ import annotations

import functools
import operator
import os
import re
import tempfile
from typing import Any

import netgen
import netgen.meshing as nm
import numpy as np

from ...errors import StateError, shown

__all__ = [
    "ELEMENT_TYPES",
    "HAS_EDGE_DESCRIPTORS",
    "add_elements",
    "add_segments",
    "curve_order",
    "face_descriptor_state",
    "face_descriptors",
    "curves_rebuilt_meshes",
    "element_table",
    "identification_kind",
    "identifications",
    "netgen_version",
    "point_singularities",
    "segment_singularities",
    "segments_carry_edgenr",
    "set_point_singularities",
    "set_segment_singularities",
    "types_from_counts",
]

#: netgen element type codes (``netgen.meshing.ElementType``, the ``type`` field of
#: ``Elements*D().NumPy()`` where it exists) of the element netgen builds from a vertex count.
ELEMENT_TYPES = {
    2: {3: 10, 4: 11, 6: 12, 8: 14},  # TRIG, QUAD, TRIG6, QUAD8
    3: {4: 20, 10: 21, 5: 22, 13: 28, 6: 23, 15: 27, 8: 25, 20: 26},  # TET, TET10, PYRAMID(13), PRISM(15), HEX(20)
}

#: Whether this netgen has edge descriptors (``netgen.meshing.EdgeDescriptor``).
HAS_EDGE_DESCRIPTORS = hasattr(nm, "EdgeDescriptor")


def element_table(table: np.ndarray[Any, Any], dim: int) -> dict[str, np.ndarray[Any, Any]]:
    """``vertices`` (1-based, 0-padded to the widest element), ``index`` and, for 2D/3D, ``type``
    of a structured ``Elements*D().NumPy()`` array, the same under every netgen version."""
    nodes = np.asarray(table["nodes"])
    counts = (nodes != 0).sum(axis=1) if nodes.size else np.zeros(len(nodes), dtype=np.int64)
    width = int(counts.max()) if len(counts) else nodes.shape[1]
    out = {
        "vertices": np.ascontiguousarray(nodes[:, :width], dtype=np.int32),
        "index": np.ascontiguousarray(table["index"], dtype=np.int32),
    }
    if dim == 1 and "edgenr" in (table.dtype.names or ()):
        out["edgenr"] = np.ascontiguousarray(table["edgenr"], dtype=np.int32)
    if dim >= 2:
        if "type" in (table.dtype.names or ()):
            out["type"] = np.ascontiguousarray(table["type"], dtype=np.uint8)
        else:
            out["type"] = types_from_counts(counts, dim)
    return out


def types_from_counts(counts: np.ndarray[Any, Any], dim: int) -> np.ndarray[Any, Any]:
    """netgen type codes of elements of ``dim`` with ``counts`` vertices (0 for a count netgen has no type for)."""
    lookup = np.zeros(max(ELEMENT_TYPES[dim]) + 1, dtype=np.uint8)
    for count, code in ELEMENT_TYPES[dim].items():
        lookup[count] = code
    counts = np.asarray(counts, dtype=np.int64)
    inside = (counts >= 0) & (counts < len(lookup))
    return np.where(inside, lookup[np.clip(counts, 0, len(lookup) - 1)], 0).astype(np.uint8)


def netgen_version() -> str:
    """The running netgen's version (``"v6.2.2501"``)."""
    config = getattr(netgen, "config", None)
    return str(getattr(config, "version", None) or getattr(netgen, "__version__", "unknown"))


def add_elements(ngmesh: Any, dim: int, index: int, block: np.ndarray[Any, Any]) -> None:
    """Add the elements ``block`` (rows of 1-based vertex numbers, all of one vertex count) of
    region ``index``: in one ``AddElements`` call where this netgen can, one by one otherwise."""
    count = int(block.shape[1])
    if _bulk_supported(dim, count):
        # No project_geometry: it moves points; curving from the geometry works without it.
        ngmesh.AddElements(dim, index, block, base=1)
        return
    make = {2: nm.Element2D, 3: nm.Element3D}[dim]
    for row in block.tolist():
        ngmesh.Add(make(index, [nm.PointId(v) for v in row]))


@functools.cache
def _bulk_supported(dim: int, count: int) -> bool:
    """Whether this netgen's ``AddElements`` builds ``dim``-dimensional elements of ``count``
    vertices, tried once on a scratch mesh (6.2.2501 builds only tetrahedra in 3D; 6.2.2608 not
    13, 15 or 20 points)."""
    if dim == 1:
        return True
    scratch = nm.Mesh(dim=3)
    scratch.AddPoints(np.random.default_rng(0).random((count, 3)))
    if dim == 2:
        scratch.Add(nm.FaceDescriptor(surfnr=1, domin=1, domout=0, bc=1))
    try:
        scratch.AddElements(dim, 1, np.arange(1, count + 1, dtype=np.int32)[None, :], base=1)
    except Exception:  # NgException: "unsupported 3D element with N points"
        return False
    return True


def add_segments(ngmesh: Any, verts: np.ndarray[Any, Any], index: np.ndarray[Any, Any], edgenr: Any) -> None:
    """Add segments with their edge numbers, one by one, where this netgen's segments carry
    one (:func:`segments_carry_edgenr`; ``AddElements`` leaves it at -1 there, and integrating
    over a codim-2 region of such a 3D mesh then crashes)."""
    counts = (verts != 0).sum(axis=1)
    for row, count, i, e in zip(verts.tolist(), counts.tolist(), index.tolist(), np.asarray(edgenr).tolist()):
        ngmesh.Add(nm.Element1D([nm.PointId(v) for v in row[:count]], index=i, edgenr=e))


@functools.cache
def segments_carry_edgenr() -> bool:
    """Whether this netgen's segments carry an edge number of their own (``Elements1D().NumPy()``
    has an ``edgenr`` field: 6.2.2501) that ``AddElements`` leaves unset (-1)."""
    scratch = nm.Mesh(dim=2)
    scratch.AddPoints(np.array([[0.0, 0.0], [1.0, 0.0]]))
    scratch.AddElements(1, 1, np.array([[1, 2]], dtype=np.int32), base=1)
    table = scratch.Elements1D().NumPy()
    return "edgenr" in (table.dtype.names or ()) and bool((np.asarray(table["edgenr"]) < 0).any())


@functools.cache
def curves_rebuilt_meshes() -> bool:
    """Whether this netgen can curve a mesh rebuilt from arrays: its segments (built by
    ``AddElements``) must not need geometry data of their own. In 6.2.2501 a segment has an
    ``edgenr`` (and edge parameters, not exposed) that ``AddElements`` leaves at -1; ``Curve`` then
    reads them and gives straight or wrong elements, or crashes, also when ngser sets the edge
    number (:func:`add_segments`): the edge parameters stay unset."""
    return not segments_carry_edgenr()


def curve_order(ngmesh: Any) -> int:
    """The curve order of a netgen mesh (1 when it is not curved)."""
    getter = getattr(ngmesh, "GetCurveOrder", None)
    if getter is not None:
        return int(getter())
    import ngsolve  # older netgen: only NGSolve's mesh wrapper reads the curved elements' order

    return int(ngsolve.Mesh(ngmesh).GetCurveOrder())


def identifications(ngmesh: Any) -> tuple[np.ndarray[Any, Any], list[str]]:
    """The periodic (and other) point identifications of ``ngmesh``: an int32 ``(k, 3)`` array
    of rows ``[point1, point2, identification number]`` and the type name of each number."""
    count = int(ngmesh.GetNrIdentifications())
    pairs = list(ngmesh.GetIdentifications())
    if all(len(pair) == 3 for pair in pairs) and hasattr(ngmesh, "GetIdentificationType"):
        rows = [[_nr(p1), _nr(p2), int(nr)] for p1, p2, nr in pairs]
        kinds = [ngmesh.GetIdentificationType(nr).name for nr in range(1, count + 1)]
    elif count == 0 and not pairs:
        rows, kinds = [], []
    else:
        rows, kinds = _identifications_from_vol(ngmesh)
    return np.array(rows, dtype=np.int32).reshape(len(rows), 3), kinds


def identification_kind(name: str) -> Any:
    """The ``IdentificationType`` of this netgen named ``name``; a :class:`StateError` if it has none."""
    kind = nm.IdentificationType.__members__.get(name)
    if kind is None:
        known = ", ".join(nm.IdentificationType.__members__)
        raise StateError(
            f"netgen.Mesh: the identification type {shown(name)} does not exist in this netgen (it has {known}); "
            "the file was written by another netgen version"
        )
    return kind


def _nr(point: Any) -> int:
    """A 1-based point number from a ``PointId`` or an int."""
    return int(getattr(point, "nr", point))


def _identifications_from_vol(ngmesh: Any) -> tuple[list[list[int]], list[str]]:
    """Identifications read from the mesh's ``.vol`` text, for a netgen whose Python API gives the
    point pairs without their numbers and types (the sections ``identifications``: count, then
    ``p1 p2 nr`` rows; ``identificationtypes``: count, then one type code per number)."""
    with tempfile.TemporaryDirectory(prefix="ngser-") as tmp:
        path = os.path.join(tmp, "mesh.vol")
        ngmesh.Save(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    sections: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        key = line.strip()
        if key in ("identifications", "identificationtypes") and key not in sections:
            sections[key] = _numbers_after(lines, i + 1, 3 if key == "identifications" else 1)
    flat = sections.get("identifications", [])
    rows = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    codes = {int(kind): name for name, kind in nm.IdentificationType.__members__.items()}
    kinds = [codes.get(code, "UNDEFINED") for code in sections.get("identificationtypes", [])]
    count = int(ngmesh.GetNrIdentifications())
    kinds = (kinds + ["PERIODIC"] * count)[:count] if rows else kinds
    return rows, kinds


def _numbers_after(lines: list[str], start: int, per_item: int) -> list[int]:
    """``count`` on line ``start``, then ``count * per_item`` integers on the following lines."""
    if start >= len(lines):
        return []
    count = int(lines[start].split()[0])
    values: list[int] = []
    for line in lines[start + 1 :]:
        if len(values) >= count * per_item:
            break
        values.extend(int(tok) for tok in line.split())
    return values[: count * per_item]


#: netgen's default colour of a face descriptor (RGB and transparency).
DEFAULT_COLOR = (0.0, 1.0, 0.0, 1.0)
_TLOSURF = re.compile(r"tlosurf = (-?\d+)")


def face_descriptor_state(fd: Any) -> dict[str, Any]:
    """A face descriptor's fields: numbers and name, its top-level surface (``tlosurf``, which
    Python reads only from the descriptor's text form), colour with transparency and the hp
    marks of its two sides."""
    match = _TLOSURF.search(str(fd))
    return {
        "surfnr": int(fd.surfnr),
        "domin": int(fd.domin),
        "domout": int(fd.domout),
        "bc": int(fd.bc),
        "bcname": str(fd.bcname),
        "tlosurf": int(match.group(1)) if match else -1,
        "color": [*(float(c) for c in tuple(fd.color)[:3]), float(fd.transparency)],  # 6.2.2608 gives 4
        "domin_singular": float(fd.domin_singular),
        "domout_singular": float(fd.domout_singular),
    }


def face_descriptors(states: list[dict[str, Any]]) -> list[Any]:
    """``FaceDescriptor`` objects of checked :func:`face_descriptor_state` states (fields a file
    lacks keep netgen's defaults). Python cannot set ``tlosurf``: descriptors with one are read
    from a ``.vol`` text holding only them, written from the checked integers, and copied."""
    if any(fd.get("tlosurf", -1) != -1 for fd in states):
        made = _descriptors_from_vol(states)
    else:
        made = [
            nm.FaceDescriptor(surfnr=fd["surfnr"], domin=fd["domin"], domout=fd["domout"], bc=fd["bc"]) for fd in states
        ]
    for desc, fd in zip(made, states):
        desc.bcname = str(fd["bcname"])
        color = fd.get("color")
        if color is not None and tuple(color) != DEFAULT_COLOR:
            desc.color = tuple(color[:3])
            desc.transparency = color[3]
        for key in ("domin_singular", "domout_singular"):
            if fd.get(key):
                setattr(desc, key, fd[key])
    return made


def _descriptors_from_vol(states: list[dict[str, Any]]) -> list[Any]:
    rows = [f"{fd['surfnr']} {fd['domin']} {fd['domout']} {fd.get('tlosurf', -1)} {fd['bc']}" for fd in states]
    text = "mesh3d\ndimension\n3\nfacedescriptors\n{}\n{}\n\nendmesh\n".format(len(rows), "\n".join(rows))
    with tempfile.TemporaryDirectory(prefix="ngser-") as tmp:
        path = os.path.join(tmp, "descriptors.vol")
        with open(path, "w", encoding="ascii") as f:
            f.write(text)
        scratch = nm.Mesh()
        scratch.Load(path)
    made = [nm.FaceDescriptor(fd) for fd in scratch.FaceDescriptors()]
    if len(made) != len(states):  # netgen read another count: never expected from checked integers
        raise StateError(f"netgen.Mesh: netgen read {len(made)} of {len(states)} face descriptors")
    return made


def point_singularities(ngmesh: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The points with an hp-refinement mark (``MeshPoint.singular`` not 0): 1-based numbers
    (int32) and marks (float64)."""
    points = ngmesh.Points()
    # attrgetter, not a generator: the loop over every point runs in C (3x faster; netgen has
    # no array of the marks)
    marks = np.fromiter(map(operator.attrgetter("singular"), points), dtype=np.float64, count=len(points))
    where = np.flatnonzero(marks)
    return (where + 1).astype(np.int32), marks[where]


def set_point_singularities(ngmesh: Any, numbers: np.ndarray[Any, Any], marks: np.ndarray[Any, Any]) -> None:
    points = ngmesh.Points()
    for nr, mark in zip(numbers.tolist(), marks.tolist()):
        points[nm.PointId(nr)].singular = mark


def segment_singularities(ngmesh: Any) -> np.ndarray[Any, Any] | None:
    """For a netgen without edge descriptors: every segment's hp mark (``Element1D.singular``,
    the left one; netgen's Python API gives no other), or None when no segment has one."""
    if HAS_EDGE_DESCRIPTORS:
        return None
    marks = np.fromiter((s.singular for s in ngmesh.Elements1D()), dtype=np.float64)
    return marks if marks.any() else None


def set_segment_singularities(ngmesh: Any, marks: np.ndarray[Any, Any], descriptors: list[Any]) -> None:
    """Set the segments' hp marks (one per segment): on a netgen with edge descriptors on the
    descriptor each segment names (left and right), which holds them there, otherwise on the
    segments themselves."""
    segments = ngmesh.Elements1D()
    if HAS_EDGE_DESCRIPTORS:
        index = np.asarray(segments.NumPy()["index"], dtype=np.int64)
        for i, mark in zip(index.tolist(), marks.tolist()):
            if mark and 1 <= i <= len(descriptors):
                descriptors[i - 1].singedge_left = descriptors[i - 1].singedge_right = mark
        return
    for i in np.flatnonzero(marks).tolist():
        segments[nm.ElementId1D(i)].singular = float(marks[i])
