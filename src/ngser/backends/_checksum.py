"""CRC32 of large buffers on every core, with the same value as :func:`zlib.crc32`.

Every array ngser writes carries the CRC32 of its bytes, and every load checks it. At
about 4 GB/s on one core that costs as much as the read itself, so a large buffer is cut
into pieces whose CRCs are computed on a shared pool of threads (``zlib.crc32`` releases
the GIL) and joined with :func:`crc32_combine`. The result is bit for bit
``zlib.crc32(buffer)``: the file format does not change.

>>> job = crc32_async(big_array)      # starts now, on helper threads
>>> ...                               # read or write the next array meanwhile
>>> job.result() == zlib.crc32(big_array)
True

Callers that only want the value use :func:`crc32`.
"""

from __future__ import annotations

import os
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["CrcJob", "crc32", "crc32_async", "crc32_combine"]

#: Buffers smaller than this are checksummed at once in the calling thread.
PARALLEL_THRESHOLD = 1 << 20
#: The smallest piece a buffer is cut into for the pool.
MIN_PIECE = 1 << 22

_POLY = 0xEDB88320  # the CRC-32 polynomial, bit-reflected, as zlib uses it
_X0 = 1 << 31  # the polynomial 1 (x^0) in zlib's reflected representation


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial (zlib's ``multmodp``)."""
    m, product = _X0, 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                return product
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _x2n_table() -> list[int]:
    table, p = [], 1 << 30  # x^1
    for _ in range(32):
        table.append(p)
        p = _multmodp(p, p)
    return table


_X2N = _x2n_table()  # x^(2^k) modulo the polynomial, k = 0..31


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC32 of ``A + B`` from ``crc1 = crc32(A)``, ``crc2 = crc32(B)`` and ``len2 = len(B)``.

    >>> crc32_combine(zlib.crc32(b"ab"), zlib.crc32(b"cd"), 2) == zlib.crc32(b"abcd")
    True
    """
    if len2 < 0:
        raise ValueError("len2 must not be negative")
    shift, n, k = _X0, len2, 3  # multiply crc1 by x^(8 * len2)
    while n:
        if n & 1:
            shift = _multmodp(_X2N[k & 31], shift)
        n >>= 1
        k += 1
    return _multmodp(shift, crc1) ^ crc2


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return max(1, min(count, 8))


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_workers(), thread_name_prefix="ngser-crc32")
        return _pool


def _forget_pool() -> None:
    """In a forked child the parent's threads do not exist: start a new pool on demand."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


class CrcJob:
    """The CRC32 of a buffer, being computed on the pool; :meth:`result` waits for it."""

    __slots__ = ("_parts", "_value")

    def __init__(self, parts: list[tuple[Future[int], int]] | None = None, value: int | None = None) -> None:
        self._parts = parts or []
        self._value = value

    def result(self) -> int:
        """The CRC32 (as :func:`zlib.crc32` would give it); waits for the pieces."""
        if self._value is None:
            value = 0
            for index, (future, length) in enumerate(self._parts):
                crc = future.result()
                value = crc if index == 0 else crc32_combine(value, crc, length)
            self._value, self._parts = value, []
        return self._value


def _bytes_view(buffer: Any) -> memoryview:
    view = memoryview(buffer)
    if not view.c_contiguous:
        raise ValueError("the CRC32 needs a C-contiguous buffer")
    return view if view.ndim == 1 and view.itemsize == 1 else view.cast("B")


def crc32_async(buffer: Any) -> CrcJob:
    """Start the CRC32 of ``buffer`` (anything with the buffer protocol, contiguous) on
    the shared pool of threads; small buffers are done at once. The buffer must not
    change until :meth:`CrcJob.result` returns."""
    view = _bytes_view(buffer)
    size = view.nbytes
    if size < PARALLEL_THRESHOLD:
        return CrcJob(value=zlib.crc32(view))
    pool = _get_pool()
    pieces = max(1, min(_workers(), size // MIN_PIECE))
    step = -(-size // pieces)
    parts = []
    for start in range(0, size, step):
        piece = view[start : start + step]
        parts.append((pool.submit(zlib.crc32, piece), piece.nbytes))
    return CrcJob(parts)


def crc32(buffer: Any) -> int:
    """``zlib.crc32(buffer)``, computed on every core for a large buffer.

    >>> crc32(np.arange(10**7)) == zlib.crc32(np.arange(10**7))
    True
    """
    return crc32_async(buffer).result()
