"""Arrays in files, for every backend: dtype descriptions, raw buffers, the array table, lazy arrays."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, cast

import numpy as np
from numpy.lib import format as npformat

from ..errors import FormatError, shown
from ._checksum import crc32

__all__ = [
    "pack_ints",
    "unpack_ints",
    "describe_dtype",
    "parse_dtype",
    "raw_view",
    "check_shape",
    "check_code_points",
    "has_unicode",
    "scalar_bytes",
    "scalar_from_bytes",
    "ArrayEntry",
    "LazyArray",
    "check_disjoint",
]

#: Largest number of dimensions accepted from a file.
MAX_NDIM = 64
#: The largest code point a Python ``str`` may hold.
MAX_CODE_POINT = 0x10FFFF


def describe_dtype(dtype: np.dtype[Any]) -> Any:
    """A JSON-like description of ``dtype`` (``"<f8"``, or a list of fields for
    structured dtypes), as in the ``.npy`` format."""
    return npformat.dtype_to_descr(dtype)


def parse_dtype(descr: Any, where: str) -> np.dtype[Any]:
    """The dtype of a description read from a file; refuses object dtypes."""
    try:
        if isinstance(descr, list):
            descr = [tuple(field) if isinstance(field, list) else field for field in descr]
            descr = [_fix_field(field) for field in descr]
        dtype = npformat.descr_to_dtype(descr)
    except Exception as exc:
        raise FormatError(f"{where}: invalid array dtype {shown(descr)}: {exc}") from exc
    if dtype.hasobject:
        raise FormatError(f"{where}: array dtype {dtype} holds Python objects, which ngser never writes")
    return dtype


def _fix_field(field: Any) -> Any:
    # Nested descriptions come back from msgpack as lists; numpy wants tuples of (name, descr[, shape]).
    if isinstance(field, tuple) and len(field) >= 2:
        name, sub = field[0], field[1]
        if isinstance(sub, list):
            sub = [_fix_field(tuple(f) if isinstance(f, list) else f) for f in sub]
        rest = tuple(tuple(x) if isinstance(x, list) else x for x in field[2:])
        return (name, sub, *rest)
    return field


def check_shape(shape: Any, where: str) -> tuple[int, ...]:
    """A validated shape tuple read from a file."""
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise FormatError(f"{where}: invalid array shape {shown(shape)}")
    if not all(type(n) is int and 0 <= n < 2**63 for n in shape):
        raise FormatError(f"{where}: invalid array shape {shown(shape)}")
    return tuple(shape)


def raw_view(array: np.ndarray) -> tuple[memoryview, bool]:
    """The array's bytes without a copy where possible, and whether they are in Fortran order.

    A non-contiguous array (a strided view) is copied: only its own elements are
    stored, never the base array it views.
    """
    if array.flags.c_contiguous:
        fortran = False
    elif array.flags.f_contiguous:
        fortran = True
    else:
        array = np.ascontiguousarray(array)
        fortran = False
    if array.size == 0:
        return memoryview(b""), fortran
    return array.reshape(-1, order="F" if fortran else "C").view(np.uint8).data, fortran


def has_unicode(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` holds unicode text (``U``), also in fields and subarrays."""
    if dtype.kind == "U":
        return True
    if dtype.fields is not None:
        return any(has_unicode(field[0]) for field in dtype.fields.values())
    return dtype.subdtype is not None and has_unicode(dtype.subdtype[0])


