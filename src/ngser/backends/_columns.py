"""Node tables and lists of references as the value codec stores them (format 2).

Every backend puts these into its graph document: ``pack_tables(graph.tables)`` under the
key ``tables`` (msgpack, HDF5) or as the fifth element (pickle), and ``pack_root(graph)`` as
the root value. Integer sequences (row ids, ``int`` and ``ref`` columns, lists of references)
are packed by :func:`~ngser.backends._arrays.pack_ints`: ids handed out in order cost one
byte each. ``float`` and ``bool`` columns are their little-endian bytes; a ``values`` column
is a list of values. ``docs/format.md`` describes the layout.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..errors import FormatError
from ..graph import COLUMN_KINDS, Column, Graph, Ref, Table
from ._arrays import pack_ints, unpack_ints
from ._codec import ref_list

__all__ = ["pack_root", "pack_tables", "unpack_tables"]

#: Column kinds stored as :func:`pack_ints` lists.
_INT_KINDS = frozenset({"int", "ref"})
#: Lists of references at least this long are stored as one packed id sequence.
MIN_REF_LIST = 64

_ref_id = operator.attrgetter("id")


def pack_root(graph: Graph) -> Any:
    """The root value as stored: in format 2 (a graph with tables) a long list of references,
    at the top or as a value of a top-level dict, is one list of references (a byte or two
    per reference instead of an extension type each)."""
    root = graph.root
    if not graph.tables:
        return root
    if type(root) is dict:
        return {key: _packed_refs(value) for key, value in root.items()}
    return _packed_refs(root)


def _packed_refs(value: Any) -> Any:
    if type(value) is list and len(value) >= MIN_REF_LIST and set(map(type, value)) == {Ref}:
        return ref_list(pack_ints(np.fromiter(map(_ref_id, value), np.int64, len(value))))
    return value


def pack_tables(tables: list[Table]) -> list[list[Any]]:
    """Node tables as values: ``[name, version, keys, at, ids, columns]`` each, ``ids`` packed by
    :func:`pack_ints`, each column ``[kind, data]``."""
    for table in tables:  # a graph made by hand may hold anything
        table.check("cannot write the graph: ")
    return [[t.name, t.version, list(t.keys), t.at, pack_ints(t.ids), list(map(_packed, t.columns))] for t in tables]


def _packed(column: Column) -> list[Any]:
    kind, data = column
    if kind in _INT_KINDS:
        return [kind, pack_ints(data)]
    dtype = COLUMN_KINDS[kind]
    return [kind, data if dtype is None else np.ascontiguousarray(data, dtype).tobytes()]


def unpack_tables(packed: Any, source: str) -> list[Table]:
    """The inverse of :func:`pack_tables`, every part checked (:meth:`~ngser.graph.Table.check`)."""
    if packed is None:
        return []
    if not isinstance(packed, list):
        raise FormatError(f"{source}: the node tables are damaged")
    tables = []
    for entry in packed:
        if not (isinstance(entry, list) and len(entry) == 6 and isinstance(entry[2], list)):
            raise FormatError(f"{source}: a node table is damaged")
        name, version, keys, at, ids, columns = entry
        where = f"{source}: node table {name!r}"
        if not isinstance(columns, list):
            raise FormatError(f"{where}: its columns are damaged")
        table = Table(name, version, tuple(keys), unpack_ints(ids, where), [_column(c, where) for c in columns], at)
        table.check(f"{source}: ")
        tables.append(table)
    return tables


def _column(packed: Any, where: str) -> Column:
    if not (isinstance(packed, list) and len(packed) == 2 and type(packed[0]) is str and packed[0] in COLUMN_KINDS):
        raise FormatError(f"{where}: a column is damaged")
    kind, data = packed
    if kind in _INT_KINDS:
        return Column(kind, unpack_ints(data, f"{where}, a column of kind {kind!r}"))
    dtype = COLUMN_KINDS[kind]
    if dtype is None:
        return Column(kind, data)
    if not isinstance(data, bytes) or len(data) % dtype.itemsize:
        raise FormatError(f"{where}: a column of kind {kind!r} is damaged")
    if kind == "bool" and data and max(data) > 1:
        raise FormatError(f"{where}: a column of kind 'bool' holds values that are not 0 or 1")
    return Column(kind, np.frombuffer(data, dtype))
