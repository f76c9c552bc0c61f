"""Geometries (OCC, 2D spline, CSG, STL) as NGSolve's own archive bytes, OCC ones also as BREP.

netgen exposes no structured description of a geometry through Python, so a geometry node
holds the bytes of NGSolve's own pickling (an OCC geometry embeds its BRep text). They are
version-bound: see :mod:`.native`. The geometry is its own shared node, so several meshes of
one geometry store it once.

**Trusted only.** These bytes go to NGSolve's C++ archive reader unchecked, and a damaged or
made-up node crashes the process (empty, truncated or zeroed ``data`` is a segfault in both
6.2.2501 and 6.2.2608). A geometry is an optional part of a file, so an untrusted load does not
refuse the file: :meth:`GeometrySerializer.load_untrusted` hands nothing to NGSolve and builds a
:class:`MissingGeometry` with a :class:`~ngser.serializers.ngsolve.GeometryWarning`; the meshes
that refer to it load without a geometry. ``trusted=True`` restores the geometry.

**OCC geometries also store a stable exchange form**: ``brep`` (the shape's BREP text, from
``TopoDS_Shape.WriteBrep`` into a private temporary directory, without triangulations where
netgen offers the option), ``dim`` (the geometry's dimension, which only its archive records) and
``properties`` (the non-default name, colour, maxh, hpref and layer of each solid, face, edge and
vertex, by position in ``shape.solids`` / ``faces`` / ``edges`` / ``vertices``: BREP text has no
attributes). These keys are optional additions to the version-1 state, which older ngser
ignores, so the serializer version stays 1 and files without them (older ngser) load as before.
The BREP form is rebuilt as ``OCCGeometry(path, dim=dim)`` to read the shape, the properties
set on it, then ``OCCGeometry(shape, dim=dim)``. It does not carry ``Identify`` identifications
(periodicity for remeshing) nor a STEP assembly tree: Python cannot read them.

**Which form a trusted load tries first.** NGSolve's archive reader refuses some foreign bytes
cleanly (a 6.2.2608 OCC archive under 6.2.2501: "unknown format version 1") but crashes on
others, so it must not be the probe that decides. The archive records the netgen that wrote it
(``version_stored``): when that netgen is *newer* than the running one, or the record is not
readable, the BREP form goes first and the archive is tried only if the BREP form fails (or is
absent). Otherwise (the same netgen, or an older one: netgen reads older archives by design, and
they keep identifications) the archive goes first and the BREP form is the fallback when NGSolve
refuses the bytes. When both fail, the node loads as a :class:`MissingGeometry` with a warning.
A trusted file's bytes are not checked beyond the file's checksums: damaged bytes that the
checksums do not catch (a file edited on purpose) can still crash NGSolve on a trusted load.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import tempfile
from typing import Any

from ...errors import StateError, shown
from ..base import Serializer
from . import warn_geometry
from ._compat import netgen_version
from .native import archive_state, restore_archive

__all__ = [
    "MissingGeometry",
    "geometry_serializers",
    "is_real_geometry",
    "warn_cannot_curve",
    "warn_curvature_lost",
    "written_by",
]

#: (stable type name, module, class name)
_GEOMETRIES = (
    ("netgen.OCCGeometry", "netgen.occ", "OCCGeometry"),
    ("netgen.SplineGeometry", "netgen.geom2d", "SplineGeometry"),
    ("netgen.CSGeometry", "netgen.csg", "CSGeometry"),
    ("netgen.STLGeometry", "netgen.stl", "STLGeometry"),
)


def _classes() -> dict[type, str]:
    found: dict[type, str] = {}
    for name, module, cls_name in _GEOMETRIES:
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError):
            continue
        found[cls] = name
    return found


def is_real_geometry(geo: Any) -> bool:
    """Whether ``geo`` is a geometry ngser can store (netgen's bare ``NetgenGeometry`` is not)."""
    return type(geo) in _classes()


class MissingGeometry:
    """Stands for a geometry node that could not be rebuilt; a mesh referring to it loads without
    a geometry. ``name`` is the node's type name, ``reason`` why it was not rebuilt (NGSolve refused
    it, or the file is not trusted), ``written_by``
    the library versions recorded in its bytes (``"netgen v6.2.2608, ngsolve v6.2.2608"``)."""

    __slots__ = ("name", "reason", "written_by")

    def __init__(self, name: str, reason: str, written_by: str) -> None:
        self.name = name
        self.reason = reason
        self.written_by = written_by

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"<MissingGeometry {self.name} ({self.written_by or 'unknown writer'}): {self.reason}>"


def written_by(version_stored: Any) -> str:
    """The library versions an ngcore archive records (``"netgen v6.2.2608, ngsolve v6.2.2608"``),
    or ``""`` when the bytes do not hold a readable list."""
    raw = bytes(version_stored) if isinstance(version_stored, (bytes, bytearray)) else b""
    pos, found = 8, []
    if len(raw) < 8:
        return ""
    count = int.from_bytes(raw[:8], "little")
    for _ in range(min(count, 16)):
        parts = []
        for _ in range(2):
            if pos + 4 > len(raw):
                return ""
            size = int.from_bytes(raw[pos : pos + 4], "little")
            if size > 64 or pos + 4 + size > len(raw):
                return ""
            parts.append(raw[pos + 4 : pos + 4 + size].decode("ascii", "replace"))
            pos += 4 + size
        found.append(" ".join(parts))
    return ", ".join(found)


def warn_curvature_lost(geometry: Any, order: int) -> None:
    """Warn that a mesh of curve order ``order`` loads straight because ``geometry`` is missing."""
    name = geometry.name if isinstance(geometry, MissingGeometry) else "geometry"
    warn_geometry(
        f"a netgen.Mesh of curve order {order} was loaded without its {name} node (see the GeometryWarning "
        "about it): netgen curves a mesh from its geometry, so its elements are straight and integrals over "
        "curved boundaries and volumes differ from the saved mesh's"
    )


def warn_cannot_curve(order: int) -> None:
    """Warn that a mesh of curve order ``order`` loads straight because this netgen cannot curve
    rebuilt meshes (see :func:`._compat.curves_rebuilt_meshes`)."""
    warn_geometry(
        f"a netgen.Mesh of curve order {order} was loaded straight: this netgen ({netgen_version()}) curves "
        "meshes from geometry data on each boundary segment that ngser does not store, and curving the rebuilt "
        "mesh would give wrong elements or crash. Integrals over curved boundaries and volumes differ from the "
        "saved mesh's; a newer NGSolve (6.2.2608) curves the same file correctly"
    )


#: The subshape lists whose properties an OCC geometry's BREP form keeps (``shells`` is newer than
#: 6.2.2501); the properties are ``name``, ``col``, ``maxh``, ``hpref`` and ``layer``.
_SUBSHAPES = ("solids", "faces", "edges", "vertices")
_NO_MAXH = 1e99


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+(?:\.\d+)+)", text)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _writer_is_newer(version_stored: Any) -> bool:
    """Whether the netgen that wrote an archive is newer than the running one (or unknown)."""
    writer = next((part for part in written_by(version_stored).split(", ") if part.startswith("netgen ")), "")
    stored, running = _version_tuple(writer), _version_tuple(netgen_version())
    return stored is None or running is None or stored > running


