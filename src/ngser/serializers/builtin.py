"""Serializers that ship with ngser: the cloudpickle fallback and a few standard types.

``bytearray`` (mutable, so stored as a shared node like any object),
``collections.OrderedDict``, ``collections.deque``, ``range`` and ``slice``.
"""

from __future__ import annotations

import collections
from typing import Any

from .base import Serializer
from .registry import Registry

__all__ = ["CloudpickleSerializer", "CLOUDPICKLE", "STANDARD", "register_all"]


class CloudpickleSerializer(Serializer):
    """Stores an object that has no serializer as cloudpickle bytes.

    Used for ``save(..., fallback="cloudpickle")``. Its nodes are ``trusted_only``:
    building them runs code from the file, so loading refuses them unless
    ``trusted=True``. Objects inside the pickled object are not shared with the rest
    of the graph.
    """

    name = "ngser.cloudpickle"
    version = 1
    trusted_only = True

    def dump(self, obj: Any) -> dict[str, Any]:
        import cloudpickle

        return {
            "type": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "pickle": cloudpickle.dumps(obj, protocol=5),
        }

    def load(self, state: Any) -> Any:
        import pickle

        return pickle.loads(state["pickle"])


CLOUDPICKLE = CloudpickleSerializer()


class _Standard(Serializer):
    """A standard-library type rebuilt from one constructor argument list."""

    def __init__(self, cls: type, name: str, dump: Any, load: Any) -> None:
        self.name = name
        self.types = (cls,)
        self._dump, self._load = dump, load

    def dump(self, obj: Any) -> Any:
        return self._dump(obj)

    def load(self, state: Any) -> Any:
        return self._load(state)


class _Mutable(Serializer):
    """A mutable standard container: created empty, then filled (so cycles through it work)."""

    def __init__(self, cls: type, name: str, dump: Any, fill: Any) -> None:
        self.name = name
        self.types = (cls,)
        self._cls, self._dump, self._fill = cls, dump, fill

    def dump(self, obj: Any) -> Any:
        return self._dump(obj)

    def create(self) -> Any:
        return self._cls()

    def fill(self, obj: Any, state: Any) -> None:
        self._fill(obj, state)


STANDARD: tuple[Serializer, ...] = (
    _Mutable(bytearray, "builtins.bytearray", bytes, lambda obj, state: obj.extend(state)),
    _Mutable(
        collections.OrderedDict,
        "collections.OrderedDict",
        lambda d: list(d.items()),
        lambda obj, state: obj.update(state),
    ),
    _Mutable(
        collections.deque,
        "collections.deque",
        lambda d: {"items": list(d), "maxlen": d.maxlen},
        lambda obj, state: obj.__init__(state["items"], state["maxlen"]),
    ),
    _Standard(range, "builtins.range", lambda r: (r.start, r.stop, r.step), lambda s: range(*s)),
    _Standard(slice, "builtins.slice", lambda r: (r.start, r.stop, r.step), lambda s: slice(*s)),
)


def register_all(registry: Registry) -> None:
    """Register the ``ngser.*`` names and the standard types (run by the registry on first need)."""
    # No types: the fallback is found by name when loading, never chosen for an object.
    registry.add(CLOUDPICKLE, replace=True)
    for serializer in STANDARD:
        registry.add(serializer, replace=True)
