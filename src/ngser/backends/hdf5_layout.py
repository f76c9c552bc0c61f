"""The HDF5 layout: every path, storage kind and checksum rule of the HDF5 format, in one place.

The fixed part of the layout (see ``docs/format.md``)::

    /ngser                 group, attributes format, ngser, writers, crc32, header_crc32
    /ngser/graph           uint8: msgpack document {"root", "states", "arrays"}
    /ngser/nodes/id        int64 (n,): node ids, in table order
    /ngser/nodes/type      uint32 (n,): index into /ngser/types
    /ngser/nodes/version   int64 (n,): serializer versions
    /ngser/types           fixed-width UTF-8 strings: the distinct type names
    /ngser/packed          uint8: the bytes of small arrays beyond the dataset budget (if any)

Everything else is the user's names (:class:`Names`): ``ngser.save({"u": gfu}, "x.h5")``
stores the GridFunction's values at ``/u/values`` and its mesh's points at
``/u/space/mesh/ngmesh/points``, each group marked with the ``type``, ``version`` and ``id``
of the object it stands for. Files of ngser 0.1 kept array datasets under ``/arrays`` with
paths made of type names and node ids; readers take every location from the array table,
so both load.

>>> names = Names(graph, {array.id for array in graph.arrays})
>>> names.path(graph.arrays[0].id)
'/u/values'
"""

from __future__ import annotations

import collections
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..graph import Graph, PairsDict, Ref

__all__ = [
    "ROW",
    "KIND_PACKED",
    "KIND_NATIVE",
    "KIND_RAW",
    "graph_crc",
    "header_crc",
    "GROUP",
    "GRAPH",
    "NODES",
    "NODE_IDS",
    "NODE_TYPES",
    "NODE_VERSIONS",
    "TYPES",
    "PACKED",
    "ARRAYS",
    "MAX_NAME_DEPTH",
    "ROOT_ARRAY",
    "Names",
    "quote_name",
]

GROUP = "/ngser"
GRAPH = f"{GROUP}/graph"
NODES = f"{GROUP}/nodes"
NODE_IDS = f"{NODES}/id"
NODE_TYPES = f"{NODES}/type"
NODE_VERSIONS = f"{NODES}/version"
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
    """``name`` as one HDF5 link name: no ``/`` or NUL, never ``.``, ``..`` or empty, valid UTF-8.

    >>> quote_name("a/b%c"), quote_name(".."), quote_name("")
    ('a%2Fb%25c', '%2E%2E', '%00')
    """
    name = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if name in ("", ".", ".."):
        return name.replace(".", "%2E") or "%00"
    return _utf8(name)


