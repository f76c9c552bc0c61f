"""The value codec: graph values as msgpack, shared by every backend.

The msgpack format stores its whole document this way, the pickle format its checksummed
inner document, the HDF5 format ``/ngser/graph``. msgpack carries ``None``, ``bool``, 64-bit
``int``, ``float``, ``str``, ``bytes``, ``list`` and ``dict`` (``str`` keys) natively; every
other kind of the vocabulary (:mod:`ngser.graph`) is an extension type or a tagged list:

=================  ===============================================================
kind               encoding
=================  ===============================================================
``Kind.REF``       ext 1: uint64 id, little-endian
``Kind.TUPLE``     list whose first element is ext 2 ``b"\\x01"`` (a marker)
``Kind.SET``       marker ``b"\\x02"``, then the elements
``Kind.FROZENSET`` marker ``b"\\x03"``, then the elements
``Kind.PAIRS``     marker ``b"\\x04"``, then key, value, key, value, ...
``Kind.COMPLEX``   ext 3: two little-endian float64
``Kind.INT``       beyond 64 bits: ext 4, little-endian two's complement
``Kind.SCALAR``    ext 5: msgpack ``[dtype description, raw bytes]``
=================  ===============================================================

The tables below are checked against :data:`ngser.graph.KINDS` when this module is imported:
a kind without an encoding is an error here, not a silent gap in one backend.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from ..errors import FormatError, VersionError, shown
from ..graph import FORMAT_VERSION, KINDS, Kind, PairsDict, Ref, check_hash_spread
from ._arrays import describe_dtype, parse_dtype, scalar_bytes, scalar_from_bytes, unpack_ints

__all__ = [
    "pack_value_document",
    "unpack_value_document",
    "check_format",
    "checked_flat",
    "ref_list",
]

# ext type codes
EXT_REF, EXT_MARK, EXT_COMPLEX, EXT_BIGINT, EXT_SCALAR = 1, 2, 3, 4, 5
# marker kinds: a list whose first element is a marker is a tagged compound
TUPLE, SET, FROZENSET, PAIRS = 1, 2, 3, 4
#: marker of a list of references stored as its ids: ``[marker, ids]``, the ids packed by
#: :func:`~ngser.backends._arrays.pack_ints` (format 2: see ``_columns.pack_root``)
REF_LIST = 5

#: Kinds msgpack stores as themselves (``int`` within 64 bits).
NATIVE_KINDS = frozenset({Kind.NONE, Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.STR, Kind.BYTES, Kind.LIST, Kind.DICT})
#: Kinds stored as a tagged list: kind -> marker number.
MARKED_KINDS = {Kind.TUPLE: TUPLE, Kind.SET: SET, Kind.FROZENSET: FROZENSET, Kind.PAIRS: PAIRS}
#: Kinds stored as an extension type: kind -> ext code.
EXT_KINDS = {Kind.REF: EXT_REF, Kind.COMPLEX: EXT_COMPLEX, Kind.INT: EXT_BIGINT, Kind.SCALAR: EXT_SCALAR}

_missing = set(Kind) - NATIVE_KINDS - MARKED_KINDS.keys() - EXT_KINDS.keys()
if _missing:  # pragma: no cover - a new kind in the vocabulary needs an encoding here
    raise ImportError(f"the value codec has no encoding for {sorted(k.name for k in _missing)}")

_U64 = struct.Struct("<Q")
_COMPLEX = struct.Struct("<dd")
_MARKED_TYPES = {t: MARKED_KINDS[k] for t, k in KINDS.items() if k in MARKED_KINDS}


class _Marker:
    __slots__ = ("kind",)

    def __init__(self, kind: int) -> None:
        self.kind = kind


_MARKERS = {number: _Marker(number) for number in (*MARKED_KINDS.values(), REF_LIST)}
_MARK_EXT = {number: msgpack.ExtType(EXT_MARK, bytes([number])) for number in _MARKERS}

_new_ext = functools.partial(tuple.__new__, msgpack.ExtType)  # ExtType((code, data)) at C speed


def _ref_packer() -> Callable[[Any], Any]:
    """A ``default`` hook for one document: each id's extension is made once per document
    (shared objects are referenced many times), and forgotten with the document."""
    exts: dict[int, msgpack.ExtType] = {}

    def default(v: Any) -> Any:
        if type(v) is Ref:
            ext = exts.get(v.id)
            if ext is None:
                ext = exts[v.id] = _new_ext((EXT_REF, _U64.pack(v.id)))
            return ext
        return _default(v)

    return default


def _ref_unpacker() -> Callable[[int, bytes], Any]:
    """An ``ext_hook`` for one document: one :class:`Ref` per id, shared by its references."""
    refs: dict[bytes, Ref] = {}

    def ext_hook(code: int, data: bytes) -> Any:
        if code == EXT_REF:
            ref = refs.get(data)
            if ref is None and len(data) == 8:
                ref = refs[data] = Ref(_U64.unpack(data)[0])
            if ref is not None:
                return ref
        return _ext_hook(code, data)

    return ext_hook


def _default(v: Any) -> Any:
    """Every value msgpack has no type for, but references (see :func:`_ref_packer`)."""
    t = type(v)
    marker = _MARKED_TYPES.get(t)
    if marker is not None:
        if t is PairsDict:
            flat: list[Any] = [_MARK_EXT[PAIRS]]
            for key, value in v.pairs:
                flat.append(key)
                flat.append(value)
            return flat
        return [_MARK_EXT[marker], *v]
    if t is complex:
        return msgpack.ExtType(EXT_COMPLEX, _COMPLEX.pack(v.real, v.imag))
    if t is int:
        return msgpack.ExtType(EXT_BIGINT, v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True))
    if isinstance(v, np.generic) and not v.dtype.hasobject:
        return msgpack.ExtType(EXT_SCALAR, msgpack.packb([describe_dtype(v.dtype), scalar_bytes(v)]))
    raise TypeError(f"{t.__name__} is not a graph value")


def _ext_hook(code: int, data: bytes) -> Any:
    """Every extension but references (see :func:`_ref_unpacker`)."""
    if code == EXT_MARK and len(data) == 1 and data[0] in _MARKERS:
        return _MARKERS[data[0]]
    if code == EXT_COMPLEX and len(data) == 16:
        re, im = _COMPLEX.unpack(data)
        return complex(re, im)
    if code == EXT_BIGINT and data:
        return int.from_bytes(data, "little", signed=True)
    if code == EXT_SCALAR:
        descr, raw = msgpack.unpackb(data, strict_map_key=True)
        return scalar_from_bytes(raw, parse_dtype(descr, "numpy scalar"), "numpy scalar")
    raise FormatError(f"unknown msgpack extension type {code} ({len(data)} bytes)")


def _list_hook(items: list[Any]) -> Any:
    if not items or type(items[0]) is not _Marker:
        return items
    kind = items[0].kind
    if kind == REF_LIST:
        if len(items) != 2:
            raise FormatError("a list of references is damaged")
        return list(map(Ref, unpack_ints(items[1], "a list of references").tolist()))
    if kind == TUPLE:
        return tuple(items[1:])
    if kind == PAIRS:
        if len(items) % 2 != 1:
            raise FormatError("a dict's key/value list has an odd length")
        return PairsDict(list(zip(items[1::2], items[2::2])))
    elements = items[1:]
    check_hash_spread(elements, "a set")
    return (set if kind == SET else frozenset)(elements)


def pack_value_document(doc: Any) -> bytes:
    """Pack graph values (and plain data) with ngser's msgpack extension types."""
    packer = msgpack.Packer(default=_ref_packer(), strict_types=True, use_bin_type=True, unicode_errors="surrogatepass")
    try:
        return packer.pack(doc)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        raise FormatError(f"cannot encode the graph as msgpack: {exc}") from exc


