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

from ...errors import NgserWarning

if TYPE_CHECKING:
    from ..base import Serializer
    from ..registry import Registry

__all__ = ["GeometryWarning", "refusals", "register_all", "serializers", "warn_geometry"]


class GeometryWarning(NgserWarning):
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
    from .linalg import linalg_serializers
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
        *linalg_serializers(),  # last: it ends with the fallback that matches every BaseMatrix
    ]


_NO_INTEGRANDS = (
    "NGSolve gives Python no access to the integrands of a form (its integrators expose no coefficient and no "
    "measure), so nothing that rebuilds it can be stored; NGSolve's own pickle cannot store it either. "
)
_NO_MEASURE = (
    "NGSolve gives Python no access to the options of a measure (region, element_vb, skeleton, bonus_intorder, "
    "deformation), so an integral cannot be stored. "
)


def refusals() -> list[tuple[type, str]]:
    """NGSolve classes known not to be serializable, with why and what to save instead (the error
    a user gets, instead of the advice to register a serializer)."""
    import ngsolve.comp as comp
    import ngsolve.fem as fem

    integrand = (
        "Save the integrand (a CoefficientFunction, trial and test functions excepted) and build it again in code"
    )
    return [
        (
            comp.BilinearForm,
            _NO_INTEGRANDS + "Save the assembled matrix a.mat and the space, and build the form again "
            "in code after loading.",
        ),
        (
            comp.LinearForm,
            _NO_INTEGRANDS + "Save the assembled vector f.vec and the space, and build the form again "
            "in code after loading.",
        ),
        (fem.BFI, _NO_INTEGRANDS + integrand + "."),
        (fem.LFI, _NO_INTEGRANDS + integrand + "."),
        (comp.SumOfIntegrals, _NO_MEASURE + integrand + "."),
        (comp.Integral, _NO_MEASURE + integrand + "."),
        (comp.DifferentialSymbol, _NO_MEASURE + "Build dx/ds again in code after loading."),
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
    for cls, reason in refusals():
        registry.refuse(cls, reason)