def _archive_dim(data: bytes) -> int | None:
    """The dimension an OCC geometry's archive records after its BREP text (``None`` if unreadable).
    Layout in 6.2.2501 and 6.2.2608: marker (4), netgen version (4 + n), format version (4), BREP
    text (4 + n), dimension (4), each length and number a little-endian int32."""

    def int32(pos: int) -> int:
        return int.from_bytes(data[pos : pos + 4], "little", signed=True)

    pos = 4 + 4 + max(int32(4), 0) + 4
    pos += 4 + max(int32(pos), 0)
    dim = int32(pos) if pos + 4 <= len(data) else 0
    return dim if dim in (1, 2, 3) else None


def _subshape_properties(shape: Any) -> dict[str, list[Any]]:
    """The non-default properties of the shape's subshapes: ``{kind: [[index, {name: value}], ...]}``."""
    found: dict[str, list[Any]] = {}
    for kind in _SUBSHAPES:
        entries = []
        for i, sub in enumerate(getattr(shape, kind)):
            props: dict[str, Any] = {}
            if sub.name is not None:
                props["name"] = str(sub.name)
            if sub.col is not None:
                props["col"] = [float(c) for c in sub.col]
            if float(sub.maxh) < _NO_MAXH:
                props["maxh"] = float(sub.maxh)
            if float(sub.hpref) != 0.0:
                props["hpref"] = float(sub.hpref)
            if int(getattr(sub, "layer", 1)) != 1:
                props["layer"] = int(sub.layer)
            if props:
                entries.append([i, props])
        if entries:
            found[kind] = entries
    return found


