"""Wrapper identity: one NGSolve C++ object, one graph node.

NGSolve hands out a *different* Python wrapper for the same C++ GridFunction when it is reached
through a CoefficientFunction tree (``GridFunctionD``), ``grad(gfu)`` or a component's parent,
while the user holds a ``GridFunction``. The encoder memoizes by ``id(obj)``, so without help
both wrappers would become separate nodes and load as two GridFunctions.

All wrappers of one GridFunction share its vector memory, so ``(vector data pointer, size,
dtype, component or not)`` identifies the C++ object while any wrapper of it is alive (a
component's vector starts at its parent's address: the size and kind tell them apart).

The encoder calls ``Serializer.canonical(obj, cache)`` for every object it has not met before,
with one ``cache`` dict per encoding pass: :func:`canonical` makes the first wrapper met in a pass
the one that stands for its C++ GridFunction, whatever the order. The encoder keeps every wrapper
alive for the pass, so an address cannot be freed and reused by another object meanwhile.
"""

from __future__ import annotations

from typing import Any

import ngsolve.comp as comp

__all__ = ["canonical", "gridfunction_key"]

Key = tuple[str, int, int, str]


def gridfunction_key(gf: Any) -> Key | None:
    """``(kind, data pointer, size, dtype)`` of a GridFunction's first vector, or None when it has none."""
    try:
        arr = gf.vec.FV().NumPy()
    except Exception:
        return None
    if arr.size == 0:
        return None
    kind = "component" if isinstance(gf, comp.ComponentGridFunction) else "gridfunction"
    return (kind, int(arr.__array_interface__["data"][0]), int(arr.size), arr.dtype.str)


def canonical(obj: Any, cache: dict[Any, Any]) -> Any:
    """The wrapper that stands for ``obj``'s C++ GridFunction in this pass (``obj`` for other objects)."""
    if not isinstance(obj, comp.GridFunction):
        return obj
    key = gridfunction_key(obj)
    if key is None:
        return obj
    return cache.setdefault(("ngsolve.GridFunction", *key), obj)
