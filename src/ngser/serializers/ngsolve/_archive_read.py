"""Reading a few fields out of the ngcore archive bytes of a live NGSolve object.

NGSolve exposes some parameters of its objects only through their archive (``cf.data["data"]``
for a CoefficientFunction node): the constant of a ``ConstantCoefficientFunction``, the axis of
a coordinate, the factor of a scaling. ngser reads them when *saving*, from bytes NGSolve has
just produced for an object in memory, and stores them as plain values; it never hands archive
bytes from a file to this reader or to NGSolve. Each reader checks its bounds and returns
``None`` when the bytes do not have the expected layout: the caller then falls back to
NGSolve's own bytes (trusted-only), so an unknown NGSolve version degrades, never misreads.

Layout facts (ngcore's ``BinaryOutArchive``, little-endian, the same in 6.2.2501 and 6.2.2608):
a polymorphic object starts with the int32 marker ``-3`` and its C++ class name as an int32
length and that many bytes; ints are 4 bytes, ``size_t`` 8, doubles 8, complex 16, bools 1;
strings are an int32 length and the bytes.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["PERIODIC_CLASSES", "ArchiveFields", "PeriodicFields", "archive_fields", "periodic_fields"]

_POLYMORPHIC = -3
#: Class names longer than this are not a CoefficientFunction archive.
_MAX_CLASS_NAME = 512


class ArchiveFields:
    """The class name of an archived object and bounds-checked readers of the bytes after it."""

    __slots__ = ("cls", "rest")

    def __init__(self, cls: str, rest: bytes) -> None:
        self.cls = cls
        self.rest = rest

    def leading_string(self, limit: int = 64) -> str | None:
        """The string the fields start with (an operator or function name), or None."""
        if len(self.rest) < 4:
            return None
        (size,) = struct.unpack_from("<i", self.rest, 0)
        if not 0 <= size <= limit or 4 + size > len(self.rest):
            return None
        try:
            return self.rest[4 : 4 + size].decode("ascii")
        except UnicodeDecodeError:
            return None

    def _tail(self, size: int, offset_from_end: int = 0) -> bytes | None:
        end = len(self.rest) - offset_from_end
        if end - size < 0:
            return None
        return self.rest[end - size : end]

    def last_int(self, offset_from_end: int = 0) -> int | None:
        raw = self._tail(4, offset_from_end)
        return None if raw is None else int(struct.unpack("<i", raw)[0])

    def last_double(self) -> float | None:
        raw = self._tail(8)
        return None if raw is None else float(struct.unpack("<d", raw)[0])

    def last_complex(self) -> complex | None:
        raw = self._tail(16)
        return None if raw is None else complex(*struct.unpack("<dd", raw))

    def first_double(self) -> float | None:
        return float(struct.unpack_from("<d", self.rest, 0)[0]) if len(self.rest) >= 8 else None

    def first_complex(self) -> complex | None:
        return complex(*struct.unpack_from("<dd", self.rest, 0)) if len(self.rest) >= 16 else None

    def region_kind(self, count: int) -> tuple[bool, int | None] | None:
        """``(known, vb)`` of a ``DomainWiseCoefficientFunction`` with ``count`` children: its
        ``optional<VorB>``, which 6.2.2608 writes after the child count (``size_t n, bool has,
        int vb``) and 6.2.2501 before it (``bool has, int vb, size_t n``). None if neither fits."""
        rest = self.rest
        if len(rest) >= 9 and struct.unpack_from("<Q", rest, 0)[0] == count:  # 6.2.2608
            has = rest[8]
            if has == 0:
                return True, None
            if has == 1 and len(rest) >= 13:
                return True, int(struct.unpack_from("<i", rest, 9)[0])
        if len(rest) >= 9 and rest[0] in (0, 1):  # 6.2.2501
            has, at = rest[0], 1
            vb = None
            if has:
                if len(rest) < 13:
                    return None
                vb, at = int(struct.unpack_from("<i", rest, 1)[0]), 5
            if len(rest) >= at + 8 and struct.unpack_from("<Q", rest, at)[0] == count:
                return True, vb
        return None


def archive_fields(data: bytes) -> ArchiveFields | None:
    """The class name and field bytes of a polymorphic archive, or None if ``data`` is not one."""
    if len(data) < 8:
        return None
    marker, size = struct.unpack_from("<ii", data, 0)
    if marker != _POLYMORPHIC or not 0 < size <= _MAX_CLASS_NAME or 8 + size > len(data):
        return None
    try:
        cls = data[8 : 8 + size].decode("ascii")
    except UnicodeDecodeError:
        return None
    return ArchiveFields(cls, bytes(data[8 + size :]))


# -- Periodic spaces ---------------------------------------------------------------------------
#: The archive class names of NGSolve's periodic spaces and the Python class each one is.
PERIODIC_CLASSES = {
    "ngcomp::PeriodicFESpace": "Periodic",
    "ngcomp::QuasiPeriodicFESpace<double>": "QuasiPeriodicD",
    "ngcomp::QuasiPeriodicFESpace<std::complex<double>>": "QuasiPeriodicC",
    "ngcomp::QuasiPeriodicFESpace<std::complex<double> >": "QuasiPeriodicC",
}
#: Bounds on what a periodic space's archive may hold: list lengths, string lengths, nesting.
_MAX_ITEMS = 1 << 20
_MAX_STRING = 1 << 16
_MAX_FLAGS_DEPTH = 4


class _Bad(Exception):
    """The bytes do not have the expected layout (internal to the readers below)."""


class _Cursor:
    """Bounds-checked reads of ngcore's ``BinaryOutArchive`` values from ``data``, at ``at``."""

    __slots__ = ("at", "data", "shared")

    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.at = data, at
        self.shared = 0  # shared_ptrs met so far (ngcore numbers them in order)

    def _take(self, size: int) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise _Bad
        self.at += size
        return self.data[self.at - size : self.at]

    def int32(self) -> int:
        return int(struct.unpack("<i", self._take(4))[0])

    def count(self) -> int:
        n = int(struct.unpack("<Q", self._take(8))[0])
        if n > _MAX_ITEMS:
            raise _Bad
        return n

    def boolean(self) -> bool:
        b = self._take(1)[0]
        if b not in (0, 1):
            raise _Bad
        return bool(b)

    def doubles(self, n: int) -> list[float]:
        return [float(v) for v in struct.unpack(f"<{n}d", self._take(8 * n))]

    def ints(self, n: int) -> list[int]:
        return [int(v) for v in struct.unpack(f"<{n}i", self._take(4 * n))]

    def string(self) -> str:
        size = self.int32()
        if not 0 <= size <= _MAX_STRING:
            raise _Bad
        try:
            return self._take(size).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Bad from exc

    def strings(self) -> list[str]:
        return [self.string() for _ in range(self.count())]

    def shared_array(self, item: str) -> list[Any] | None:
        """A new ``shared_ptr<Array<T>>`` (``-1``, no downcast, ``-1``, size, items) with ``T``
        ``"i"`` (int), ``"d"`` (double), ``"D"`` (complex) or ``"s"`` (string); ``None`` for a
        null or already archived pointer (``-2``, or its number and no downcast)."""
        nr = self.int32()
        if nr == -2:
            return None
        if 0 <= nr < self.shared:
            if self.boolean():
                raise _Bad
            return None
        if nr != -1 or self.boolean() or self.int32() != -1:
            raise _Bad
        self.shared += 1
        n = self.count()
        if item == "i":
            return self.ints(n)
        if item == "d":
            return self.doubles(n)
        if item == "D":
            flat = self.doubles(2 * n)
            return [complex(flat[2 * i], flat[2 * i + 1]) for i in range(n)]
        return [self.string() for _ in range(n)]

    def skip_flags(self, with_any: bool, depth: int = 0) -> None:
        """Step over a ``Flags`` archive: string, number, define, number-list, string-list and
        flag-list flags, each a list of names and a list of values, then (``with_any``, 6.2.2608)
        the names and count of "any" flags, whose values go to Python, not to the bytes."""
        if depth > _MAX_FLAGS_DEPTH:
            raise _Bad
        self.strings(), self.strings()
        self.strings(), self.doubles(self.count())
        self.strings(), [self.boolean() for _ in range(self.count())]
        for item in ("d", "s", "flags", "any") if with_any else ("d", "s", "flags"):
            names = self.strings()
            if self.count() != len(names):
                raise _Bad
            for _ in names:
                if item == "flags":
                    self.skip_flags(with_any, depth + 1)
                elif item != "any":
                    self.shared_array(item)


