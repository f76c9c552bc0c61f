"""The object graph: what serializers produce and backends store.

A serializer turns one object into a *state* built from graph values (see
:mod:`ngser.graph._values` for the vocabulary); a backend writes a :class:`Graph` and
reads it back. Neither knows about the other.

A :class:`Graph` has a root value, a table of :class:`ObjectNode` (in post order:
an object's children come before it unless a cycle runs through it) and a table
of :class:`ArrayNode`. Plain containers are values: a list reachable twice is
stored twice. Objects with serializers and numpy arrays are nodes: reachable
twice, they are stored once and load as one object.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from ..errors import shown
from ._tables import Table
from ._values import iter_refs, values_equal

__all__ = [
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "ArrayNode",
    "Graph",
    "ObjectNode",
    "RawNode",
    "make_node",
    "NodeTuple",
]

#: ``(id, name, version, state)``: one entry of the node table, in either form.
NodeTuple = tuple[Any, Any, Any, Any]

#: Newest version of the graph encoding; readers refuse newer files. Backends write
#: version 2 for graphs with node tables (:class:`~ngser.graph.Table`), version 1 otherwise,
#: so that files without tables still open in ngser releases that read only version 1.
FORMAT_VERSION = 2


def format_of(graph: Graph) -> int:
    """The format version a backend writes ``graph`` in (see :data:`FORMAT_VERSION`)."""
    return 2 if graph.tables else 1


#: Plain containers (list, dict, tuple, ...) nested deeper than this inside one state
#: are refused with :class:`ngser.GraphError`; objects with serializers do not count,
#: so chains of registered objects may be arbitrarily long.
MAX_DEPTH = 256


class ObjectNode(NamedTuple):
    """An object in the node table: ``id``, serializer ``name`` and ``version``, ``state``.

    A named tuple, so that backends can build large tables at C speed with
    ``map(make_node, ...)``. Field types are checked by the decoder.
    """

    id: int
    name: str
    version: int
    state: Any

    def __repr__(self) -> str:
        return f"ObjectNode(id={shown(self.id)}, name={shown(self.name)}, version={shown(self.version)})"


#: ``make_node((id, name, version, state))``: an ObjectNode from a 4-tuple, without the
#: Python-level ``__new__``/``_make`` of NamedTuple (a third of the time for many small nodes).
make_node = functools.partial(tuple.__new__, ObjectNode)


def nodes_from_flat(flat: list[Any]) -> list[ObjectNode]:
    """Nodes from a flat ``[id, name, version, state, id, ...]`` list (as backends store them)."""
    items = iter(flat)
    return list(map(make_node, zip(items, items, items, items)))


def flatten_nodes(nodes: list[ObjectNode]) -> list[Any]:
    """The inverse of :func:`nodes_from_flat`."""
    return [field for node in nodes for field in node]


class ArrayNode:
    """A numpy array in the node table.

    ``data`` is a :class:`numpy.ndarray`, or for lazily read files any object with
    ``dtype``, ``shape`` and ``__array__`` (an h5py dataset, a memory map).
    ``label`` is an optional readable name (``"ngsolve.Mesh/points"``) that
    backends may use to place the array where people look for it. ``owner`` and
    ``key`` say where the array was found: the id of the object node whose state
    holds it directly under the dict key ``key``. The encoder records them; for a graph
    read from a file :meth:`Graph.array_owners` finds them in one pass.
    """

    __slots__ = ("data", "id", "key", "label", "owner")

    def __init__(
        self, id: int, data: Any, label: str | None = None, owner: int | None = None, key: str | None = None
    ) -> None:
        self.id = id
        self.data = data
        self.label = label
        self.owner = owner
        self.key = key

    @property
    def dtype(self) -> np.dtype[Any]:
        dtype: np.dtype[Any] = np.dtype(self.data.dtype)
        return dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def load(self) -> np.ndarray[Any, Any]:
        """The array itself, read into memory if it was read lazily."""
        if isinstance(self.data, np.ndarray):
            return self.data
        return np.asarray(self.data[()]) if self.shape == () else np.asarray(self.data[...])

    def __eq__(self, other: object) -> bool:
        if type(other) is not ArrayNode or other.id != self.id:
            return False
        a, b = self.load(), other.load()
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ArrayNode(id={self.id}, dtype={self.dtype}, shape={self.shape})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ArrayNode, (self.id, self.load(), self.label))


class Graph:
    """A complete object graph: the unit every backend reads and writes.

    ``nodes`` is the node table as :class:`ObjectNode` tuples; backends that store it
    flat (``[id, name, version, state, id, ...]``) build a graph with
    :meth:`from_flat` and read :attr:`flat_nodes`, and the other form is made only
    if someone asks for it. ``writers`` maps every serializer name in the graph to
    the version that wrote it (the file header repeats it so tools can see it
    without reading nodes). ``meta`` holds backend-neutral header fields (``ngser``
    version, format version). ``tables`` holds nodes stored by type, column by column
    (:class:`~ngser.graph.Table`); :attr:`nodes` and :meth:`node_tuples` show their rows in
    loading order among the other nodes, :attr:`flat_nodes` holds only the others.
    """

    __slots__ = ("_flat", "_nodes", "arrays", "meta", "root", "tables", "writers")

    def __init__(
        self,
        root: Any,
        nodes: list[ObjectNode],
        arrays: list[ArrayNode],
        writers: dict[str, int] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.root = root
        self._nodes: list[ObjectNode] | None = nodes
        self._flat: list[Any] | None = None
        self.arrays = arrays
        self.writers = writers if writers is not None else {}
        self.meta = meta if meta is not None else {}
        self.tables: list[Table] = []

    @classmethod
    def from_flat(
        cls,
        root: Any,
        flat: list[Any],
        arrays: list[ArrayNode],
        writers: dict[str, int] | None = None,
        meta: dict[str, Any] | None = None,
        tables: list[Table] | None = None,
    ) -> Graph:
        """A graph whose node table is the flat list ``[id, name, version, state, ...]``
        (and ``tables``, whose :attr:`Table.at` count entries of that list).

        >>> Graph.from_flat(None, [0, "pkg.Thing", 1, {}], []).nodes
        [ObjectNode(id=0, name='pkg.Thing', version=1)]
        """
        if len(flat) % 4:
            raise ValueError("a flat node table has 4 entries per node")
        graph = cls(root, [], arrays, writers, meta)
        graph._nodes, graph._flat = None, flat
        graph.tables = tables or []
        return graph

    @property
    def nodes(self) -> list[ObjectNode]:
        """Every object node (the rows of tables too), children before parents."""
        if self.tables:  # made anew each time: the rows are stored in their tables
            return list(map(make_node, self.node_tuples()))
        if self._nodes is None:
            self._nodes = nodes_from_flat(self._flat or [])
        return self._nodes

    @property
    def flat_nodes(self) -> list[Any]:
        """The nodes not in tables as one flat list ``[id, name, version, state, id, ...]``."""
        if self._flat is None:
            self._flat = flatten_nodes(self._nodes or [])
        return self._flat

    def node_tuples(self, rows: bool = True) -> Iterator[NodeTuple]:
        """``(id, name, version, state)`` for each node in loading order, from any form;
        with ``rows=False`` only the nodes not in tables."""
        if self._nodes is not None:
            single: Iterator[NodeTuple] = iter(self._nodes)
        else:
            items = iter(self._flat or [])
            single = zip(items, items, items, items)
        if not self.tables or not rows:
            return single
        return self._interleaved(single)

    def _interleaved(self, single: Iterator[NodeTuple]) -> Iterator[NodeTuple]:
        done = 0
        for table in sorted(self.tables, key=lambda t: t.at):
            if table.at > done:
                yield from itertools.islice(single, table.at - done)
                done = table.at
            yield from table.rows()
        yield from single

    @property
    def node_count(self) -> int:
        """The number of object nodes (the rows of tables included)."""
        single = len(self._nodes) if self._nodes is not None else len(self._flat or []) // 4
        return single + sum(map(len, self.tables))

    def array_owners(self) -> dict[int, tuple[int, str | None]]:
        """``{array id: (owner node id, dict key or None)}`` for every array an object's
        state refers to, as the encoder records them in :attr:`ArrayNode.owner` and
        :attr:`ArrayNode.key` (taken from there where set). For arrays read from a file: the
        node whose type and key the array's label names, else the first node in table order
        that refers to it. One pass over every state: linear in the size of the graph.
        """
        owners: dict[int, tuple[int, str | None]] = {}
        labels: dict[int, tuple[str, str]] = {}
        for array in self.arrays:
            if array.owner is not None:
                owners[array.id] = (array.owner, array.key)
            else:
                type_name, _, key = (array.label or "").partition("/")
                labels[array.id] = (type_name, key)
        if not labels:
            return owners
        first: dict[int, tuple[int, str | None]] = {}
        for nid, node_name, _, state in self.node_tuples():
            for ref, ref_key in iter_refs(state):
                wanted = labels.get(ref.id)
                if wanted is None or ref.id in owners:
                    continue
                if wanted == (node_name, ref_key):
                    owners[ref.id] = (nid, ref_key)
                else:
                    first.setdefault(ref.id, (nid, ref_key))
        for array_id, owner in first.items():
            owners.setdefault(array_id, owner)
        return owners

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Graph
            and values_equal(self.root, other.root)
            and self.node_count == other.node_count
            and all(values_equal(tuple(a), tuple(b)) for a, b in zip(self.node_tuples(), other.node_tuples()))
            and self.arrays == other.arrays
            and self.writers == other.writers
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Graph: {self.node_count} objects, {len(self.arrays)} arrays, root={_short(self.root)}>"


class RawNode:
    """An object whose type name no installed serializer knows.

    Returned by ``load(..., unknown="raw")`` in place of the object so that the
    file can still be inspected: ``name``, ``version`` and the decoded ``state``.
    """

    __slots__ = ("name", "state", "version")

    def __init__(self, name: str, version: int, state: Any = None) -> None:
        self.name = name
        self.version = version
        self.state = state

    def __repr__(self) -> str:
        return f"RawNode(name={self.name!r}, version={self.version})"


for _cls in (ObjectNode, ArrayNode, Graph, RawNode):  # pickles name the public package
    _cls.__module__ = "ngser.graph"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