def _utf8(text: str) -> str:
    """``text``, with lone surrogates (of text decoded with ``surrogateescape``) as ``\\udcff``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


#: The name tree goes this many groups deep at most; arrays below get a path under ``/arrays``.
MAX_NAME_DEPTH = 32
#: The name of the dataset of an array that is the root value itself (``ngser.save(array, path)``).
ROOT_ARRAY = "data"
#: Top-level names kept for ngser: its node table, and the ParaView view ``ngser.save(..., vtk=True)``
#: adds; a root dict key ``ngser`` becomes ``ngser~2``.
RESERVED = frozenset({GROUP.lstrip("/"), "VTKHDF"})
_ATOMIC = frozenset({type(None), bool, int, float, complex, str, bytes})
_CONTAINERS = frozenset({list, tuple, set, frozenset})


class Names:
    """The user-name tree of one graph: where each array with a dataset lives, which groups lead
    to them (with the attributes of the objects they stand for), and the hard links that give a
    shared object or array each of its other names.

    Names are the keys of the root dict and the state keys on the way down (the positions in
    lists, tuples and sets, the keys of other dicts as text), each made one HDF5 link name by
    :func:`quote_name`; a name taken twice in one group gets ``~2``, ``~3``, ... appended.
    Objects and arrays are named where a breadth-first walk from the root meets them first, so
    an object gets its shortest path; every later meeting is a hard link to it. Only groups with
    an array dataset somewhere below them exist: small objects without arrays stay in the node
    table alone. ``stored`` holds the ids of the arrays that get datasets.

    >>> names = Names(graph, {3})            # root {"u": Ref(0)}, node 0 {"values": Ref(3)}
    >>> names.path(3), [path for path, _ in names.groups]
    ('/u/values', ['/u'])
    """

    def __init__(self, graph: Graph, stored: set[int]) -> None:
        self._stored = stored
        # the nodes with a stored array below them
        self._nodes: dict[int, tuple[str, int, Any]] = _leading_to(graph, stored) if stored else {}
        self._placed: dict[int, str] = {}  # node or array id -> its first path
        self._attrs: dict[str, dict[str, Any]] = {"": {}}  # group path -> attributes, in walk order
        self._datasets: dict[int, str] = {}  # array id -> dataset path
        self._links: list[tuple[str, str]] = []  # (link path, target path)
        self._used: dict[str, set[str]] = {"": set(RESERVED)}  # group path -> names taken in it
        self._unnamed: str | None = None
        if stored:
            self._walk(graph.root)
        for array in graph.arrays:  # stored arrays the walk did not name (too deep, unreachable)
            if array.id in stored and array.id not in self._datasets:
                self._datasets[array.id] = self._claim(self._fallback(), str(array.id))
        self.groups, self.links = self._needed()

    def path(self, array_id: int) -> str:
        """The dataset path of the array ``array_id`` (one of ``stored``)."""
        return self._datasets[array_id]

    # -- the walk ------------------------------------------------------------------------------
    def _walk(self, root: Any) -> None:
        if type(root) is Ref and root.id in self._stored:  # the root value is an array
            root_path = self._claim("", ROOT_ARRAY)
            self._datasets[root.id] = self._placed[root.id] = root_path
            return
        queue: collections.deque[tuple[Any, str, int]] = collections.deque([(root, "", 0)])
        while queue:
            value, path, depth = queue.popleft()
            if type(value) is Ref:
                value = self._place(value.id, path)
                if value is None:
                    continue
            if depth >= MAX_NAME_DEPTH:
                continue
            self._attrs.setdefault(path, {})
            for key, child in _entries(value):
                kind = type(child)
                if kind in _ATOMIC or (kind is Ref and not self._known(child.id)):
                    continue
                queue.append((child, self._claim(path, quote_name(_name(key))), depth + 1))

    def _known(self, ref_id: int) -> bool:
        return ref_id in self._stored or ref_id in self._nodes

    def _place(self, ref_id: int, path: str) -> Any:
        """Name the array or node ``ref_id`` ``path`` (or link ``path`` to its first name); the
        state to walk next, or ``None``."""
        if not self._known(ref_id):  # a reference to nothing (a hand-made graph): no name
            return None
        first = self._placed.get(ref_id)
        if first is not None:
            self._links.append((path, first))
            return None
        self._placed[ref_id] = path
        if ref_id in self._stored:
            self._datasets[ref_id] = path
            return None
        type_name, version, state = self._nodes[ref_id]
        attrs: dict[str, Any] = {"type": _utf8(type_name), "version": version}
        if type(state) is dict and type(state.get("name")) is str:
            attrs["name"] = _utf8(state["name"])
        self._attrs[path] = attrs
        return state

    def _claim(self, group: str, name: str) -> str:
        used = self._used.setdefault(group, set())
        if name in used:
            suffix = 2
            while f"{name}~{suffix}" in used:
                suffix += 1
            name = f"{name}~{suffix}"
        used.add(name)
        return f"{group}/{name}"

    def _fallback(self) -> str:
        """The group of the arrays the walk did not name (made on first use)."""
        if self._unnamed is None:
            self._unnamed = self._claim("", ARRAYS.lstrip("/"))
            self._attrs[self._unnamed] = {}
        return self._unnamed

    # -- which groups and links are made -------------------------------------------------------
    def _needed(self) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str]]]:
        """The groups with a dataset below them (parents first) and the links to datasets or to
        such groups; a group that holds only links is needed if a link it holds is."""
        needed: set[str] = {""}
        kept: list[tuple[str, str]] = []
        waiting: dict[str, list[tuple[str, str]]] = {}
        datasets = set(self._datasets.values())
        stack = [path.rpartition("/")[0] for path in datasets]
        for link in self._links:
            if link[1] in datasets:
                kept.append(link)
                stack.append(link[0].rpartition("/")[0])
            else:
                waiting.setdefault(link[1], []).append(link)
        while stack:
            path = stack.pop()
            if path in needed:
                continue
            needed.add(path)
            stack.append(path.rpartition("/")[0])
            for link in waiting.pop(path, ()):
                kept.append(link)
                stack.append(link[0].rpartition("/")[0])
        groups = [(path or "/", attrs) for path, attrs in self._attrs.items() if path in needed]
        return groups, kept


def _entries(value: Any) -> Iterable[tuple[Any, Any]]:
    """``(key, child)`` inside a graph value: a dict's ``str`` key, a position in a list, tuple or
    set, ``(key, position)`` in a :class:`PairsDict`. Lazily, unlike :func:`~ngser.graph.items`
    (which makes the pairs of a 100,000-element list first: 45% slower names for such a root)."""
    t = type(value)
    if t is dict:
        return value.items()  # type: ignore[no-any-return]
    if t is PairsDict:
        return (((key, i), child) for i, (key, child) in enumerate(value.pairs))
    if t in _CONTAINERS:
        return enumerate(value)
    return ()


def _name(key: Any) -> str:
    """The name of an entry from its key: as it is, as text, or its position for a key without
    a short text form."""
    t = type(key)
    if t is str:
        return key  # type: ignore[no-any-return]
    if t is tuple:  # (key, position) of a PairsDict
        key, position = key
        if type(key) is bytes:
            return key.decode("utf-8", "backslashreplace")
        return str(key) if type(key) in _ATOMIC else str(position)
    return str(key)


def _leading_to(graph: Graph, stored: set[int]) -> dict[int, tuple[str, int, Any]]:
    """``{id: (type name, version, state)}`` of the nodes from which a stored array can be reached.
    One pass over the node table (children come before parents); a node that refers to one not
    known to lead to an array yet waits on it, and is added if that one turns out to, so cycles
    and any order of the table are handled in linear time."""
    leading: dict[int, tuple[str, int, Any]] = {}
    waiting: dict[int, list[tuple[int, tuple[str, int, Any]]]] = {}
    for nid, name, version, state in graph.node_tuples():
        if type(state) is dict:  # most states: a flat dict of numbers, strings and references
            refs = []
            for value in state.values():
                kind = type(value)
                if kind is Ref:
                    refs.append(value.id)
                elif kind not in _ATOMIC:
                    refs += _ref_ids(value)
        else:
            refs = _ref_ids(state)
        if not refs:
            continue
        entry = (name, version, state)
        for ref in refs:
            if ref in stored or ref in leading:
                break
        else:
            for ref in refs:
                waiting.setdefault(ref, []).append((nid, entry))
            continue
        found = [(nid, entry)]
        while found:
            node, node_entry = found.pop()
            if node not in leading:
                leading[node] = node_entry
                found.extend(waiting.pop(node, ()))
    return leading


def _ref_ids(value: Any) -> list[int]:
    """The ids of every :class:`Ref` inside ``value``: :func:`~ngser.graph.iter_refs` without the
    keys and the generator (which made the names of 100,000 objects with nested states 45% slower)."""
    found: list[int] = []
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is Ref:
            found.append(v.id)
        elif t is dict:
            stack.extend(v.values())
        elif t is PairsDict:
            stack.extend(x for pair in v.pairs for x in pair)
        elif t in _CONTAINERS:
            stack.extend(v)
    return found