def unpack_value_document(data: bytes | memoryview, where: str) -> Any:
    """Unpack a document written by :func:`pack_value_document`."""
    try:
        return msgpack.unpackb(
            data,
            ext_hook=_ref_unpacker(),
            list_hook=_list_hook,
            strict_map_key=True,
            unicode_errors="surrogatepass",
            raw=False,
        )
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from exc
    except Exception as exc:
        raise FormatError(f"{where}: the graph is damaged ({type(exc).__name__}: {exc})") from exc


def ref_list(ids: Any) -> list[Any]:
    """The marked list that stores a list of references by their ids (packed by ``pack_ints``)."""
    return [_MARK_EXT[REF_LIST], ids]


def checked_flat(flat: Any, source: str) -> list[Any]:
    """The flat node table ``[id, name, version, state, ...]``, if it has that shape."""
    if not isinstance(flat, list) or len(flat) % 4:
        raise FormatError(f"{source}: the node table is damaged")
    return flat


def check_format(version: Any, source: str) -> None:
    """Refuse files of a graph format this ngser does not read."""
    if type(version) is not int or version < 1:
        raise FormatError(f"{source}: the header has no valid format version")
    if version > FORMAT_VERSION:
        raise VersionError(
            f"{source}: written in ngser format version {shown(version)}, but this ngser reads up to version "
            f"{FORMAT_VERSION}; upgrade ngser to read it"
        )
