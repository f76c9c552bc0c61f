"""CoefficientFunction trees, node by node, and Parameters.

Every node of a tree is its own graph node: its children (sub-expressions, GridFunctions,
spaces, Parameters) are graph references, so anything shared is stored once and loads as one
object; the node's own parameters are the bytes NGSolve exposes for it (``cf.data``), rebuilt
with ``CoefficientFunction(data)``. Parameters are stored by value and stay Parameters (and
shared: changing one after loading changes every tree that uses it).
"""

from __future__ import annotations

from typing import Any

import ngsolve.fem as fem

from ...errors import StateError, UnsupportedTypeError
from ..base import Serializer
from .native import check_bytes

__all__ = ["CoefficientFunctionSerializer", "ParameterSerializer"]

_HINT = (
    "NGSolve has no stored form for it (trial and test functions, specialcf.normal, tangential, mesh_size, "
    "JacobianMatrix and other geometry-bound nodes). Save the GridFunctions and Parameters the expression is built "
    "from and build the expression again after loading."
)


def describe(cf: Any) -> str:
    """A short name of a CoefficientFunction node for messages: class and first line of its text."""
    try:
        text = str(cf).strip().splitlines()[0].strip()
    except Exception:
        text = ""
    if len(text) > 80:
        text = text[:77] + "..."
    kind = type(cf).__name__
    return f"{kind} node {text!r}" if text else f"{kind} node"


def _is_gridfunction_node(cf: Any) -> bool:
    """Whether ``cf`` is a ``GridFunctionCoefficientFunction`` node (``grad(gfu)``, ``gfu.Trace()``)."""
    import ngsolve.comp as comp

    cls = getattr(comp, "GridFunctionCoefficientFunction", None)
    return cls is not None and isinstance(cf, cls)


class CoefficientFunctionSerializer(Serializer):
    """``ngsolve.CoefficientFunction``: ``{"children", "data", "version_stored", "version_needed"}``.

    ``children`` are references (other nodes, GridFunctions, spaces, Parameters); the three byte
    strings are NGSolve's archive of the node's own parameters and are version-bound.
    """

    name = "ngsolve.CoefficientFunction"
    version = 1
    types = (fem.CoefficientFunction,)
    subclasses = True

    def dump(self, obj: Any) -> Any:
        try:
            data = obj.data
        except Exception as exc:
            raise UnsupportedTypeError(f"cannot save the CoefficientFunction {describe(obj)}: {exc}. {_HINT}") from exc
        if _is_gridfunction_node(obj) and any(child is None for child in data["childs"]):
            # Older NGSolve (6.2.2501) archives gfu.Trace() without the GridFunction it evaluates:
            # the rebuilt node would dereference nothing and crash the process when evaluated.
            raise UnsupportedTypeError(
                f"cannot save the CoefficientFunction {describe(obj)}: this NGSolve stores it without the "
                "GridFunction it evaluates (its archive has an empty child), and the rebuilt node would crash "
                "when evaluated. Save the GridFunction and build the expression (e.g. gfu.Trace()) again after "
                "loading, or use a newer NGSolve"
            )
        return {
            "children": list(data["childs"]),
            "data": bytes(data["data"]),
            "version_stored": bytes(data["version_stored"]),
            "version_needed": bytes(data["version_needed"]),
        }

    def load(self, state: Any) -> Any:
        if not isinstance(state, dict):
            raise StateError("the state of ngsolve.CoefficientFunction is not a dict")
        check_bytes(state, "a CoefficientFunction node")
        data = {
            "childs": list(state.get("children", [])),
            "data": bytes(state["data"]),
            "version_stored": bytes(state["version_stored"]),
            "version_needed": bytes(state["version_needed"]),
        }
        try:
            return fem.CoefficientFunction(data)
        except Exception as exc:
            raise StateError(
                f"NGSolve could not rebuild a CoefficientFunction node from its stored bytes: {exc}. These bytes are "
                "bound to the NGSolve version that wrote them; load the file with that version"
            ) from exc


class ParameterSerializer(Serializer):
    """``ngsolve.Parameter``: ``{"value"}`` (a float for ``Parameter``, a complex for ``ParameterC``)."""

    name = "ngsolve.Parameter"
    version = 1
    types = (fem.Parameter, fem.ParameterC)

    def dump(self, obj: Any) -> Any:
        value = obj.Get()
        return {"value": complex(value) if isinstance(obj, fem.ParameterC) else float(value)}

    def load(self, state: Any) -> Any:
        value = state.get("value") if isinstance(state, dict) else None
        if isinstance(value, complex):
            return fem.ParameterC(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return fem.Parameter(float(value))
        raise StateError(f"the state of ngsolve.Parameter has no numeric value (got {type(value).__name__})")
