"""Every HDF5 path the HDF5 backend uses, built in one place.

The fixed part of the layout (see ``docs/format.md``)::

    /ngser                 group, attributes format, ngser, writers, crc32
    /ngser/graph           uint8: msgpack document {"root", "states", "arrays"}
    /ngser/nodes/id        int64 (n,): node ids, in table order
    /ngser/nodes/type      uint32 (n,): index into /ngser/types
    /ngser/nodes/version   int64 (n,): serializer versions
    /ngser/types           fixed-width UTF-8 strings: the distinct type names
    /ngser/packed          uint8: the bytes of the small arrays, back to back (if any)
    /arrays/...            one dataset per large (or named) array

Array datasets get readable paths from :class:`ArrayPaths`:
``/arrays/<type>_<owner id>/<key>`` for an array labelled ``<type>/<key>`` found in the
state of object ``<owner id>`` (``/arrays/ngsolve.Mesh_0/points``), ``/arrays/array_<id>``
for an unlabelled array, ``/arrays/<type>_<key>`` when the owner is not found. A name
already taken gets ``~<array id>`` appended. ``%`` and ``/`` in names are written ``%25``
and ``%2F``; a name ``.`` is written ``%2E``.

>>> paths = ArrayPaths(graph.nodes)
>>> paths.path_for(graph.arrays[0])
'/arrays/ngsolve.Mesh_0/points'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..graph import ArrayNode, ObjectNode, PairsDict, Ref

__all__ = [
    "GROUP",
    "GRAPH",
    "NODE_IDS",
    "NODE_TYPES",
    "NODE_VERSIONS",
    "TYPES",
    "PACKED",
    "ARRAYS",
    "ArrayPaths",
    "quote_name",
]

GROUP = "/ngser"
GRAPH = f"{GROUP}/graph"
NODE_IDS = f"{GROUP}/nodes/id"
NODE_TYPES = f"{GROUP}/nodes/type"
NODE_VERSIONS = f"{GROUP}/nodes/version"
TYPES = f"{GROUP}/types"
PACKED = f"{GROUP}/packed"
ARRAYS = "/arrays"

#: How many earlier objects of the label's type are searched for an array's owner.
_OWNER_CANDIDATES = 16


def quote_name(name: str) -> str:
    """``name`` as one HDF5 link name: no ``/``, never ``.`` or empty."""
    name = name.replace("%", "%25").replace("/", "%2F")
    if name in ("", "."):
        return "%2E" if name == "." else "%00"
    return name


class ArrayPaths:
    """Hands out unique, readable dataset paths for the arrays of one graph."""

    def __init__(self, nodes: list[ObjectNode]) -> None:
        self._by_name: dict[str, list[ObjectNode]] = {}
        for node in nodes:
            self._by_name.setdefault(node.name, []).append(node)
        self._used: dict[str, set[str]] = {}  # group name ("" for /arrays) -> names taken in it
        self._groups: dict[str, str] = {}  # owner group name -> the name it got

    def path_for(self, array: ArrayNode) -> str:
        """The dataset path of ``array`` (each call reserves the path it returns)."""
        label = array.label
        if label:
            type_name, _, key = label.partition("/")
            if not type_name:  # an array under a key of the root dict
                return self._claim(None, quote_name(key), array.id)
            owner = self._owner(type_name, key, array.id)
            if owner is not None:
                return self._claim(f"{quote_name(type_name)}_{owner}", quote_name(key), array.id)
            return self._claim(None, f"{quote_name(type_name)}_{quote_name(key)}", array.id)
        return self._claim(None, f"array_{array.id}", array.id)

    def _claim(self, group: str | None, name: str, array_id: int) -> str:
        top = self._used.setdefault("", set())
        if group is None:
            if name in top:
                name = f"{name}~{array_id}"
            top.add(name)
            return f"{ARRAYS}/{name}"
        resolved = self._groups.get(group)
        if resolved is None:  # a new owner group; its name may be taken by a dataset
            resolved = group if group not in top else f"{group}~{array_id}"
            self._groups[group] = resolved
            top.add(resolved)
        used = self._used.setdefault(resolved, set())
        if name in used:
            name = f"{name}~{array_id}"
        used.add(name)
        return f"{ARRAYS}/{resolved}/{name}"

    def _owner(self, type_name: str, key: str, array_id: int) -> int | None:
        """The id of the object of ``type_name`` whose state holds the array under ``key``.

        The owner got its id before the array did, so only earlier ids are searched,
        nearest first; a direct ``state[key]`` hit is checked before a deep search.
        """
        candidates = [node for node in self._by_name.get(type_name, ()) if node.id < array_id]
        candidates.sort(key=lambda node: node.id, reverse=True)
        candidates = candidates[:_OWNER_CANDIDATES]
        for node in candidates:
            state = node.state
            if type(state) is dict and state.get(key) == Ref(array_id):
                return node.id
        for node in candidates:
            if _holds(node.state, key, array_id, 0):
                return node.id
        return None


def _holds(value: Any, key: str, array_id: int, depth: int) -> bool:
    """Whether ``value`` holds ``Ref(array_id)`` under the dict key ``key`` somewhere."""
    if depth > 32:
        return False
    items: Iterable[Any]
    if type(value) is dict:
        if value.get(key) == Ref(array_id):
            return True
        items = value.values()
    elif type(value) is PairsDict:
        items = (v for pair in value.pairs for v in pair)
    elif type(value) in (list, tuple):
        items = value
    else:
        return False
    return any(_holds(item, key, array_id, depth + 1) for item in items)
