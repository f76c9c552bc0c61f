"""Graph -> objects.

Nodes are built in table order, which the encoder writes children-first. A
reference to a node that is not built yet is only legal for two-phase
serializers (the object is created empty at once and filled when its own turn
comes); anything else means a cycle through a one-phase object or a damaged file.
Nothing is imported because a file names it: type names go through the registry.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from itertools import repeat
from typing import Any, Literal

import numpy as np

from ..errors import ArgumentError, FormatError, GraphError, NgserError, SerializerError, UnsafeLoadError, shown
from ..serializers import Registry, Serializer, SerializerRecord, default_registry, record_of
from ._model import MAX_DEPTH, Graph, NodeTuple, ObjectNode, RawNode, make_node
from ._tables import Column, Table
from ._values import ATOMIC_TYPES, PairsDict, Ref, check_hash_spread, iter_refs

__all__ = ["Decoder", "Unknown"]

_MISSING = object()
_instance_dict = operator.attrgetter("__dict__")
_ref_id = operator.attrgetter("id")
#: Node ids are non-negative 64-bit integers (HDF5 stores them as int64).
_MAX_ID = 2**63

Unknown = Literal["error", "raw"]


class _RawSerializer(Serializer):
    """Builds a :class:`RawNode` for a type name nobody registered (``unknown="raw"``)."""

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version

    def create(self) -> RawNode:
        return RawNode(self.name, self.version)

    def fill(self, obj: RawNode, state: Any) -> None:
        obj.state = state


#: A plan: how to build nodes of one (name, version): ``(record, create or None, fill or
#: load, upgrade?, fill is a plain __dict__ update?)``.
_Plan = tuple[SerializerRecord, Any, Any, bool, bool]


class Decoder:
    """One decoding pass (:func:`ngser.decode` runs one): ``Decoder(registry).decode(graph)``."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        trusted: bool = False,
        unknown: Unknown = "error",
        source: str = "",
    ) -> None:
        if unknown not in ("error", "raw"):
            raise ArgumentError(f'unknown= must be "error" or "raw", not {unknown!r}')
        self.registry = registry if registry is not None else default_registry
        self.trusted = trusted
        self.unknown = unknown
        self.path = source
        self.source = f"{source}: " if source else ""
        self._objects: dict[int, Any] = {}
        self._graph: Graph | None = None
        self._index: dict[int, NodeTuple] | None = None
        self._forward: set[int] = set()
        self._by_name: dict[tuple[str, int], SerializerRecord] = {}
        self._plans: dict[tuple[Any, Any], _Plan] = {}
        self._current: NodeTuple | None = None  # the node being built

    def decode(self, graph: Graph) -> Any:
        objects = self._objects
        for array in graph.arrays:
            if type(array.id) is not int or array.id in objects:
                raise FormatError(f"{self.source}the id {shown(array.id)} is used by two arrays; the file is damaged")
            objects[array.id] = _checked_array(array.load(), array.id, self.source)
        self._graph = graph
        plans = self._plans
        ids: set[Any] = set()
        add = ids.add
        single_count = graph.node_count - sum(map(len, graph.tables))
        for table in graph.tables:
            table.check(self.source)
            if table.at > single_count:
                raise FormatError(
                    f"{self.source}the table of {shown(table.name)} nodes is placed after node {table.at}, but "
                    f"there are {single_count} nodes; the file is damaged"
                )
            if (table.name, table.version) not in plans:
                self._plan(ObjectNode(int(table.ids[0]) if len(table) else 0, table.name, table.version, None))
            ids.update(table.ids.tolist())
        for node in graph.node_tuples(rows=False):  # every id and type checked before anything is built
            nid = node[0]
            if type(nid) is not int or not 0 <= nid < _MAX_ID:
                raise FormatError(f"{self.source}node id {shown(nid)} is not an integer id; the file is damaged")
            add(nid)
            try:
                known = (node[1], node[2]) in plans
            except TypeError:
                known = False
            if not known:
                self._plan(make_node(node))
        if len(ids) != graph.node_count or not ids.isdisjoint(objects):  # before anything refers to an id
            raise FormatError(
                f"{self.source}a node id is used twice (by two nodes, or a node and an array); the file is damaged"
            )
        tables = sorted(graph.tables, key=lambda t: t.at)
        for table in tables:  # the rows of fast tables exist, empty, before anything is built
            create = self._fast_create(table)
            if create is not None:
                objects.update(zip(table.ids.tolist(), [create() for _ in range(len(table))]))
        single, done = graph.node_tuples(rows=False), 0
        for table in tables:
            self._build_all(itertools.islice(single, table.at - done))
            done = max(done, table.at)
            self._fill(table)
        self._build_all(single)
        self._current = None
        return self._value(graph.root, 0)

    # -- tables ---------------------------------------------------------------------
    def _fast_create(self, table: Table) -> Any:
        """``create`` of the table's type if its rows may be filled straight into ``__dict__``."""
        _, create, _, upgrade, fills_dict = self._plans[(table.name, table.version)]
        return create if fills_dict and not upgrade else None

    def _fill(self, table: Table) -> None:
        """Fill the rows of ``table`` (made empty up front), or build them one by one."""
        if self._fast_create(table) is None:  # upgrades, stand-ins, raw nodes: node by node
            rows = list(table.rows())
            self._build_all(rows if self._plans[(table.name, table.version)][1] else _children_first(rows))
            return
        ids = table.ids.tolist()
        self._current = (ids[0] if ids else None, table.name, table.version, None)
        objects = self._objects
        columns = [self._column(column) for column in table.columns]
        if not columns:
            return
        states = list(map(_instance_dict, map(objects.__getitem__, ids)))
        for key, values in zip(table.keys, columns):  # column by column: the fastest way here
            for state, value in zip(states, values):
                state[key] = value

    def _column(self, column: Column) -> list[Any]:
        kind, data = column
        if kind == "values":
            value = self._value
            return [x if type(x) in ATOMIC_TYPES else value(x, 1) for x in data]
        if kind != "ref":
            values: list[Any] = data.tolist()
            return values
        return self._objects_of(data.tolist())

    def _objects_of(self, ids: list[int]) -> list[Any]:
        """The objects with these ids (``-1``: ``None``), looked up at C speed."""
        out = list(map(self._objects.get, ids, repeat(_MISSING)))
        if id(_MISSING) in set(map(id, out)):  # (not "in out": that would call the objects' __eq__)
            for i in [i for i, x in enumerate(out) if x is _MISSING]:
                out[i] = None if ids[i] == -1 else self._resolve(ids[i])
        return out

    # -- nodes ----------------------------------------------------------------------
    def _serializer(self, node: ObjectNode) -> SerializerRecord:
        key = (node.name, node.version)
        serializer = self._by_name.get(key)
        if serializer is None:
            where = f"{self.source}node {node.id}"
            if not isinstance(node.name, str):
                raise FormatError(f"{where} has a type name of type {type(node.name).__name__}; the file is damaged")
            found = self.registry.record_for_name(node.name)
            if found is None and self.unknown == "raw":
                found = record_of(_RawSerializer(node.name, node.version))
            elif found is None:
                found = self.registry.require_name(node.name, where)
            if found.trusted_only and not self.trusted and found.load_untrusted is not None:
                found = found.untrusted_stand_in()  # an optional part: its serializer builds a stand-in
            elif found.trusted_only and not self.trusted:
                held = node.state.get("type") if isinstance(node.state, dict) else None
                what = f" (it holds a pickled {shown(held)})" if isinstance(held, str) else ""
                reason = found.trusted_reason or "building it runs code stored in the file"
                raise UnsafeLoadError(
                    f"{where} is a {node.name!r} node{what}: {reason}. Nothing was run. Load with trusted=True only "
                    "if you trust where the file came from."
                )
            serializer = self._by_name[key] = found
        return serializer

    def _build_all(self, nodes: Iterable[NodeTuple]) -> None:
        """Build every node in table order (the hot loop: per-type facts are cached)."""
        objects, plans, dict_state, forward = self._objects, self._plans, self._dict, self._forward
        for node in nodes:
            nid, name, version, raw = node
            try:
                plan = plans.get((name, version))
            except TypeError:
                plan = None
            if plan is None:
                plan = self._plan(make_node(node))
            serializer, create, finish, upgrade, fills_dict = plan
            self._current = node
            if type(nid) is not int or (nid in objects and (create is None or nid not in forward)):
                raise FormatError(
                    f"{self.source}node id {shown(nid)} is not an integer or is used twice; the file is damaged"
                )
            if fills_dict and not upgrade and type(raw) is dict:  # StateSerializer, inlined
                obj = objects.get(nid, _MISSING)
                if obj is _MISSING:
                    obj = objects[nid] = create()
                dict_state(raw, obj.__dict__)  # decoded straight into the instance
                continue
            state = dict_state(raw) if type(raw) is dict else self._value(raw, 0)
            try:
                if upgrade:
                    state = self.registry.upgrade(serializer, version, state, f"{self.source}node {nid}")
                if create is None:
                    objects[nid] = finish(state)
                    continue
                obj = objects.get(nid, _MISSING)
                if obj is _MISSING:
                    obj = objects[nid] = create()
                finish(obj, state)
            except NgserError as exc:
                raise exc.locate(path=self.path, node=nid, type_name=name) from None
            except Exception as exc:
                raise SerializerError(
                    f"{self.source}rebuilding {name!r} (node {nid}) failed: {type(exc).__name__}: "
                    f"{exc}. The file may be damaged, or the serializer cannot handle this state.",
                    path=self.path or None,
                    node=nid,
                    type_name=name,
                ) from exc

    def _plan(self, node: ObjectNode) -> _Plan:
        """How to build nodes of this (name, version) (see :data:`_Plan`)."""
        if type(node.name) is not str or type(node.version) is not int:
            raise FormatError(f"{self.source}a node table entry ({shown(node.id)}, {shown(node.name)}) is damaged")
        record = self._serializer(node)
        raw = isinstance(record.serializer, _RawSerializer)
        create, finish = (record.create, record.fill) if record.two_phase else (None, record.load)
        plan = (record, create, finish, node.version != record.version and not raw, record.fills_dict)
        self._plans[(node.name, node.version)] = plan
        return plan

    def _dict(self, v: dict[str, Any], out: dict[str, Any] | None = None) -> dict[str, Any]:
        """A state dict's values decoded into ``out`` (a new dict by default; the common
        case, kept flat for speed)."""
        objects = self._objects
        if out is None:
            out = {}
        for key, x in v.items():
            tx = type(x)
            if tx is Ref:
                x = objects.get(x.id, _MISSING)
                if x is _MISSING:
                    x = self._resolve(v[key].id)
            elif tx not in ATOMIC_TYPES:
                x = self._value(x, 1)
            out[key] = x
        return out

    @property
    def _owner(self) -> str:
        node = self._current  # (id, name, version, state)
        return "the root value" if node is None else f"{shown(node[1])} (node {shown(node[0])})"

    def _resolve(self, nid: Any) -> Any:
        try:
            return self._objects[nid]
        except (KeyError, TypeError):
            pass
        if self._index is None and self._graph is not None:  # built on the first forward reference only
            self._index = {node[0]: node for node in self._graph.node_tuples() if type(node[0]) is int}
        found = self._index.get(nid) if type(nid) is int and self._index is not None else None
        if found is None:
            raise FormatError(
                f"{self.source}{self._owner} refers to id {shown(nid)}, which is not in the file; the file is damaged"
            )
        node = make_node(found)
        create = self._serializer(node).create
        if create is None:
            raise GraphError(
                f"{self.source}{self._owner} refers to {node.name!r} (node {nid}) before it is built, and that "
                "type is built from its complete state; ngser never writes such a file, so it is damaged or "
                "was not written by ngser"
            )
        try:
            obj = self._objects[nid] = create()
            self._forward.add(nid)
        except NgserError as exc:
            raise exc.locate(path=self.path, node=nid, type_name=node.name) from None
        except Exception as exc:
            raise SerializerError(
                f"{self.source}creating {node.name!r} (node {nid}) failed: {exc}",
                path=self.path or None,
                node=nid,
                type_name=node.name,
            ) from exc
        return obj

    # -- values -----------------------------------------------------------------------
    def _value(self, v: Any, depth: int) -> Any:
        t = type(v)
        if t in ATOMIC_TYPES:
            return v
        if t is Ref:
            return self._resolve(v.id)
        if depth >= MAX_DEPTH:
            raise GraphError(
                f"{self.source}plain containers in {self._owner} are nested more than {MAX_DEPTH} levels deep; "
                "ngser never writes such a file"
            )
        depth += 1
        if t is list:
            if len(v) >= 64 and set(map(type, v)) == {Ref}:  # a list of objects: the common root value
                return self._objects_of(list(map(_ref_id, v)))
            objects = self._objects
            out: list[Any] = []
            append = out.append
            for x in v:
                tx = type(x)
                if tx is Ref:  # inlined _resolve: lists of objects are the common root value
                    obj = objects.get(x.id, _MISSING)
                    x = self._resolve(x.id) if obj is _MISSING else obj
                elif tx not in ATOMIC_TYPES:
                    x = self._value(x, depth)
                append(x)
            return out
        if t is dict:
            return {k: x if type(x) in ATOMIC_TYPES else self._value(x, depth) for k, x in v.items()}
        if t is tuple:
            return tuple([x if type(x) in ATOMIC_TYPES else self._value(x, depth) for x in v])
        if t is set or t is frozenset:
            elements = [self._value(x, depth) for x in v]
            check_hash_spread(elements, f"{self.source}{self._owner}")
            return t(elements)
        if t is PairsDict:
            pairs = [(self._value(k, depth), self._value(x, depth)) for k, x in v.pairs]
            check_hash_spread((k for k, _ in pairs), f"{self.source}{self._owner}")
            return dict(pairs)
        if isinstance(v, np.generic) and not v.dtype.hasobject:
            return v
        raise FormatError(f"{self.source}{self._owner} holds a value of type {t.__name__}, which is not a graph value")


def _checked_array(array: Any, nid: int, source: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype.hasobject:
        raise FormatError(f"{source}array node {nid} is not a numeric numpy array; the file is damaged")
    return array


def _children_first(rows: list[NodeTuple]) -> list[NodeTuple]:
    """The rows of a table in post order among themselves, for a serializer that builds its
    objects in one phase (a table is written for two-phase objects, in any order: a newer
    serializer of the type may need each row's children built first)."""
    index = {row[0]: row for row in rows}
    done: set[int] = set()
    order: list[NodeTuple] = []
    for first in rows:
        if first[0] in done:
            continue
        done.add(first[0])
        stack = [(first, iter_refs(first[3]))]
        while stack:
            row, refs = stack[-1]
            for ref, _ in refs:
                child = index.get(ref.id)
                if child is not None and ref.id not in done:
                    done.add(ref.id)
                    stack.append((child, iter_refs(child[3])))
                    break
            else:
                stack.pop()
                order.append(row)
    return order
