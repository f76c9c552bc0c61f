"""Node tables by type: many objects of one type stored column by column.

A :class:`Table` holds the nodes of one serializer (``name``, ``version``) whose states are
dicts with the same keys in the same order: the keys once, the node ids as one int64 array,
and one :class:`Column` per key. The encoder makes tables for types whose serializer fills
the instance ``__dict__`` (``SerializerRecord.fills_dict``, the default for registered
classes); every other node stays in the node table one by one. Nothing is lost: a table's
rows are the same ``(id, name, version, state)`` nodes (:meth:`Table.rows`), only stored
smaller and built faster.

===========  =============================================================================
column kind  data
===========  =============================================================================
``float``    float64 array: every value a Python ``float``
``int``      int64 array: every value a Python ``int`` within 64 bits
``bool``     bool array
``ref``      int64 array of node ids; ``-1`` stands for ``None``
``values``   a list of graph values (anything a state may hold)
===========  =============================================================================

Loading order. ``Table.at`` is the number of entries of the node table that come before it:
a loader builds those first, then fills the table's rows (they are made empty up front,
so anything may refer to them), then goes on. The encoder puts a table after every node its
rows refer to and before every node that refers to its rows, as it does for single nodes.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np

from ..errors import FormatError, shown
from ._values import Ref

__all__ = ["COLUMN_KINDS", "Column", "Table", "make_column"]

#: Column kind -> numpy dtype of its data (``None``: a list of graph values).
COLUMN_KINDS: dict[str, np.dtype[Any] | None] = {
    "float": np.dtype("<f8"),
    "int": np.dtype("<i8"),
    "bool": np.dtype("?"),
    "ref": np.dtype("<i8"),
    "values": None,
}

_NONE = type(None)
#: Python types whose values a column stores as an array of its kind's dtype, always exactly
#: (``int`` too, if it fits 64 bits: see :func:`make_column`).
_ARRAY_KINDS: dict[type, str] = {float: "float", bool: "bool"}
_ref_id = operator.attrgetter("id")


class Column(NamedTuple):
    """One key's values for every row of a :class:`Table`: ``kind`` (see :data:`COLUMN_KINDS`), ``data``."""

    kind: str
    data: Any

    def values(self) -> list[Any]:
        """The column's values as graph values (:class:`~ngser.graph.Ref` for references)."""
        if self.kind == "values":
            return list(self.data)
        if self.kind == "ref":
            return [None if i < 0 else Ref(i) for i in self.data.tolist()]
        values: list[Any] = self.data.tolist()
        return values


def make_column(values: list[Any]) -> Column:
    """The most compact column that gives back exactly ``values`` (graph values).

    >>> make_column([1.5, 2.0]).kind, make_column([Ref(3), None]).data.tolist()
    ('float', [3, -1])
    """
    types = set(map(type, values))
    if len(types) == 1:
        t = next(iter(types))
        kind = _ARRAY_KINDS.get(t)
        if kind is not None:
            return Column(kind, np.array(values, COLUMN_KINDS[kind]))
        if t is int:
            try:
                return Column("int", np.array(values, np.int64))
            except OverflowError:  # beyond 64 bits: kept as values
                pass
    if types == {Ref}:
        return Column("ref", np.fromiter(map(_ref_id, values), np.int64, len(values)))
    if types == {Ref, _NONE}:
        return Column("ref", np.fromiter((-1 if v is None else v.id for v in values), np.int64, len(values)))
    return Column("values", values)


class Table:
    """The nodes of one type with the same state keys (see the module docstring)."""

    __slots__ = ("at", "columns", "ids", "keys", "name", "version")

    def __init__(
        self, name: str, version: int, keys: tuple[str, ...], ids: np.ndarray, columns: list[Column], at: int = 0
    ) -> None:
        self.name = name
        self.version = version
        self.keys = keys
        self.ids = ids
        self.columns = columns
        self.at = at

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self) -> Iterator[tuple[int, str, int, dict[str, Any]]]:
        """The table as ``(id, name, version, state)`` nodes, in row order."""
        keys, name, version = self.keys, self.name, self.version
        ids = self.ids.tolist()
        if not self.columns:
            return zip(ids, repeat(name), repeat(version), (dict() for _ in ids))
        states = map(dict, map(zip, repeat(keys), zip(*(column.values() for column in self.columns))))
        return zip(ids, repeat(name), repeat(version), states)

    def check(self, source: str) -> None:
        """Refuse a table whose parts do not fit together (read from a damaged or hand-made file)."""
        where = f"{source}the table of {shown(self.name)} nodes"
        if type(self.name) is not str or type(self.version) is not int or type(self.at) is not int or self.at < 0:
            raise FormatError(f"{where} has a damaged header; the file is damaged")
        if not isinstance(self.ids, np.ndarray) or self.ids.dtype != np.int64 or self.ids.ndim != 1:
            raise FormatError(f"{where} has no valid id column; the file is damaged")
        if len(self.ids) and int(self.ids.min()) < 0:
            raise FormatError(f"{where} has a negative node id; the file is damaged")
        if type(self.keys) is not tuple or not all(type(k) is str for k in self.keys):
            raise FormatError(f"{where} has keys that are not strings; the file is damaged")
        if len(set(self.keys)) != len(self.keys) or len(self.keys) != len(self.columns):
            raise FormatError(f"{where} has {len(self.columns)} columns for {len(self.keys)} keys; the file is damaged")
        n = len(self.ids)
        for key, column in zip(self.keys, self.columns):
            if not _fits(column, n):
                raise FormatError(f"{where}: the column {shown(key)} is damaged or does not have {n} values")

    def __repr__(self) -> str:
        return f"<Table {self.name!r} v{self.version}: {len(self)} rows, keys {list(self.keys)}>"


def _fits(column: Any, rows: int) -> bool:
    """Whether ``column`` is a :class:`Column` of a known kind with ``rows`` values of its kind's type."""
    if type(column) is not Column or type(column.kind) is not str or column.kind not in COLUMN_KINDS:
        return False
    dtype, data = COLUMN_KINDS[column.kind], column.data
    if dtype is None:
        return type(data) is list and len(data) == rows
    return isinstance(data, np.ndarray) and data.dtype == dtype and data.shape == (rows,)
