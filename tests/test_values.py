"""Every graph value type survives every backend, through files and through bytes."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest

import ngser


def _float_from_bits(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


#: A quiet NaN with a payload (0x123) that ``math.nan`` does not have, and one with the sign set.
NAN_PAYLOAD = _float_from_bits(0x7FF8000000000123)
NEGATIVE_NAN = _float_from_bits(0xFFF8000000000000)

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    2**64,
    -(2**200),
    1.5,
    -0.0,
    math.inf,
    1 + 2j,
    complex(math.nan, -0.0),
    "",
    "unicode ∂Ω \U0001f600",
    "lone surrogate \udc80",
    b"",
    b"\x00\xff" * 10,
    [],
    [1, [2, [3]]],
    (),
    (1, (2, "x")),
    set(),
    {1, "a", (2, 3)},
    frozenset({1, 2}),
    {},
    {"a": 1, "b": [1, 2]},
    {1: "int key", (1, 2): "tuple key", None: "none key", 2.5: "float"},
    {frozenset({1}): {"nested": {3: 4}}},
    np.float32(1.25),
    np.int8(-3),
    np.uint64(2**64 - 1),
    np.complex128(1 - 1j),
    np.bool_(True),
    np.datetime64("2026-11-24T10:00", "s"),
    np.str_("numpy string"),
    # the oracle below tells these apart from 0.0 and from math.nan
    0.0,
    math.nan,
    NAN_PAYLOAD,
    NEGATIVE_NAN,
    [0.0, -0.0, NAN_PAYLOAD],
    (-0.0, 0.0),
    {-0.0: NAN_PAYLOAD, "nan": -0.0},
    {-0.0, 1},
    frozenset({NAN_PAYLOAD}),
    complex(-0.0, NAN_PAYLOAD),
    complex(NAN_PAYLOAD, 0.0),
    np.float64(-0.0),
    np.float64(NAN_PAYLOAD),
    np.float32(-0.0),
    np.complex128(complex(-0.0, NAN_PAYLOAD)),
]


def difference(a: Any, b: Any, where: str = "value") -> str | None:
    """Where ``b`` is not an exact copy of ``a``, or None: an oracle of its own, independent
    of ngser (which must not judge its own round trips). Types must be identical at every
    level; floats are compared by their bytes (-0.0 is not 0.0, NaN payloads and signs count),
    complex numbers by both parts' bytes, numpy scalars by dtype and bytes, arrays by dtype,
    shape and bytes, dicts in key order, sets by matching their elements one to one."""
    if type(a) is not type(b):
        return f"{where}: type {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            return f"{where}: array {a.dtype}{a.shape} became {b.dtype}{b.shape} {b!r}"
        return None
    if isinstance(a, np.generic):  # before float: np.float64 is a float too
        if a.dtype != b.dtype or a.tobytes() != b.tobytes():
            return f"{where}: {a.dtype} {a.tobytes().hex()} became {b.dtype} {b.tobytes().hex()}"
        return None
    if type(a) is float:
        if struct.pack("<d", a) != struct.pack("<d", b):
            return f"{where}: float {struct.pack('>d', a).hex()} became {struct.pack('>d', b).hex()}"
        return None
    if type(a) is complex:
        return difference(a.real, b.real, f"{where}.real") or difference(a.imag, b.imag, f"{where}.imag")
    if type(a) in (list, tuple):
        if len(a) != len(b):
            return f"{where}: length {len(a)} became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    if type(a) is dict:
        if len(a) != len(b):
            return f"{where}: {len(a)} keys became {len(b)}"
        for i, ((ka, va), (kb, vb)) in enumerate(zip(a.items(), b.items())):
            found = difference(ka, kb, f"{where}: key {i}") or difference(va, vb, f"{where}[{ka!r}]")
            if found:
                return found
        return None
    if type(a) in (set, frozenset):
        if len(a) != len(b):
            return f"{where}: {len(a)} elements became {len(b)}"
        unmatched = list(b)
        for x in a:
            match = next((i for i, y in enumerate(unmatched) if difference(x, y) is None), None)
            if match is None:
                return f"{where}: element {x!r} has no exact copy in {b!r}"
            del unmatched[match]
        return None
    if type(a) in (type(None), bool, int, str, bytes):
        return None if a == b else f"{where}: {a!r} became {b!r}"
    raise TypeError(f"{where}: the oracle does not know {type(a).__name__}")


def test_the_oracle_tells_apart_what_equality_does_not() -> None:
    assert difference(0.0, -0.0) and difference(math.nan, NAN_PAYLOAD) and difference(NAN_PAYLOAD, NEGATIVE_NAN)
    assert difference(1, 1.0) and difference(True, 1) and difference((1,), [1]) and difference({1}, frozenset({1}))
    assert difference({"a": 1, "b": 2}, {"b": 2, "a": 1}) and difference({0.0}, {-0.0})
    assert difference(complex(0.0, -0.0), complex(0.0, 0.0)) and difference(np.float64(-0.0), np.float64(0.0))
    assert difference(np.float32(1), np.float64(1)) and difference(np.arange(3), np.arange(3).astype(np.int32))
    assert difference(np.zeros((2, 3)), np.zeros((3, 2))) and difference(np.datetime64(1, "s"), np.datetime64(1, "m"))
    assert difference([1, {2: (3, {4.5})}], [1, {2: (3, {4.5})}]) is None
    for value in VALUES:
        assert difference(value, value) is None, value


def _check(a: Any, b: Any) -> None:
    found = difference(a, b)
    assert found is None, found


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_value_roundtrip(value: Any, roundtrip: Any) -> None:
    _check(value, roundtrip(value))


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_value_roundtrip_bytes(value: Any, fmt: str) -> None:
    _check(value, ngser.loads(ngser.dumps(value, format=fmt)))


def test_nan_float(roundtrip: Any) -> None:
    assert math.isnan(roundtrip(math.nan))


def test_dict_order_and_key_types_kept(roundtrip: Any) -> None:
    value = {"z": 1, 3: 2, "a": 3, (1,): 4}
    out = roundtrip(value)
    assert list(out) == list(value)
    assert out == value


ARRAYS = [
    np.arange(12, dtype=np.float64).reshape(3, 4),
    np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
    np.arange(10, dtype=">i4"),
    np.array(3.5),
    np.zeros((0, 5)),
    np.zeros((3, 0, 2), dtype=np.complex64),
    (np.arange(6) + 1j * np.arange(6)).astype(np.complex128),
    np.array([True, False, True]),
    np.array([b"ab", b"cde"]),
    np.array(["unicode", "ω"]),
    np.array([(1, 2.5, b"x"), (3, 4.5, b"y")], dtype=[("a", "<i4"), ("b", ">f8"), ("c", "S2")]),
    np.zeros(3, dtype=[("pos", "<f8", (3,)), ("nested", [("x", "u1"), ("y", "<i2")])]),
    np.arange(20, dtype=np.uint16)[::3],
    np.arange(24).reshape(4, 6)[1:3, ::2],
    np.array(["2026-01-01", "2026-06-01"], dtype="datetime64[D]"),
    np.float16([1, 2]),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}-{a.shape}")
def test_array_roundtrip(array: np.ndarray, roundtrip: Any) -> None:
    out = roundtrip(array)
    assert type(out) is np.ndarray
    assert out.dtype == array.dtype
    assert out.shape == array.shape
    assert out.tobytes() == array.tobytes()
    out[...] = out  # loaded arrays are writable
    assert out.flags.writeable


def test_fortran_order_kept(roundtrip: Any) -> None:
    array = np.asfortranarray(np.random.default_rng(0).random((40, 30)))
    out = roundtrip(array)
    assert out.flags.f_contiguous
    np.testing.assert_array_equal(out, array)


def test_object_arrays_refused(fmt: str) -> None:
    with pytest.raises(ngser.UnsupportedTypeError, match="Python objects"):
        ngser.dumps(np.array([1, "a"], dtype=object), format=fmt)


def test_large_array_roundtrip(roundtrip: Any) -> None:
    array = np.random.default_rng(1).random(3_000_000)
    np.testing.assert_array_equal(roundtrip(array), array)