def _embedded_brep(data: bytes) -> bytes | None:
    """The BREP text netgen 6.2.2501 embeds in an OCC geometry's archive (length-prefixed, without
    triangulations, which its ``WriteBrep`` cannot leave out: a sphere's are 50 KB), or None."""
    start = data.find(b"\nCASCADE Topology V")
    if start < 4:
        return None
    size = int.from_bytes(data[start - 4 : start], "little")
    text = data[start : start + size]
    return text if len(text) == size and b"\nTShapes " in text else None


def _brep_state(geo: Any, data: bytes) -> dict[str, Any]:
    """``{"brep", "dim", "properties"}`` of an OCC geometry, or ``{}`` when netgen cannot write them."""
    dim = _archive_dim(data)
    if dim is None:
        return {}
    try:
        with tempfile.TemporaryDirectory(prefix="ngser-brep-") as tmp:  # private (mode 0700), removed
            path = os.path.join(tmp, "shape.brep")
            try:
                geo.shape.WriteBrep(path, withTriangles=False)
            except TypeError:  # 6.2.2501 has no withTriangles: its archive holds BREP text without them
                embedded = _embedded_brep(data)
                if embedded is None:
                    geo.shape.WriteBrep(path)
                else:
                    with open(path, "wb") as file:
                        file.write(embedded)
            with open(path, encoding="latin-1") as file:
                text = file.read()
        properties = _subshape_properties(geo.shape)
    except Exception:  # netgen raises its own exception types; the archive bytes still hold it
        return {}
    return {"brep": text, "dim": dim, "properties": properties}


def _checked_brep(state: dict[str, Any], what: str) -> tuple[bytes, int, dict[str, Any]] | None:
    """The BREP form of a state, its types checked, or ``None`` when it has none."""
    if "brep" not in state:
        return None
    brep, dim, properties = state["brep"], state.get("dim"), state.get("properties", {})
    if isinstance(brep, str):
        try:
            brep = brep.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise StateError(f"the BREP text of {what} is not BREP text: {exc}") from None
    if not isinstance(brep, (bytes, bytearray)):
        raise StateError(f"the BREP text of {what} is a {type(brep).__name__}, not a str")
    if type(dim) is not int or dim not in (1, 2, 3):
        raise StateError(f"the state of {what} has a BREP text but no dimension 1, 2 or 3 (got {shown(dim)})")
    if not isinstance(properties, dict) or not set(properties) <= set(_SUBSHAPES):
        raise StateError(f"the subshape properties of {what} must be a dict with keys among {_SUBSHAPES}")
    return bytes(brep), dim, properties


def _set_properties(shape: Any, properties: dict[str, Any], what: str) -> None:
    """Set the stored subshape properties (:func:`_subshape_properties`) on ``shape``, each checked."""
    for kind, entries in properties.items():
        subs = list(getattr(shape, kind))
        if not isinstance(entries, list):
            raise StateError(f"the {kind} properties of {what} are not a list")
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int):
                raise StateError(f"the {kind} properties of {what} must be [index, {{...}}] pairs")
            index, props = entry
            if not (0 <= index < len(subs) and isinstance(props, dict)):
                raise StateError(f"the {kind} properties of {what} name subshape {index} of {len(subs)}")
            for key, value in props.items():
                _set_property(subs[index], key, value, f"the {kind} properties of {what}")


def _set_property(sub: Any, key: Any, value: Any, where: str) -> None:
    number = (int, float)
    if key == "name" and isinstance(value, str):
        sub.name = value
    elif (
        key == "col" and isinstance(value, list) and len(value) in (3, 4) and all(isinstance(c, number) for c in value)
    ):
        sub.col = tuple(float(c) for c in value)
    elif key in ("maxh", "hpref") and isinstance(value, number) and value >= 0:
        setattr(sub, key, float(value))
    elif key == "layer" and type(value) is int and value >= 1:
        sub.layer = value
    else:
        raise StateError(f"{where} hold {shown(key)}={shown(value)}, which is not a netgen subshape property")


