"""The encoder's walk by type: objects met in numbers become node tables.

:class:`TableWalk` runs one encoding pass in two steps.

1. **Discovery.** Objects are dumped as they are met, as by the node-by-node walk, except
   that new objects of a *table type* (the serializer fills ``__dict__``, see
   :attr:`~ngser.serializers.SerializerRecord.fills_dict`, and has no ``canonical`` hook) wait
   in a batch per type. When no other object is left, every batch of at least
   :data:`MIN_BATCH` objects is dumped at once: their states' values are taken key by key
   (``map(itemgetter(key), states)``), references found by one memo lookup per value, and
   appended to the :class:`~ngser.graph.Table` of that type and key order. Smaller batches
   are dumped one by one (a linked list stays a run of single nodes).
2. **Order.** A depth-first walk over *units* (single nodes and tables) puts each unit after
   the units its states refer to, as the node-by-node walk does for nodes. A table's rows are
   made empty before anything is built, so a cycle through a table is harmless as long as the
   unit that closes it is a table too, or a two-phase single node. A cycle that closes on a
   table from a single node would let that node see rows not yet filled, and a cycle through
   a one-phase node may exist only because its table merges rows: the walk then raises
   :class:`Retry`, and the encoder starts again node by node, which decides exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import GraphError
from ._model import Graph
from ._tables import Table, make_column
from ._values import ATOMIC_TYPES, Ref

if TYPE_CHECKING:
    from ._encoder import Encoder

__all__ = ["DONE", "IN_PROGRESS", "MIN_BATCH", "NEW", "Retry", "TableWalk"]

NEW, IN_PROGRESS, DONE = 0, 1, 2
#: A type's new objects are dumped as a table once this many wait at the same time.
MIN_BATCH = 64
#: At most this many tables (key orders) per type; objects of further key orders stay single.
MAX_SHAPES = 16

_Node = tuple[int, str, int, Any]


class Retry(Exception):
    """The graph needs the node-by-node walk to be ordered exactly (see the module docstring)."""


class _Builder:
    """The rows of one table so far: ids, one list of encoded values per key, referenced ids."""

    __slots__ = ("columns", "deps", "ids", "keys", "name", "version")

    def __init__(self, name: str, version: int, keys: tuple[str, ...]) -> None:
        self.name, self.version, self.keys = name, version, keys
        self.ids: list[int] = []
        self.columns: list[list[Any]] = [[] for _ in keys]
        self.deps: set[int] = set()

    def table(self, at: int) -> Table:
        columns = [make_column(values) for values in self.columns]
        return Table(self.name, self.version, self.keys, np.array(self.ids, np.int64), columns, at)


class TableWalk:
    """One encoding pass of ``encoder`` that stores objects in numbers as tables."""

    def __init__(self, encoder: Encoder) -> None:
        self.enc = encoder
        self.builders: dict[tuple[type, tuple[Any, ...]], int] = {}
        self.tables: list[_Builder] = []
        self.shapes: dict[type, int] = {}
        self.table_type: dict[type, bool] = {}
        self.single: dict[int, tuple[_Node, list[Ref]]] = {}  # nid -> (node, references)
        self.waiting: dict[type, list[int]] = {}
        self.stack: list[int] = []
        self.cursor = 0

    def run(self, obj: Any) -> Graph:
        enc = self.enc
        root = enc._value(obj, 0)
        roots = [ref.id for ref in enc._deps]
        self._route()
        while True:
            self._singles()
            big = [t for t, nids in self.waiting.items() if len(nids) >= MIN_BATCH]
            for t in big:
                self._batch(t, self.waiting.pop(t))
                self._route()
            if big:
                continue
            if not self.waiting:
                break
            for nids in self.waiting.values():
                self.stack.extend(reversed(nids))
            self.waiting.clear()
        return enc.graph(root, self._order(roots))

    # -- discovery --------------------------------------------------------------------
    def _route(self) -> None:
        """Send every object numbered since the last call to the stack or its type's batch."""
        enc = self.enc
        keep, status, start, end = enc._keep, enc._status, self.cursor, len(enc._keep)
        self.cursor = end
        if start == end:
            return
        types = set(map(type, keep[start:end]))
        new: list[int] = []
        if len(types) == 1 and status[start:end].count(NEW) == end - start:
            t = next(iter(types))
            if self._tabular(t):
                self.waiting.setdefault(t, []).extend(range(start, end))
            else:
                new.extend(range(start, end))
        else:
            for nid in range(start, end):
                if status[nid] != NEW:
                    continue  # an array
                t = type(keep[nid])
                if self._tabular(t):
                    self.waiting.setdefault(t, []).append(nid)
                else:
                    new.append(nid)
        self.stack.extend(reversed(new))

    def _tabular(self, t: type) -> bool:
        tabular = self.table_type.get(t)
        if tabular is None:
            record = self.enc._serializers[t]
            tabular = self.table_type[t] = record.fills_dict and record.canonical is None
        return tabular

    def _singles(self) -> None:
        enc, stack, single = self.enc, self.stack, self.single
        status, keep = enc._status, enc._keep
        while stack:
            nid = stack.pop()
            if status[nid] != NEW:
                continue
            status[nid] = DONE
            single[nid] = enc.dump_node(nid, keep[nid])
            self._route()

    def _batch(self, t: type, nids: list[int]) -> None:
        enc = self.enc
        record = enc._serializers[t]
        try:
            states = list(map(record.dump, map(enc._keep.__getitem__, nids)))
        except Exception:  # dumped one by one, which reports the object that failed
            self.stack.extend(reversed(nids))
            return
        groups: dict[tuple[Any, ...], tuple[list[int], list[dict[str, Any]]]] = {}
        if set(map(type, states)) == {dict} and len(set(map(len, states))) == 1:
            by_position = list(zip(*states))  # the first keys of all states, the second keys, ...
            if all(keys.count(keys[0]) == len(keys) for keys in by_position):  # one order of keys
                groups[tuple(keys[0] for keys in by_position) if by_position else ()] = (nids, states)
        if not groups:
            for nid, state in zip(nids, states):
                shape = tuple(state) if type(state) is dict else None
                group = groups.setdefault(shape, ([], []))  # type: ignore[arg-type]
                group[0].append(nid)
                group[1].append(state)
        for shape, (rows, row_states) in groups.items():
            index = self._table_index(t, shape)
            if index is None:
                self.stack.extend(reversed(rows))
                continue
            builder = self.tables[index]
            builder.ids.extend(rows)
            for key, column in zip(shape, builder.columns):
                column.extend(self._column(list(map(itemgetter(key), row_states)), key, rows, builder.deps))

    def _table_index(self, t: type, shape: tuple[Any, ...] | None) -> int | None:
        """The table of type ``t`` with keys ``shape``, made if allowed; ``None``: rows stay single."""
        index = self.builders.get((t, shape))  # type: ignore[arg-type]
        if index is not None or shape is None:
            return index
        if not all(type(key) is str for key in shape) or self.shapes.get(t, 0) >= MAX_SHAPES:
            return None
        record = self.enc._serializers[t]
        self.shapes[t] = self.shapes.get(t, 0) + 1
        index = self.builders[(t, shape)] = len(self.tables)
        self.tables.append(_Builder(record.name, record.version, shape))
        return index

    def _column(self, raw: list[Any], key: str, rows: list[int], deps: set[int]) -> list[Any]:
        """One key's values of a batch, encoded; the ids they refer to are added to ``deps``."""
        if set(map(type, raw)) <= ATOMIC_TYPES:
            return raw
        found: list[Ref] = []
        self.enc._deps = found
        out = self.enc.many(raw, 1, key, rows)
        deps.update([ref.id for ref in dict(zip(map(id, found), found)).values()])  # one Ref per node
        return out

    # -- order ------------------------------------------------------------------------
    def _order(self, roots: list[int]) -> list[Table]:
        """Emit single nodes and tables in loading order (see the module docstring)."""
        enc, tables = self.enc, []
        emit = enc.flat.extend
        n = len(enc._keep)
        units = np.arange(n, dtype=np.int64)  # node id -> its unit: itself, ~table or n (an array)
        for index, builder in enumerate(self.tables):
            units[np.array(builder.ids, np.int64)] = ~index
        units[np.array([array.id for array in enc.arrays], np.int64)] = n
        unit = units.tolist()
        references = [[ref.id for ref in deps] for _, deps in self.single.values()]
        edges: dict[int, Iterable[int]] = dict(zip(self.single, references))
        edges.update((~index, builder.deps) for index, builder in enumerate(self.tables))
        state: dict[int, int] = {}
        for first in [*dict.fromkeys(map(unit.__getitem__, roots)), *edges]:
            if first == n or first in state:
                continue
            state[first] = IN_PROGRESS
            frames = [(first, iter(edges[first]))]
            while frames:
                current, todo = frames[-1]
                for nid in todo:
                    child = unit[nid]
                    if child == n or (child == current and current < 0):  # an array; a table's own rows
                        continue
                    seen = state.get(child)
                    if seen is None:
                        state[child] = IN_PROGRESS
                        frames.append((child, iter(edges[child])))
                        break
                    if seen == IN_PROGRESS:
                        self._cycle(current, child)
                else:
                    frames.pop()
                    state[current] = DONE
                    if current >= 0:
                        emit(self.single.pop(current)[0])
                    else:
                        tables.append(self.tables[~current].table(len(enc.flat) // 4))
        return tables

    def _cycle(self, unit: int, back: int) -> None:
        """``unit`` refers to ``back``, whose references are still being ordered."""
        if back < 0:  # a table's rows exist, empty, from the start
            if unit < 0:
                return
            raise Retry
        if self.enc._two_phase(back):
            return
        if self.tables:
            raise Retry
        self.enc._current = unit
        raise GraphError(self.enc._cycle_message(back))
