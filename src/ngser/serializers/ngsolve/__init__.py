"""Serializers for NGSolve and netgen objects.

``import ngser`` never imports NGSolve: the registry calls :func:`register_all` the first time
an NGSolve/netgen/pyngcore object is saved or an ``ngsolve.*``/``netgen.*`` type name is
loaded. Importing this package imports NGSolve. See ``docs/ngsolve.md`` for the stored layout.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..base import Serializer
    from ..registry import Registry

__all__ = ["GeometryWarning", "register_all", "serializers", "warn_geometry"]


class GeometryWarning(UserWarning):
    """A file's geometry was not loaded (the file is not trusted, it was written by another NGSolve
    version, or its bytes are damaged): the rest of the file loaded and the meshes of that geometry
    have none (curved ones are curved by the curvature their file stores). Defined here so that it
    can be filtered without importing NGSolve: ``warnings.simplefilter("error", GeometryWarning)``
    turns it into an error.
    """


_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def warn_geometry(message: str) -> None:
    """Warn with a :class:`GeometryWarning` attributed to the caller's line that called into ngser
    (``ngser.load(...)``), not to the decoder frame that happened to build the node."""
    level, frame = 2, sys._getframe(1)  # 1 would be this function
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, GeometryWarning, stacklevel=level)


def serializers() -> list[Serializer]:
    """Fresh instances of every NGSolve serializer, most specific first (subclass matching is ordered)."""
    from .coefficients import (
        CoefficientFunctionSerializer,
        NativeCoefficientFunctionSerializer,
        ParameterSerializer,
    )
    from .geometry import geometry_serializers
    from .gridfunction import ComponentGridFunctionSerializer, GridFunctionSerializer
    from .mesh import MeshSerializer, NetgenMeshSerializer
    from .sets import BitArraySerializer, RegionSerializer
    from .spaces import space_serializers
    from .vectors import BaseVectorSerializer, BlockVectorSerializer, MultiVectorSerializer

    return [
        NetgenMeshSerializer(),
        MeshSerializer(),
        *geometry_serializers(),
        *space_serializers(),
        ComponentGridFunctionSerializer(),
        GridFunctionSerializer(),
        ParameterSerializer(),
        BitArraySerializer(),
        RegionSerializer(),
        BlockVectorSerializer(),
        BaseVectorSerializer(),
        MultiVectorSerializer(),
        NativeCoefficientFunctionSerializer(),
        CoefficientFunctionSerializer(),  # last: it matches every CoefficientFunction subclass
    ]


def register_all(registry: Registry) -> None:
    """Add every NGSolve serializer to ``registry``.

    Names already registered are left alone, so calling it again changes nothing and a
    serializer the user registered under one of these names beforehand wins.
    """
    known = set(registry.names())
    for serializer in serializers():
        if serializer.name not in known:
            registry.add(serializer)