def _occ_from_brep(cls: type, form: tuple[bytes, int, dict[str, Any]], what: str) -> Any:
    """An OCC geometry rebuilt from its BREP form (see the module docstring)."""
    brep, dim, properties = form
    with tempfile.TemporaryDirectory(prefix="ngser-brep-") as tmp:  # private (mode 0700), removed
        path = os.path.join(tmp, "shape.brep")
        with open(path, "wb") as file:
            file.write(brep)
        try:
            shape = cls(path, dim=dim).shape
        except Exception as exc:  # netgen raises its own exception types
            raise StateError(f"netgen could not read its BREP text: {exc}") from None  # the message says it all
    _set_properties(shape, properties, what)
    try:
        return cls(shape, dim=dim)
    except Exception as exc:
        raise StateError(f"netgen could not make it from its BREP shape: {exc}") from None


class GeometrySerializer(Serializer):
    """One netgen geometry class, stored as ``{"data", "version_stored", "version_needed"}`` archive
    bytes, plus ``{"brep", "dim", "properties"}`` for OCC geometries. Trusted only: an untrusted
    load builds a :class:`MissingGeometry` (see the module docstring)."""

    version = 1
    trusted_only = True
    trusted_reason = "its bytes go to NGSolve's archive reader unchecked"

    def __init__(self, cls: type, name: str) -> None:
        self.cls = cls
        self.name = name
        self.types = (cls,)

    def fingerprint(self, obj: Any) -> Any:
        """Checkpoints store a geometry once: nothing changes it once meshes are made from it."""
        return 0

    def dump(self, obj: Any) -> Any:
        state = archive_state(obj, f"the {self.name} geometry")
        if state["children"]:
            state["children"] = list(state["children"])
        else:
            del state["children"]
        if self.name == "netgen.OCCGeometry":
            state.update(_brep_state(obj, state["data"]))
        return state

    def load(self, state: Any) -> Any:
        """The geometry, from its archive bytes or (OCC) its BREP form, in the order the module
        docstring gives; a :class:`MissingGeometry` (with a :class:`GeometryWarning`) when NGSolve
        can rebuild it from neither: the rest of the file still loads."""
        what = f"the {self.name} geometry"
        if not isinstance(state, dict):
            raise StateError(f"the state of {self.name} is not a dict")
        form = _checked_brep(state, what)
        steps = [functools.partial(restore_archive, self.cls, state, what)]
        if form is not None:
            brep = functools.partial(_occ_from_brep, self.cls, form, what)
            steps.insert(0 if _writer_is_newer(state.get("version_stored")) else 1, brep)
        reasons = []
        for step in steps:
            try:
                return step()
            except StateError as exc:
                reasons.append(" ".join(str(exc.__cause__ or exc).split()))
        writer = written_by(state.get("version_stored"))
        reason = "; ".join(reasons)
        warn_geometry(
            f"the {self.name} node could not be rebuilt ({reason}); it was written by "
            f"{writer or 'an unknown netgen version'}, this is netgen {netgen_version()}. The rest of the file "
            "loads: meshes of this geometry have none (curved ones keep the curvature the file stores). "
            "Geometries are NGSolve's own archive bytes and do not load in every NGSolve version"
        )
        return MissingGeometry(self.name, reason, writer)

    def load_untrusted(self, state: Any) -> Any:
        """A :class:`MissingGeometry` with a :class:`GeometryWarning`; nothing from ``state`` reaches NGSolve."""
        writer = written_by(state.get("version_stored")) if isinstance(state, dict) else ""
        warn_geometry(
            f"the {self.name} node was not loaded because the file is not trusted (its bytes go to NGSolve's "
            "archive reader unchecked). The rest of the file loads: meshes of this geometry have none (curved ones "
            "keep the curvature the file stores). Pass trusted=True to ngser.load if you trust where the file came from"
        )
        return MissingGeometry(self.name, "not loaded: the file is not trusted", writer)


def geometry_serializers() -> list[Serializer]:
    """A serializer for every geometry class the installed netgen has."""
    return [GeometrySerializer(cls, name) for cls, name in _classes().items()]
