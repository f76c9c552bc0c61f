"""Geometries (OCC, 2D spline, CSG, STL) as NGSolve's own archive bytes.

netgen exposes no structured description of a geometry through Python, so a geometry node
holds the bytes of NGSolve's own pickling (an OCC geometry embeds its BRep text). They are
version-bound: see :mod:`.native`. The geometry is its own shared node, so several meshes of
one geometry store it once.
"""

from __future__ import annotations

import importlib
from typing import Any

from ...errors import StateError
from ..base import Serializer
from .native import archive_state, restore_archive

__all__ = ["geometry_serializers", "is_real_geometry"]

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
        if not isinstance(state, dict):
            raise StateError(f"the state of {self.name} is not a dict")
        return restore_archive(self.cls, state, f"the {self.name} geometry")


def geometry_serializers() -> list[Serializer]:
    """A serializer for every geometry class the installed netgen has."""
    return [GeometrySerializer(cls, name) for cls, name in _classes().items()]
