"""The HDF5 layout: every path, storage kind and checksum rule of the HDF5 format, in one place.

The fixed part of the layout (see ``docs/format.md``)::

    /ngser                 group, attributes format, ngser, writers, crc32, header_crc32
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

>>> paths = ArrayPaths(graph)
>>> paths.path_for(graph.arrays[0])
'/arrays/ngsolve.Mesh_0/points'
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from ..graph import ArrayNode, Graph

__all__ = [
    "ROW",
    "KIND_PACKED",
    "KIND_NATIVE",
    "KIND_RAW",
    "graph_crc",
    "header_crc",
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

#: Array storage kinds in the array table: packed bytes (``location``: offset in
#: :data:`PACKED`), a dataset of the array's own dtype, a uint8 dataset of the array's raw
#: bytes (``location``: the dataset's path).
KIND_PACKED, KIND_NATIVE, KIND_RAW = 0, 1, 2
#: The array table's row layout (format version 1).
ROW = ("id", "dtype", "shape", "fortran", "kind", "location", "nbytes", "crc", "label")


def graph_crc(
    doc: Any, ids: np.ndarray[Any, Any], types: np.ndarray[Any, Any], versions: np.ndarray[Any, Any], names: list[str]
) -> int:
    """CRC32 of the graph document, then the node table columns, then the type names joined by NUL."""
    crc = zlib.crc32(doc)
    for column in (ids, types, versions):
        crc = zlib.crc32(np.ascontiguousarray(column).tobytes(), crc)
    return zlib.crc32("\0".join(names).encode("utf-8", "surrogatepass"), crc)


def header_crc(writers: bytes, ngser: bytes) -> int:
    """CRC32 of the header attributes, ``/ngser@header_crc32``: the bytes of ``/ngser@writers``
    (its UTF-8 JSON, as stored), one NUL byte, then the bytes of ``/ngser@ngser`` (the writing
    ngser's version, UTF-8), both without the NUL padding of fixed-width strings. Files of
    ngser 0.1 lack the attribute; readers that do not know it ignore it (format version 1)."""
    return zlib.crc32(ngser, zlib.crc32(b"\0", zlib.crc32(writers)))


def quote_name(name: str) -> str:
    """``name`` as one HDF5 link name: no ``/``, never ``.`` or empty."""
    name = name.replace("%", "%25").replace("/", "%2F")
    if name in ("", "."):
        return "%2E" if name == "." else "%00"
    return name


class ArrayPaths:
    """Hands out unique, readable dataset paths for the arrays of one graph."""

    def __init__(self, graph: Graph) -> None:
        self._owners = graph.array_owners()
        self._used: dict[str, set[str]] = {}  # group name ("" for /arrays) -> names taken in it
        self._groups: dict[str, str] = {}  # owner group name -> the name it got

    def path_for(self, array: ArrayNode) -> str:
        """The dataset path of ``array`` (each call reserves the path it returns)."""
        label = array.label
        if label:
            type_name, _, key = label.partition("/")
            if not type_name:  # an array under a key of the root dict
                return self._claim(None, quote_name(key), array.id)
            owner = self._owners.get(array.id)
            if owner is not None and owner[1] == key:
                return self._claim(f"{quote_name(type_name)}_{owner[0]}", quote_name(key), array.id)
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