class PeriodicFields:
    """What a periodic space's archive holds: its Python class, identification numbers, phase."""

    __slots__ = ("cls", "phase", "use_idnrs")

    def __init__(self, cls: str, use_idnrs: list[int], phase: list[Any] | None) -> None:
        self.cls, self.use_idnrs, self.phase = cls, use_idnrs, phase


def periodic_fields(data: bytes) -> PeriodicFields | None:
    """The parameters of a ``Periodic``/``QuasiPeriodicD``/``QuasiPeriodicC`` space from its
    archive bytes, or None if they do not have one of the two layouts known.

    The constructor arguments come first, after the class name: 6.2.2608 writes them in order
    (the base space goes to Python, then ``Flags``, ``shared_ptr<Array<int>>`` used identification
    numbers, and for quasi-periodic spaces ``shared_ptr<Array<double|complex>>`` factors), then
    the factors again as a reference to shared pointer number ``k`` and the spaces' own fields;
    6.2.2501 writes them in reverse (factors, identification numbers, flags), then the base
    ``FESpace`` fields.
    """
    fields = archive_fields(data)
    if fields is None or fields.cls not in PERIODIC_CLASSES:
        return None
    cls = PERIODIC_CLASSES[fields.cls]
    item = {"Periodic": "", "QuasiPeriodicD": "d", "QuasiPeriodicC": "D"}[cls]
    start = len(data) - len(fields.rest)
    for layout in (_periodic_in_order, _periodic_reversed):
        try:
            found = layout(_Cursor(data, start), item)
        except _Bad:
            continue
        if found is not None:
            return PeriodicFields(cls, *found)
    return None


def _periodic_in_order(cur: _Cursor, item: str) -> tuple[list[int], list[Any] | None] | None:
    cur.skip_flags(with_any=True)
    idnrs = cur.shared_array("i")
    phase = cur.shared_array(item) if item else None
    if idnrs is None or (item and phase is None):
        return None
    if not item:  # a Periodic space has no fields of its own: the bytes end here
        return (idnrs, None) if cur.at == len(cur.data) else None
    # the spaces' own fields start with the factors again: a reference to the last shared_ptr
    if cur.int32() != cur.shared - 1 or cur.boolean():
        return None
    return idnrs, phase


def _periodic_reversed(cur: _Cursor, item: str) -> tuple[list[int], list[Any] | None] | None:
    phase = cur.shared_array(item) if item else None
    idnrs = cur.shared_array("i")
    if idnrs is None or (item and phase is None):
        return None
    cur.skip_flags(with_any=False)  # the flags follow (without "any" flags): check that they do
    return idnrs, phase
