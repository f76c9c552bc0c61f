"""Serializers that ship with ngser: the cloudpickle fallback and a few standard types.

``bytearray`` (mutable, so stored as a shared node like any object),
``collections.OrderedDict``, ``collections.deque``, ``range`` and ``slice``.
"""

from __future__ import annotations

import collections
import sys
from typing import Any

from ..errors import StateError, shown
from ..graph import check_hash_spread
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


# Every fill and load checks the state's types first: a state comes from a file, and handing
# constructors whatever it holds would let a 200-byte file ask for work without end
# (deque(range(10**18), maxlen=0)) or for gigabytes (bytearray(10**12)).
def _fill_bytearray(obj: bytearray, state: Any) -> None:
    if type(state) is not bytes:
        raise StateError(f"a builtins.bytearray state must be bytes, not {type(state).__name__}")
    obj.extend(state)


def _fill_ordered_dict(obj: collections.OrderedDict[Any, Any], state: Any) -> None:
    if type(state) is not list or not all(type(pair) is tuple and len(pair) == 2 for pair in state):
        raise StateError("a collections.OrderedDict state must be a list of (key, value) tuples")
    check_hash_spread((key for key, _ in state), "a collections.OrderedDict state")
    try:
        obj.update(state)
    except TypeError as exc:  # an unhashable key
        raise StateError(f"a collections.OrderedDict state has an unusable key: {exc}") from exc


def _fill_deque(obj: collections.deque[Any], state: Any) -> None:
    items = state.get("items") if type(state) is dict else None
    maxlen = state.get("maxlen") if type(state) is dict else None
    if type(items) is not list or not (maxlen is None or (type(maxlen) is int and 0 <= maxlen <= sys.maxsize)):
        if type(state) is not dict:
            got = f"a value of type {type(state).__name__}"
        else:
            got = f"items of type {type(items).__name__}" if type(items) is not list else f"maxlen={shown(maxlen)}"
        raise StateError(
            "a collections.deque state must be {'items': list, 'maxlen': None or an int from 0 to sys.maxsize}, "
            f"not {got}"
        )
    obj.__init__(items, maxlen)  # type: ignore[misc]


def _three(state: Any, what: str, allowed: tuple[type, ...]) -> tuple[Any, Any, Any]:
    if type(state) is not tuple or len(state) != 3 or not all(type(x) in allowed for x in state):
        names = " or ".join(t.__name__ if t is not type(None) else "None" for t in allowed)
        raise StateError(f"a {what} state must be a tuple of three values, each {names}")
    return state


def _load_range(state: Any) -> range:
    start, stop, step = _three(state, "builtins.range", (int,))
    if step == 0:
        raise StateError("a builtins.range state has step 0")
    return range(start, stop, step)


def _load_slice(state: Any) -> slice:
    if type(state) is not tuple or len(state) != 3:
        raise StateError("a builtins.slice state must be a tuple of three values (start, stop, step)")
    return slice(*state)


STANDARD: tuple[Serializer, ...] = (
    _Mutable(bytearray, "builtins.bytearray", bytes, _fill_bytearray),
    _Mutable(collections.OrderedDict, "collections.OrderedDict", lambda d: list(d.items()), _fill_ordered_dict),
    _Mutable(collections.deque, "collections.deque", lambda d: {"items": list(d), "maxlen": d.maxlen}, _fill_deque),
    _Standard(range, "builtins.range", lambda r: (r.start, r.stop, r.step), _load_range),
    _Standard(slice, "builtins.slice", lambda r: (r.start, r.stop, r.step), _load_slice),
)


def register_all(registry: Registry) -> None:
    """Register the ``ngser.*`` names and the standard types (run by the registry on first need)."""
    # No types: the fallback is found by name when loading, never chosen for an object.
    registry.add(CLOUDPICKLE, replace=True)
    from .stored import StoredSerializer

    registry.add(StoredSerializer(), replace=True)
    for serializer in STANDARD:
        registry.add(serializer, replace=True)
