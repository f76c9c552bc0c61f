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

__all__ = ["ArchiveFields", "archive_fields"]

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
