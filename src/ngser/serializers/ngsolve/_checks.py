"""Checks of NGSolve states before any value reaches NGSolve's C++ code.

netgen trusts what it is given: a vertex number past the last point, a points array of the
wrong width or an identification of a point that does not exist crash the process, and
values such as a curve order of 4097 make it work for minutes. Every serializer of this
package passes its state through these checks first; each failure is a
:class:`~ngser.StateError` saying which value is wrong and what it should be (the decoder adds
the file, node and type).
"""

from __future__ import annotations

import cmath
from typing import Any

import numpy as np

from ...errors import StateError, shown

__all__ = [
    "MAX_COMPONENTS",
    "MAX_CURVE_ORDER",
    "MAX_ORDER",
    "NODE_COUNTS",
    "checked_flags",
    "checked_mesh_state",
    "checked_periodic",
    "int_in",
    "require_dict",
]

#: The highest curve order a file may ask for (netgen's own examples use up to 8; the work of
#: ``Curve(p)`` grows steeply with ``p``).
MAX_CURVE_ORDER = 16
#: The highest polynomial order (flag ``order``) a stored space may ask for: the work and
#: memory of building a space grow with a power of the order.
MAX_ORDER = 32
#: The most components ``V**n`` and ``multidim`` GridFunctions may ask for.
MAX_COMPONENTS = 1024
#: Vertex counts per element of each dimension that netgen's AddElements builds.
NODE_COUNTS = {0: {1}, 1: {2, 3}, 2: {3, 4, 6, 8}, 3: {4, 5, 6, 8, 10, 13, 15, 20}}
#: Extra region names a level may hold beyond its elements and descriptors.
_SPARE_NAMES = 64
#: How far face descriptor numbers (bc, domin, domout, surfnr) may exceed the mesh's descriptors
#: and names (user-chosen bc numbers of a CSG geometry, say), bounding what NGSolve allocates.
_SPARE_NUMBERS = 100_000
_INT32 = 2**31 - 1
#: The largest hp-refinement mark (``singular``) a file may give: netgen refines a mark's worth
#: of levels towards it, and marks are small numbers (geom2d's hpref, 1 or 2).
_MAX_MARK = 1e6


def require_dict(state: Any, what: str) -> dict[str, Any]:
    if type(state) is not dict:
        raise StateError(f"the state of {what} must be a dict, not {type(state).__name__}")
    return state


def int_in(value: Any, low: int, high: int, what: str) -> int:
    """``value`` if it is an int (not a bool) in ``[low, high]``."""
    if type(value) is not int or not low <= value <= high:
        raise StateError(f"{what} must be an integer from {low} to {high}, not {shown(value)}")
    return value


def checked_flags(flags: Any, what: str) -> dict[str, Any]:
    """The flags of a space or GridFunction as ngser stores them: ``str`` keys; values bools,
    finite floats, strings, lists of floats or strings, or region dicts; ``order`` at most
    :data:`MAX_ORDER` and ``multidim`` at most :data:`MAX_COMPONENTS`."""
    if type(flags) is not dict or not all(type(key) is str for key in flags):
        raise StateError(f"the flags of {what} must be a dict with string keys")
    for key, value in flags.items():
        if type(value) is dict:
            form = value.get("form", "list")
            if set(value) - {"region", "numbers", "names", "form"} or type(form) is not str or form != "list":
                raise StateError(f"the flag {shown(key)} of {what} is a dict but not a region")
            continue
        items = value if type(value) is list else [value]
        if len(items) > 1_000_000 or not all(type(x) in (bool, float, int, str) for x in items):
            raise StateError(f"the flag {shown(key)} of {what} holds {shown(value)}, not numbers, text or bools")
        if any(type(x) is float and not np.isfinite(x) for x in items):
            raise StateError(f"the flag {shown(key)} of {what} is not a finite number")
        if any(type(x) is int and not -(2**53) <= x <= 2**53 for x in items):  # NGSolve's flags are doubles
            raise StateError(f"the flag {shown(key)} of {what} is an integer beyond what a flag can hold")
    bounds = {"order": MAX_ORDER, "multidim": MAX_COMPONENTS, "dim": MAX_COMPONENTS}
    for key, high in bounds.items():
        value = flags.get(key)
        if value is not None and (type(value) not in (int, float) or not 0 <= value <= high):
            raise StateError(f"the flag {shown(key)} of {what} must be a number from 0 to {high}, not {shown(value)}")
    return flags


