"""Every graph value type survives every backend, through files and through bytes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import ngser
from ngser.graph import values_equal

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
]


def _check(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    if isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
        return
    assert values_equal(a, b) or a == b, (a, b)
    if isinstance(a, (list, tuple)):
        for x, y in zip(a, b):
            _check(x, y)
    if isinstance(a, dict):
        for key in a:
            _check(a[key], b[key])


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
