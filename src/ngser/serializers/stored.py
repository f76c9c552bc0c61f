"""References to objects stored elsewhere in the same file (a checkpoint's earlier steps).

A :class:`~ngser.Checkpoint` stores an object that stays the same from step to step (a mesh, a
space) once, as a segment of its own, and puts a :class:`Stored` stand-in in its place in every
later step: its node is ``ngser.Stored`` with the state ``{"segment": n}``. The checkpoint that
loads the step resolves the stand-in (:func:`resolving`) to the object it built from that
segment, so steps loaded from one open checkpoint share it. Outside such a load an
``ngser.Stored`` node is a :class:`~ngser.StateError`: a graph cut out of a checkpoint without
the segments it refers to.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StateError, shown
from .base import Serializer

__all__ = ["Stored", "StoredSerializer", "resolving"]

#: The resolver of the checkpoint load in progress: ``segment number -> object``.
_RESOLVER: contextvars.ContextVar[Callable[[int], Any] | None] = contextvars.ContextVar("ngser_stored", default=None)


class Stored:
    """Stands, in a checkpoint step being saved, for an object stored in segment ``segment``."""

    __slots__ = ("segment",)

    def __init__(self, segment: int) -> None:
        self.segment = segment

    def __repr__(self) -> str:
        return f"Stored(segment={self.segment})"


class StoredSerializer(Serializer):
    """``ngser.Stored``: ``{"segment": n}``, an object stored in segment ``n`` of the same checkpoint."""

    name = "ngser.Stored"
    version = 1
    types = (Stored,)

    def dump(self, obj: Any) -> Any:
        return {"segment": obj.segment}

    def load(self, state: Any) -> Any:
        segment = state.get("segment") if type(state) is dict else None
        if type(segment) is not int or segment < 0:
            raise StateError(f"an ngser.Stored node must name a segment number, not {shown(segment)}")
        resolve = _RESOLVER.get()
        if resolve is None:
            raise StateError(
                "this graph refers to an object stored in another segment of a checkpoint (an ngser.Stored node); "
                "load it through ngser.Checkpoint, which holds that segment"
            )
        return resolve(segment)


@contextlib.contextmanager
def resolving(resolve: Callable[[int], Any]) -> Iterator[None]:
    """Resolve ``ngser.Stored`` nodes with ``resolve(segment)`` while the block runs."""
    token = _RESOLVER.set(resolve)
    try:
        yield
    finally:
        _RESOLVER.reset(token)