def _array(state: dict[str, Any], key: str, kind: str, ndim: int, what: str) -> np.ndarray[Any, Any]:
    value = state.get(key)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in kind or value.ndim != ndim:
        got = f"{value.dtype} array of {value.ndim} dimensions" if isinstance(value, np.ndarray) else shown(value)
        raise StateError(f"{what}: {key} must be a {ndim}-dimensional array of kind {kind!r}, not {got}")
    return value


def _names(value: Any, levels: int, bound: int) -> list[list[str]]:
    if type(value) is not list or len(value) > levels:
        raise StateError(f"netgen.Mesh: region_names must be a list of at most {levels} lists of names")
    for level in value:
        if type(level) is not list or not all(type(name) is str for name in level):
            raise StateError("netgen.Mesh: each level of region_names must be a list of strings")
        if len(level) > bound:
            raise StateError(
                f"netgen.Mesh: a level of region_names holds {len(level)} names, more than the mesh's "
                f"{bound} elements and descriptors could use"
            )
    return value


def _descriptors(value: Any, fields: dict[str, type], what: str, required: bool = False) -> list[dict[str, Any]]:
    if type(value) is not list:
        raise StateError(f"netgen.Mesh: {what} must be a list")
    for item in value:
        if type(item) is not dict:
            raise StateError(f"netgen.Mesh: each of {what} must be a dict")
        for key, kind in fields.items():
            if key not in item:
                if required:
                    raise StateError(f"netgen.Mesh: each of {what} must have a field {key}")
                continue
            field = item[key]
            if kind is int:
                int_in(field, -1, _INT32, f"netgen.Mesh: {what} field {key}")
            elif kind is str and type(field) is not str:
                raise StateError(f"netgen.Mesh: {what} field {key} must be a string")
            elif kind is float and not (type(field) is float and -_MAX_MARK <= field <= _MAX_MARK):
                raise StateError(f"netgen.Mesh: {what} field {key} must be a number from 0 to {_MAX_MARK}")
            elif kind is tuple and not (
                type(field) is list and len(field) == 4 and all(type(x) is float and 0.0 <= x <= 1.0 for x in field)
            ):
                raise StateError(f"netgen.Mesh: {what} field {key} must be four numbers from 0 to 1 (RGB, alpha)")
            elif kind is list and not (
                type(field) in (list, tuple)
                and len(field) == 2
                and all(type(x) is int and -1 <= x <= _INT32 for x in field)
            ):
                raise StateError(f"netgen.Mesh: {what} field {key} must be two integers")
    return value


