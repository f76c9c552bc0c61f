"""numpy helpers shared by the backends: dtype descriptions and raw buffers."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib import format as npformat

from .errors import FormatError

__all__ = ["describe_dtype", "parse_dtype", "raw_view", "check_shape", "scalar_bytes", "scalar_from_bytes"]

#: Largest number of dimensions accepted from a file.
MAX_NDIM = 64


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
        raise FormatError(f"{where}: invalid array dtype {descr!r}: {exc}") from exc
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
        raise FormatError(f"{where}: invalid array shape {shape!r}")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise FormatError(f"{where}: invalid array shape {shape!r}")
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
    return memoryview(array.reshape(-1, order="F" if fortran else "C").view(np.uint8)), fortran


def scalar_bytes(value: np.generic) -> bytes:
    """The raw bytes of a numpy scalar: exactly ``itemsize`` of them (``np.bytes_(b"")`` has
    itemsize 0, but ``tobytes()`` gives one padding byte)."""
    return value.tobytes()[: value.dtype.itemsize]


def scalar_from_bytes(raw: bytes, dtype: np.dtype[Any], where: str) -> np.generic:
    """The numpy scalar of ``dtype`` whose bytes are ``raw`` (see :func:`scalar_bytes`)."""
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise FormatError(f"{where}: a numpy scalar of dtype {dtype} has a payload of the wrong size")
    if dtype.itemsize == 0:
        return np.zeros((), dtype)[()]  # type: ignore[no-any-return]
    return np.frombuffer(raw, dtype)[0]  # type: ignore[no-any-return]
