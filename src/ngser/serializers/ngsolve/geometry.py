"""Geometries (OCC, 2D spline, CSG, STL) as NGSolve's own archive bytes.

netgen exposes no structured description of a geometry through Python, so a geometry node
holds the bytes of NGSolve's own pickling (an OCC geometry embeds its BRep text). They are
version-bound: see :mod:`.native`. The geometry is its own shared node, so several meshes of
one geometry store it once.

Geometries are optional on load: when NGSolve refuses a geometry's bytes (written by another
NGSolve version: an OCC geometry of 6.2.2608 does not load in 6.2.2501) or they are damaged,
the node loads as a :class:`MissingGeometry` placeholder with a
:class:`~ngser.serializers.ngsolve.GeometryWarning`, and the meshes that refer to it load
without a geometry (a curved one straight, with a second warning).
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from ...errors import StateError
from ..base import Serializer
from . import GeometryWarning
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
    a geometry. ``name`` is the node's type name, ``reason`` why NGSolve refused it, ``written_by``
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
    warnings.warn(
        f"a netgen.Mesh of curve order {order} was loaded without its {name} node (see the GeometryWarning "
        "about it): netgen curves a mesh from its geometry, so its elements are straight and integrals over "
        "curved boundaries and volumes differ from the saved mesh's",
        GeometryWarning,
        stacklevel=2,
    )


def warn_cannot_curve(order: int) -> None:
    """Warn that a mesh of curve order ``order`` loads straight because this netgen cannot curve
    rebuilt meshes (see :func:`._compat.curves_rebuilt_meshes`)."""
    warnings.warn(
        f"a netgen.Mesh of curve order {order} was loaded straight: this netgen ({netgen_version()}) curves "
        "meshes from geometry data on each boundary segment that ngser does not store, and curving the rebuilt "
        "mesh would give wrong elements or crash. Integrals over curved boundaries and volumes differ from the "
        "saved mesh's; a newer NGSolve (6.2.2608) curves the same file correctly",
        GeometryWarning,
        stacklevel=2,
    )


class GeometrySerializer(Serializer):
    """One netgen geometry class, stored as ``{"data", "version_stored", "version_needed"}`` archive bytes."""

    version = 1

    def __init__(self, cls: type, name: str) -> None:
        self.cls = cls
        self.name = name
        self.types = (cls,)

    def dump(self, obj: Any) -> Any:
        state = archive_state(obj, f"the {self.name} geometry")
        if state["children"]:
            state["children"] = list(state["children"])
        else:
            del state["children"]
        return state

    def load(self, state: Any) -> Any:
        """The geometry, or a :class:`MissingGeometry` (with a :class:`GeometryWarning`) when
        NGSolve cannot rebuild it from its bytes: the rest of the file still loads."""
        if not isinstance(state, dict):
            raise StateError(f"the state of {self.name} is not a dict")
        try:
            return restore_archive(self.cls, state, f"the {self.name} geometry")
        except StateError as exc:
            writer = written_by(state.get("version_stored"))
            reason = " ".join(str(exc.__cause__ or exc).split())
            warnings.warn(
                f"the {self.name} node could not be rebuilt ({reason}); it was written by "
                f"{writer or 'an unknown netgen version'}, this is netgen {netgen_version()}. The rest of the file "
                "loads: meshes of this geometry have no geometry (curved ones are straight). Geometries are "
                "NGSolve's own archive bytes and do not load in every NGSolve version",
                GeometryWarning,
                stacklevel=2,
            )
            return MissingGeometry(self.name, reason, writer)


def geometry_serializers() -> list[Serializer]:
    """A serializer for every geometry class the installed netgen has."""
    return [GeometrySerializer(cls, name) for cls, name in _classes().items()]