def checked_mesh_state(raw: Any) -> dict[str, Any]:
    """The state of a ``netgen.Mesh`` (:func:`~.mesh.dump_netgen_mesh`), every value checked
    against the others: shapes and dtypes, vertex numbers against the points, region indices
    against the names and descriptors, counts against what the elements can use."""
    state = require_dict(raw, "netgen.Mesh")
    dim = int_in(state.get("dim"), 1, 3, "netgen.Mesh: dim")
    points = _array(state, "points", "fiu", 2, "netgen.Mesh")
    if points.shape[1] != dim:
        raise StateError(f"netgen.Mesh: points must have {dim} columns for a {dim}D mesh, not {points.shape[1]}")
    if not np.isfinite(points).all():
        raise StateError("netgen.Mesh: points must be finite numbers")
    npoints = len(points)
    faces = _descriptors(
        state.get("face_descriptors", []),
        {"surfnr": int, "domin": int, "domout": int, "bc": int, "bcname": str},
        "face_descriptors",
        required=True,
    )
    _descriptors(
        faces,
        {"tlosurf": int, "color": tuple, "domin_singular": float, "domout_singular": float},
        "face_descriptors",
    )
    edges = _descriptors(
        state.get("edge_descriptors", []),
        {
            "index": int,
            "edgenr": int,
            "surfnr": list,
            "domin": int,
            "domout": int,
            "fdindex": int,
            "tlosurf": int,
            "name": str,
            "singedge_left": float,
            "singedge_right": float,
        },
        "edge_descriptors",
    )
    elements: dict[int, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}
    for d in range(dim, -1, -1):
        key = f"elements{d}d_vertices"
        if key not in state:
            continue
        verts = _array(state, key, "iu", 2, "netgen.Mesh")
        index = _array(state, f"elements{d}d_index", "iu", 1, "netgen.Mesh")
        if len(index) != len(verts):
            raise StateError(f"netgen.Mesh: {len(verts)} {d}D elements but {len(index)} region indices")
        _check_vertices(verts, d, npoints)
        elements[d] = (verts, index)
    total = sum(len(index) for _, index in elements.values())
    names = _names(state.get("region_names", []), dim + 1, total + len(faces) + len(edges) + _SPARE_NAMES)
    # NGSolve sizes tables by the largest region and surface numbers of the face descriptors
    # (bc 2**31 - 1 was a 16 GiB std::bad_alloc): they may exceed what the file holds, not by far
    bound = len(faces) + len(edges) + sum(len(level) for level in names) + _SPARE_NUMBERS
    for fd in faces:
        for key in ("surfnr", "domin", "domout", "bc"):
            if fd[key] > bound:
                raise StateError(f"netgen.Mesh: a face descriptor's {key} is {fd[key]}, more than {bound}")
    if len(names) > 1 and names[1] and any(fd["bc"] < 1 for fd in faces):
        # netgen's SetBCName gives every face descriptor the name at bc - 1: a bc of 0 reads before
        # its names (a crash under 6.2.2501)
        raise StateError("netgen.Mesh: a face descriptor has a bc number below 1, but boundary names are 1-based")
    for d, (_, index) in elements.items():
        level = names[dim - d] if dim - d < len(names) else []
        # 2D elements index face descriptors (netgen reads past them otherwise); other levels
        # index region names, which netgen grows to the largest index: bound them by what the
        # file holds, so an index of 10**9 cannot ask for 10**9 names.
        bound = len(faces) if d == 2 else max(len(level), len(faces), len(edges)) + _SPARE_NAMES
        if index.size and (int(index.min()) < 1 or int(index.max()) > max(bound, 0)):
            raise StateError(
                f"netgen.Mesh: {d}D elements name regions {int(index.min())}..{int(index.max())}, but the mesh "
                f"has {bound} of them"
            )
    if "elements1d_edgenr" in state:  # written by a netgen whose segments carry their edge number (6.2.2501)
        edgenr = _array(state, "elements1d_edgenr", "iu", 1, "netgen.Mesh")
        segments = len(elements[1][1]) if 1 in elements else 0
        bound = max(segments, len(edges)) + _SPARE_NAMES
        if len(edgenr) != segments:
            raise StateError(f"netgen.Mesh: {segments} 1D elements but {len(edgenr)} edge numbers")
        if edgenr.size and (int(edgenr.min()) < -1 or int(edgenr.max()) > bound):
            raise StateError(
                f"netgen.Mesh: 1D elements have edge numbers {int(edgenr.min())}..{int(edgenr.max())}, outside "
                f"-1..{bound}"
            )
    idents = state.get("identifications", np.zeros((0, 3), np.int32))
    kinds = state.get("identification_types", [])
    if not isinstance(idents, np.ndarray) or idents.dtype.kind not in "iu" or idents.shape[1:] != (3,):
        raise StateError("netgen.Mesh: identifications must be an integer array of shape (n, 3)")
    if type(kinds) is not list or not all(type(k) is str for k in kinds):
        raise StateError("netgen.Mesh: identification_types must be a list of names")
    if idents.size and (
        int(idents[:, :2].min()) < 1 or int(idents[:, :2].max()) > npoints or int(idents[:, 2].min()) < 1
    ):
        raise StateError(f"netgen.Mesh: an identification names a point outside 1..{npoints} or number < 1")
    if idents.size and int(idents[:, 2].max()) > len(kinds):
        raise StateError("netgen.Mesh: an identification number has no identification type")
    int_in(state.get("curve_order", 1), 1, MAX_CURVE_ORDER, "netgen.Mesh: curve_order")
    _check_marks(state, npoints, len(elements[1][1]) if 1 in elements else 0)
    return state


def _marks(state: dict[str, Any], key: str, count: int) -> np.ndarray[Any, Any]:
    marks = _array(state, key, "f", 1, "netgen.Mesh")
    if len(marks) != count or not np.isfinite(marks).all() or (marks.size and np.abs(marks).max() > _MAX_MARK):
        raise StateError(
            f"netgen.Mesh: {key} must hold {count} finite hp-refinement marks from -{_MAX_MARK} to {_MAX_MARK}"
        )
    return marks


def _check_marks(state: dict[str, Any], npoints: int, segments: int) -> None:
    """The hp-refinement marks: one per segment (``elements1d_singular``); points by 1-based
    number, each once, with one mark each (``singular_points``, ``singular_points_values``)."""
    if "elements1d_singular" in state:
        _marks(state, "elements1d_singular", segments)
    if "singular_points" in state or "singular_points_values" in state:
        numbers = _array(state, "singular_points", "iu", 1, "netgen.Mesh")
        if numbers.size and (int(numbers.min()) < 1 or int(numbers.max()) > npoints):
            raise StateError(f"netgen.Mesh: singular_points names points outside 1..{npoints}")
        if len(np.unique(numbers)) != len(numbers):
            raise StateError("netgen.Mesh: singular_points names a point twice")
        _marks(state, "singular_points_values", len(numbers))


