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
alive for the pass, so an address cannot be freed and reused by another object meanwhile. The
pickle shim passes a ``WeakValueDictionary`` that outlives single pickling calls: an entry is
used only while its wrapper is alive and still has the key it was stored under.

:func:`canonical` also files each GridFunction as the owner of its vectors, so that a
``BaseVector`` met in the same pass (``[gfu, gfu.vec]``) is stored as that GridFunction's vector
(:func:`vector_owner`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import ngsolve.comp as comp

__all__ = ["canonical", "gridfunction_key", "vector_key", "vector_owner"]

Key = tuple[str, int, int, str]


def vector_key(vec: Any) -> tuple[int, int, str] | None:
    """``(data pointer, number of values, dtype)`` of a ``BaseVector``, or None when it has no values."""
    try:
        arr = vec.FV().NumPy()
    except Exception:
        return None
    if arr.size == 0:
        return None
    return (int(arr.__array_interface__["data"][0]), int(arr.size), arr.dtype.str)


def gridfunction_key(gf: Any) -> Key | None:
    """``(kind, data pointer, size, dtype)`` of a GridFunction's first vector, or None when it has none."""
    key = vector_key(gf.vec)
    if key is None:
        return None
    kind = "component" if isinstance(gf, comp.ComponentGridFunction) else "gridfunction"
    return (kind, *key)


def canonical(obj: Any, cache: MutableMapping[Any, Any]) -> Any:
    """The wrapper that stands for ``obj``'s C++ GridFunction in this pass (``obj`` for other objects)."""
    if not isinstance(obj, comp.GridFunction):
        return obj
    key = gridfunction_key(obj)
    if key is None:
        return obj
    slot = ("ngsolve.GridFunction", *key)
    found = cache.setdefault(slot, obj)
    if found is not obj and gridfunction_key(found) == key:
        return found
    cache[slot] = obj  # new, or a stale entry of the shim's lasting cache
    for vec in obj.vecs:
        vkey = vector_key(vec)
        if vkey is not None:
            cache.setdefault(("ngsolve.vector-owner", *vkey), obj)
    return obj


def vector_owner(vec: Any, cache: MutableMapping[Any, Any]) -> tuple[Any, int] | None:
    """``(gridfunction, index)`` when ``vec`` is ``gridfunction.vecs[index]`` of a GridFunction met
    in this pass, else None."""
    key = vector_key(vec)
    if key is None:
        return None
    owner = cache.get(("ngsolve.vector-owner", *key))
    if owner is None:
        return None
    for i, candidate in enumerate(owner.vecs):  # checked: the shim's cache outlives single passes
        if vector_key(candidate) == key:
            return owner, i
    return None