def check_code_points(array: np.ndarray[Any, Any], where: str) -> None:
    """Refuse unicode (``U``) data read from a file with code points beyond U+10FFFF
    (:class:`~ngser.FormatError`): numpy turns any four bytes into a character, and ``str``
    objects holding such characters break Python's own invariants (``str.upper`` raises
    ``SystemError``). Call it only when :func:`has_unicode` says the dtype holds text."""
    dtype = array.dtype
    if dtype.names:
        for name in dtype.names:
            check_code_points(array[name], where)  # a subarray field comes back as extra dimensions
        return
    if dtype.kind != "U" or not dtype.itemsize or not array.size:
        return
    codes = array.view(np.dtype((np.dtype(np.uint32).newbyteorder(dtype.byteorder), (dtype.itemsize // 4,))))
    top = int(codes.max())
    if top > MAX_CODE_POINT:
        raise FormatError(
            f"{where}: unicode text of dtype {dtype} holds the value {top:#x}, which is not a character "
            f"(the largest is {MAX_CODE_POINT:#x}); text never holds it, so the file is damaged"
        )


def scalar_bytes(value: np.generic) -> bytes:
    """The raw bytes of a numpy scalar: exactly ``itemsize`` of them (``np.bytes_(b"")`` has
    itemsize 0, but ``tobytes()`` gives one padding byte)."""
    return value.tobytes()[: value.dtype.itemsize]


def scalar_from_bytes(raw: bytes, dtype: np.dtype[Any], where: str) -> np.generic:
    """The numpy scalar of ``dtype`` whose bytes are ``raw`` (see :func:`scalar_bytes`)."""
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise FormatError(f"{where}: a numpy scalar of dtype {dtype} has a payload of the wrong size")
    if dtype.itemsize == 0:
        return cast(np.generic, np.zeros((), dtype)[()])
    array = np.frombuffer(raw, dtype)
    if has_unicode(dtype):
        check_code_points(array, where)
    return cast(np.generic, array[0])


# -- the array table ------------------------------------------------------------------------
#: The fields an array-table row may hold, in the order a backend's layout names them.
ROW_FIELDS = frozenset({"id", "dtype", "shape", "fortran", "location", "nbytes", "crc", "label", "kind"})


@dataclass
class ArrayEntry:
    """One row of a file's array table, validated: what every backend stores about an array.

    ``location`` is where the bytes are (a byte offset, or a dataset path) and ``kind`` how
    (HDF5's storage kinds; 0 elsewhere). Rows are written and read in a layout, the tuple of
    field names a backend stores in that order (its format version 1 table, fixed)::

        MSGPACK_ROW = ("id", "dtype", "shape", "fortran", "location", "nbytes", "crc", "label")
        entry = ArrayEntry.parse(row, MSGPACK_ROW, "result.msgpack")
        entry.row(MSGPACK_ROW) == row
    """

    id: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    fortran: bool = False
    crc: int = 0
    label: str | None = None
    location: int | str = 0
    kind: int = 0
    where: str = field(default="", compare=False)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @classmethod
    def of(cls, array_id: int, data: np.ndarray[Any, Any], label: str | None) -> tuple[ArrayEntry, memoryview]:
        """The entry (checksum still 0) and raw bytes of an array about to be written."""
        if data.dtype.hasobject:
            raise FormatError(f"array node {array_id} has dtype {data.dtype}, which holds Python objects")
        view, fortran = raw_view(data)
        return cls(array_id, data.dtype, tuple(data.shape), fortran, 0, label), view

    def row(self, layout: tuple[str, ...]) -> list[Any]:
        """This entry as a table row of ``layout``."""
        values = {
            "id": self.id,
            "dtype": describe_dtype(self.dtype),
            "shape": list(self.shape),
            "fortran": self.fortran,
            "location": self.location,
            "nbytes": self.nbytes,
            "crc": self.crc,
            "label": self.label,
            "kind": self.kind,
        }
        return [values[name] for name in layout]

    @classmethod
    def parse(cls, row: Any, layout: tuple[str, ...], source: str) -> ArrayEntry:
        """A row of ``layout`` read from ``source``, checked: integer id, known dtype, valid
        shape, an ``nbytes`` (where the layout has one) that matches them, an integer checksum."""
        if not isinstance(row, list) or len(row) != len(layout):
            raise FormatError(f"{source}: an array table entry is damaged")
        fields = dict(zip(layout, row))
        nid = fields["id"]
        if type(nid) is not int or not 0 <= nid < 2**63:
            raise FormatError(f"{source}: an array table entry has a non-integer id; the file is damaged")
        where = f"{source}: array node {nid}"
        crc, location, kind = fields.get("crc", 0), fields.get("location", 0), fields.get("kind", 0)
        if type(crc) is not int or type(kind) is not int or type(location) not in (int, str):
            raise FormatError(f"{where}: its table entry is damaged")
        label = fields.get("label")
        entry = cls(
            nid,
            parse_dtype(fields["dtype"], where),
            check_shape(fields["shape"], where),
            bool(fields.get("fortran")),
            crc,
            label if isinstance(label, str) else None,
            location,
            kind,
            where,
        )
        if "nbytes" in fields and (type(fields["nbytes"]) is not int or fields["nbytes"] != entry.nbytes):
            raise FormatError(
                f"{where}: {shown(fields['nbytes'])} bytes do not hold {shown(entry.shape)} elements of {entry.dtype}"
            )
        return entry

    def array(self, buffer: np.ndarray[Any, Any], crc: int | None = None) -> np.ndarray[Any, Any]:
        """The array whose bytes are ``buffer`` (uint8), after checking them against the
        entry's checksum (``crc``: the buffer's, if the caller computed it already)."""
        if (crc32(buffer) if crc is None else crc) != self.crc:
            raise FormatError(
                f"{self.where} ({self.label or 'unnamed'}): the array data is damaged (checksum mismatch)"
            )
        array = buffer.view(self.dtype).reshape(self.shape, order="F" if self.fortran else "C")
        if has_unicode(self.dtype):
            check_code_points(array, f"{self.where} ({self.label or 'unnamed'})")
        return array


def check_disjoint(entries: list[ArrayEntry], source: str, within: str = "the data section") -> None:
    """Refuse entries whose byte ranges (``location`` to ``location + nbytes``) overlap: each stored
    payload backs one array, so several entries naming one payload (a 4 MB file asking for 1,000
    arrays of 4 MB) are damage, not sharing. Linear after a sort."""
    spans = sorted((int(e.location), e.nbytes, e.id) for e in entries if e.nbytes)
    for (start, size, first), (next_start, _, second) in itertools.pairwise(spans):
        if next_start < start + size:
            raise FormatError(
                f"{source}: array nodes {first} and {second} overlap in {within}; each array has bytes of its own "
                "in files ngser writes, so the file is damaged"
            )


def read_payload(stream: IO[bytes], start: int, entry: ArrayEntry) -> np.ndarray[Any, Any]:
    """The bytes of ``entry`` at ``start + entry.location`` of ``stream`` (not checked yet), read
    into a buffer of their own."""
    buffer = np.empty(entry.nbytes, np.uint8)
    if entry.nbytes:
        stream.seek(start + int(entry.location))
        if stream.readinto(buffer.data) != entry.nbytes:  # type: ignore[attr-defined]
            raise FormatError(f"{entry.where}: the file is truncated")
    return buffer


def payload_reader(source: str, start: int) -> Callable[[ArrayEntry], np.ndarray[Any, Any]]:
    """For :class:`LazyArray`: reads an entry's bytes with :func:`read_payload` from the file
    ``source``, opened for each read (a lazy array may outlive any one open file)."""

    def read(entry: ArrayEntry) -> np.ndarray[Any, Any]:
        with open(source, "rb") as stream:
            return read_payload(stream, start, entry)

    return read


class LazyArray:
    """An array still in its file: ``dtype`` and ``shape`` now, the data (checked) on indexing.

    ``read(entry)`` returns the entry's bytes as a uint8 array, owned by the caller.
    """

    def __init__(self, entry: ArrayEntry, read: Callable[[ArrayEntry], np.ndarray[Any, Any]]) -> None:
        self.entry, self._read = entry, read
        self.dtype, self.shape = entry.dtype, entry.shape

    def __getitem__(self, index: Any) -> Any:
        return self.entry.array(self._read(self.entry))[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        data = self.entry.array(self._read(self.entry))
        return data if dtype is None else data.astype(dtype)


#: Widths (bytes) of the signed little-endian integers :func:`pack_ints` may store.
_WIDTHS: dict[int, np.dtype[Any]] = {1: np.dtype("<i1"), 2: np.dtype("<i2"), 4: np.dtype("<i4"), 8: np.dtype("<i8")}


def pack_ints(values: np.ndarray[Any, Any]) -> list[Any]:
    """An int64 sequence as ``[base, deltas, width, bytes]``: ``bytes`` holds little-endian signed
    ints of ``width`` bytes, and value ``i`` is ``base + data[i]`` or, with ``deltas``,
    ``base + data[0] + ... + data[i]`` (ids handed out in order differ by 1), whichever is shorter.
    All in int64 arithmetic, which wraps around and so always gives the values back exactly.

    >>> pack_ints(np.arange(1000, 1004))
    [1000, False, 1, b'\\x00\\x01\\x02\\x03']
    """
    values = np.ascontiguousarray(values, np.int64)
    if not len(values):
        return [0, False, 1, b""]
    low, first = int(values.min()), int(values[0])
    with np.errstate(over="ignore"):
        offsets = values - np.int64(low)
        differences = np.diff(values, prepend=np.int64(first))
    plain, delta = _width(offsets), _width(differences)
    if delta < plain:
        return [first, True, delta, differences.astype(_WIDTHS[delta]).tobytes()]
    return [low, False, plain, offsets.astype(_WIDTHS[plain]).tobytes()]


def _width(data: np.ndarray[Any, Any]) -> int:
    """The fewest bytes that hold every value of ``data``."""
    low, high = int(data.min()), int(data.max())
    return next(w for w, dtype in _WIDTHS.items() if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max)


def unpack_ints(packed: Any, where: str) -> np.ndarray[Any, Any]:
    """The int64 array of a :func:`pack_ints` list."""
    if not (isinstance(packed, list) and len(packed) == 4):
        raise FormatError(f"{where}: a packed integer column is damaged")
    base, deltas, width, data = packed
    dtype = _WIDTHS.get(width) if type(width) is int else None
    if type(base) is not int or not -(2**63) <= base < 2**63 or type(deltas) is not bool:
        raise FormatError(f"{where}: a packed integer column is damaged")
    if dtype is None or not isinstance(data, bytes) or len(data) % dtype.itemsize:
        raise FormatError(f"{where}: a packed integer column is damaged")
    values: np.ndarray[Any, Any] = np.frombuffer(data, dtype).astype(np.int64)
    with np.errstate(over="ignore"):
        if deltas:
            np.cumsum(values, out=values)
        values += np.int64(base)
    return values
