"""Vectors: ``BaseVector`` (``gfu.vec``), ``BlockVector`` and ``MultiVector``.

- ``ngsolve.BaseVector``: either ``{"gridfunction": ref, "index": i}``, a vector of a
  GridFunction saved in the same call (loaded as ``gridfunction.vecs[i]``: the same memory, not
  a copy), or ``{"size": n, "entrysize": k, "values": array}`` with ``n * k`` float64 or
  complex128 values.
- ``ngsolve.BlockVector``: ``{"blocks": [refs to vectors]}``.
- ``ngsolve.MultiVector``: ``{"size": n, "entrysize": k, "values": array of shape (m, n * k)}``.

A vector is recognised as a GridFunction's when that GridFunction is met in the same
``ngser.dump(s)`` call (or pickling call, through the shim) no later than the vector's own state
is written: ``[gfu, gfu.vec]``, ``[gfu.vec, gfu]`` and ``{"u": gfu, "v": gfu.vec}`` all are.
Otherwise (the GridFunction only deeper inside objects saved after the vector) the vector is
stored as values and loads as a copy.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import ngsolve.la as la
import numpy as np

from ...errors import StateError, shown
from ..base import Serializer
from ._checks import int_in, require_dict
from .identity import vector_key, vector_owner

__all__ = ["BaseVectorSerializer", "BlockVectorSerializer", "MultiVectorSerializer"]

#: Far beyond NGSolve's entry sizes (the dimension of a vector-valued H1 space and the like).
_MAX_ENTRYSIZE = 10_000
#: Vectors of size 0 a MultiVector may hold (their rows take no room in the file).
_MAX_EMPTY = 10_000


class SavedVector:
    """Encoder stand-in for a ``BaseVector``: the vector and the pass's identity cache, which
    :meth:`BaseVectorSerializer.dump` consults for the vector's GridFunction. One per vector and
    pass, so that every wrapper of one vector becomes one node."""

    __slots__ = ("__weakref__", "cache", "vector")

    def __init__(self, vector: Any, cache: MutableMapping[Any, Any]) -> None:
        self.vector = vector
        self.cache = cache


def _values(vec: Any) -> tuple[int, int, np.ndarray[Any, Any]]:
    """``(size, entrysize, values view)`` of a vector."""
    values = vec.FV().NumPy()
    size = len(vec)
    entrysize = values.size // size if size else 1
    return size, entrysize, values


def _layout(state: dict[str, Any], what: str, rows: bool) -> tuple[int, int, np.ndarray[Any, Any]]:
    """The checked ``size``, ``entrysize`` and ``values`` of a vector state (``rows``: one row per vector)."""
    values = state.get("values")
    ndim = 2 if rows else 1
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "fc" or values.ndim != ndim:
        raise StateError(f"{what}: values must be a {ndim}-dimensional float or complex array, not {shown(values)}")
    width = values.shape[-1]
    entrysize = int_in(state.get("entrysize", 1), 1, _MAX_ENTRYSIZE, f"{what}: entrysize")
    size = int_in(state.get("size", width // entrysize), 0, width, f"{what}: size")
    if size * entrysize != width:
        raise StateError(f"{what}: {width} values per vector do not make {size} entries of {entrysize}")
    return size, entrysize, values


def _new_vector(size: int, entrysize: int, values: np.ndarray[Any, Any]) -> Any:
    vec = la.BaseVector(size, complex=values.dtype.kind == "c", entrysize=entrysize)
    if size:
        vec.FV().NumPy()[:] = values
    return vec


class BaseVectorSerializer(Serializer):
    """``ngsolve.BaseVector``: a GridFunction's vector (a reference) or the values of a vector of its own."""

    name = "ngsolve.BaseVector"
    version = 1
    types = (la.BaseVector, SavedVector)

    def canonical(self, obj: Any, cache: MutableMapping[Any, Any]) -> Any:
        """Encoder hook: the pass's one :class:`SavedVector` for ``obj``'s memory."""
        if isinstance(obj, SavedVector):
            return obj
        key = vector_key(obj)
        if key is None:
            return SavedVector(obj, cache)
        slot = ("ngsolve.BaseVector", *key)
        found = cache.get(slot)
        if found is None or vector_key(found.vector) != key:  # new, or a stale entry of the shim's cache
            found = cache[slot] = SavedVector(obj, cache)
        return found

    def dump(self, obj: Any) -> Any:
        saved = obj if isinstance(obj, SavedVector) else SavedVector(obj, {})
        vec = saved.vector
        owner = vector_owner(vec, saved.cache)
        if owner is not None:
            return {"gridfunction": owner[0], "index": owner[1]}
        size, entrysize, values = _values(vec)
        return {"size": size, "entrysize": entrysize, "values": values}

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        if "gridfunction" in state:
            import ngsolve.comp as comp

            gf = state["gridfunction"]
            if not isinstance(gf, comp.GridFunction):
                raise StateError(f"{self.name}: 'gridfunction' must refer to a GridFunction, not {shown(gf)}")
            vecs = gf.vecs
            index = int_in(state.get("index"), 0, len(vecs) - 1, f"{self.name}: the index of the GridFunction's vector")
            return vecs[index]
        return _new_vector(*_layout(state, self.name, rows=False))


class BlockVectorSerializer(Serializer):
    """``ngsolve.BlockVector``: its blocks (references to vectors, shared with whatever else holds them)."""

    name = "ngsolve.BlockVector"
    version = 1
    types = (la.BlockVector,)

    def dump(self, obj: Any) -> Any:
        return {"blocks": [obj[i] for i in range(obj.nblocks)]}

    def load(self, state: Any) -> Any:
        blocks = require_dict(state, self.name).get("blocks")
        if type(blocks) is not list or not blocks or not all(isinstance(b, la.BaseVector) for b in blocks):
            raise StateError(f"{self.name}: blocks must be a non-empty list of vectors, not {shown(blocks)}")
        return la.BlockVector(blocks)


class MultiVectorSerializer(Serializer):
    """``ngsolve.MultiVector``: the values of its vectors, one row each."""

    name = "ngsolve.MultiVector"
    version = 1
    types = (la.MultiVector,)

    def dump(self, obj: Any) -> Any:
        if not len(obj):  # NGSolve exposes no vector size of an empty MultiVector (pickle loses it too)
            return {"size": 0, "entrysize": 1, "values": np.zeros((0, 0))}
        size, entrysize, first = _values(obj[0])
        values = np.empty((len(obj), first.size), dtype=first.dtype)
        for i in range(len(obj)):
            values[i] = obj[i].FV().NumPy()
        return {"size": size, "entrysize": entrysize, "values": values}

    def load(self, state: Any) -> Any:
        size, entrysize, values = _layout(require_dict(state, self.name), self.name, rows=True)
        if size == 0 and len(values) > _MAX_EMPTY:  # nothing in the file pays for these vectors
            raise StateError(f"{self.name}: {len(values)} vectors of no values; at most {_MAX_EMPTY} are loaded")
        mv = la.MultiVector(_new_vector(size, entrysize, np.zeros(size * entrysize, values.dtype)), len(values))
        for i, row in enumerate(values):
            mv[i].FV().NumPy()[:] = row
        return mv