def _check_vertices(verts: np.ndarray[Any, Any], d: int, npoints: int) -> None:
    """Vertex numbers 1..npoints, then zeros as padding; a count netgen has an element for;
    no vertex twice in one element."""
    if not verts.size:
        return
    width = verts.shape[1]
    if width > max(NODE_COUNTS[d]):
        raise StateError(f"netgen.Mesh: {d}D elements have {width} vertex columns, at most {max(NODE_COUNTS[d])}")
    if int(verts.min()) < 0 or int(verts.max()) > npoints:
        raise StateError(
            f"netgen.Mesh: {d}D elements use vertex numbers {int(verts.min())}..{int(verts.max())}, but the mesh "
            f"has points 1..{npoints}"
        )
    present = verts != 0
    counts = present.sum(axis=1)
    if not (present == (np.arange(width) < counts[:, None])).all():
        raise StateError(f"netgen.Mesh: {d}D elements must list their vertices first, then zeros")
    bad = set(np.unique(counts).tolist()) - NODE_COUNTS[d]
    if bad:
        raise StateError(f"netgen.Mesh: {d}D elements with {sorted(bad)} vertices do not exist in netgen")
    ordered = np.sort(np.where(present, verts, -np.arange(1, width + 1)), axis=1)
    if (ordered[:, 1:] == ordered[:, :-1]).any():
        raise StateError(f"netgen.Mesh: a {d}D element uses one vertex twice")


#: The class of a periodic space and the Python type of its phase factors.
_PHASE_TYPES: dict[str, type | None] = {"Periodic": None, "QuasiPeriodicD": float, "QuasiPeriodicC": complex}


def checked_periodic(state: dict[str, Any], count: int) -> tuple[list[Any] | None, list[int], bool]:
    """``(phase, use_idnrs, autoupdate)`` of an ``ngsolve.PeriodicSpace`` state whose base space's
    mesh has ``count`` periodic identifications, as ``ngsolve.Periodic`` takes them: identification
    numbers from 0 to ``count - 1``, each once; a phase factor (finite floats for
    ``QuasiPeriodicD``, complex for ``QuasiPeriodicC``) for each identification used, at most
    ``count`` (NGSolve reads a factor for every identification number it uses, past the end of a
    shorter list)."""
    what = "ngsolve.PeriodicSpace"
    damaged = "the file is damaged or was not written by ngser"
    cls = state.get("class")
    if type(cls) is not str or cls not in _PHASE_TYPES:
        raise StateError(f"{what}: class must be one of {', '.join(_PHASE_TYPES)}, not {shown(cls)} ({damaged})")
    idnrs = state.get("use_idnrs")
    if idnrs is None:
        idnrs = []
    if type(idnrs) is not list or len(idnrs) > count or not all(type(i) is int for i in idnrs):
        raise StateError(
            f"{what}: use_idnrs must be None or a list of at most {count} identification numbers (the mesh's "
            f"periodic identifications), not {shown(idnrs)} ({damaged})"
        )
    if any(not 0 <= i < count for i in idnrs) or len(set(idnrs)) != len(idnrs):
        raise StateError(
            f"{what}: use_idnrs {shown(idnrs)} must name distinct periodic identifications of the mesh, which has "
            f"{count} (numbered from 0); save the space again with the mesh it was built on"
        )
    kind, phase = _PHASE_TYPES[cls], state.get("phase")
    if kind is None:
        if phase is not None:
            raise StateError(f"{what}: a Periodic space has no phase, but the state gives {shown(phase)} ({damaged})")
    else:
        needed = max(idnrs) + 1 if idnrs else count
        if type(phase) is not list or not max(needed, 1) <= len(phase) <= max(count, 1):
            raise StateError(
                f"{what}: the phase of a {cls} space must be a list of {max(needed, 1)} to {max(count, 1)} factors "
                f"(one per periodic identification of the mesh), not {shown(phase)} ({damaged})"
            )
        if not all(type(v) is kind and cmath.isfinite(v) for v in phase):  # type: ignore[arg-type]
            raise StateError(
                f"{what}: the phase of a {cls} space must hold finite {kind.__name__} numbers, not {shown(phase)} "
                f"({damaged})"
            )
    autoupdate = state.get("autoupdate", False)
    if type(autoupdate) is not bool:
        raise StateError(f"{what}: autoupdate must be True or False, not {shown(autoupdate)} ({damaged})")
    return phase, idnrs, autoupdate
