"""CoefficientFunction trees, node by node, as structure; Parameters by value.

Every node of a tree is its own graph node (``ngsolve.CF``): its operation (``"binary"`` with
operator ``"*"``, ``"unary"`` with function ``"sin"``, ``"coordinate"`` with axis 0, ...), its
parameters as plain values and its arguments as references, so anything shared (a
GridFunction, a Parameter, a sub-expression) is stored once and loads as one object. Loading
rebuilds each node through NGSolve's Python API (``a * b``, ``sin(a)``, ``IfPos(c, a, b)``,
``CF((a, b), dims=...)``, ``gfu.Operator(name)``) after checking its arguments: nothing from
the file reaches NGSolve's archive reader, and the file does not depend on the NGSolve version.
:mod:`._expression_ops` lists the operations.

A node kind with no structured form yet is stored as NGSolve's own archive bytes
(``ngsolve.CoefficientFunction``, the layout of earlier ngser versions). Those bytes are bound
to the NGSolve version that wrote them and NGSolve's reader trusts them, so they load only with
``trusted=True``. Parameters are stored by value and stay Parameters (and shared: changing one
after loading changes every tree that uses it).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import ngsolve.fem as fem

from ...errors import NgserError, StateError, UnsupportedTypeError, shown
from ..base import Serializer
from ._expression_ops import OPS
from .native import check_bytes
from .structure import describe, structure

__all__ = [
    "CoefficientFunctionSerializer",
    "NativeCoefficientFunction",
    "NativeCoefficientFunctionSerializer",
    "ParameterSerializer",
]


class NativeCoefficientFunction:
    """Stands, while saving, for a CoefficientFunction node with no structured form: it is
    stored as NGSolve's archive bytes (see :class:`NativeCoefficientFunctionSerializer`)."""

    __slots__ = ("cf",)

    def __init__(self, cf: Any) -> None:
        self.cf = cf


class CoefficientFunctionSerializer(Serializer):
    """``ngsolve.CF``: one node of a CoefficientFunction tree as ``{"op", "args", ...parameters}``.

    ``args`` are references to the node's arguments (other nodes, GridFunctions, Parameters);
    the parameters depend on ``op`` (``docs/ngsolve.md`` lists them). Nodes with no structured
    form are stored by :class:`NativeCoefficientFunctionSerializer` instead (trusted-only).
    """

    name = "ngsolve.CF"
    version = 1
    types = (fem.CoefficientFunction,)
    subclasses = True

    def canonical(self, obj: Any, cache: MutableMapping[Any, Any]) -> Any:
        """Encoder hook: a node with no structured form is saved as its archive bytes."""
        return obj if structure(obj) is not None else NativeCoefficientFunction(obj)

    def dump(self, obj: Any) -> Any:
        state = structure(obj)
        if state is None:  # canonical() sent it to the native serializer; reached only when called directly
            raise UnsupportedTypeError(f"the CoefficientFunction {describe(obj)} has no structured form")
        return state

    def load(self, state: Any) -> Any:
        if type(state) is not dict:
            raise StateError(f"the state of ngsolve.CF must be a dict, not {type(state).__name__}")
        name = state.get("op")
        op = OPS.get(name) if isinstance(name, str) else None
        if op is None:
            raise StateError(
                f"the state of ngsolve.CF names an unknown operation {shown(state.get('op'))}; this file needs a "
                "newer ngser, or it is damaged"
            )
        args = state.get("args", [])
        if type(args) is not list or (op.arity is not None and len(args) != op.arity):
            count = "any number of" if op.arity is None else str(op.arity)
            raise StateError(f"an ngsolve.CF {op.name!r} node takes {count} arguments, got {shown(args)}")
        for arg in args:
            if not (isinstance(arg, fem.CoefficientFunction) or (arg is None and op.name == "regions")):
                raise StateError(
                    f"an argument of an ngsolve.CF {op.name!r} node is a {type(arg).__name__}, not a "
                    "CoefficientFunction"
                )
        missing = [key for key in op.params if key not in state]
        if missing:
            raise StateError(f"an ngsolve.CF {op.name!r} node lacks {', '.join(missing)}")
        params = {key: state[key] for key in op.params}
        try:
            return op.build(args, params)
        except NgserError:
            raise
        except Exception as exc:  # NGSolve's own refusal (an NgException)
            raise StateError(f"NGSolve refused to build an ngsolve.CF {op.name!r} node: {exc}") from exc


class NativeCoefficientFunctionSerializer(Serializer):
    """``ngsolve.CoefficientFunction``: a node as NGSolve's archive, ``{"children", "data",
    "version_stored", "version_needed"}``; trusted-only (NGSolve's reader trusts the bytes).

    ``children`` are references (other nodes, GridFunctions, spaces, Parameters); the three byte
    strings are NGSolve's archive of the node's own fields and are version-bound.
    """

    name = "ngsolve.CoefficientFunction"
    version = 1
    types = (NativeCoefficientFunction,)
    trusted_only = True
    trusted_reason = (
        "it holds NGSolve's own archive bytes of a CoefficientFunction node, which NGSolve's archive reader trusts "
        "(crafted bytes can crash the process)"
    )

    def dump(self, obj: Any) -> Any:
        cf = obj.cf
        try:
            data = cf.data
        except Exception as exc:
            raise UnsupportedTypeError(f"cannot save the CoefficientFunction {describe(cf)}: {exc}") from exc
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
