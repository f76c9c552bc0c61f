"""Stable classes and sample data for the format fixtures and the reliability tests.

The committed files under ``tests/fixtures/`` store the type names registered here
(``ngser_fixtures.*``). Never rename these names or change what a class's state
means without raising its serializer version and adding a migration: old fixture
files must keep loading. Usage::

    from fixture_types import REGISTRY, fixture_objects, same
    data = ngser.dumps(fixture_objects(), registry=REGISTRY)
    assert same(ngser.loads(data, registry=REGISTRY), fixture_objects())
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

import numpy as np

import ngser
from ngser.serializers.registry import BUILTIN_PROVIDERS

__all__ = [
    "REGISTRY",
    "Point",
    "Node",
    "Field",
    "Sample",
    "fixture_values",
    "fixture_objects",
    "fixture_tables",
    "same",
]

#: A registry of its own, so the fixture names never collide with other tests' registrations.
REGISTRY = ngser.Registry(BUILTIN_PROVIDERS)


@dataclasses.dataclass
class Point:
    """Default state (``__dict__``), version 1."""

    x: float
    y: float


class Node:
    """Default state with references: parents and children form cycles."""

    def __init__(self, name: str, parent: Node | None = None) -> None:
        self.name = name
        self.parent = parent
        self.children: list[Node] = []
        if parent is not None:
            parent.children.append(self)


class Field:
    """Custom dump/load (one-phase), holding a named array and a shared point."""

    def __init__(self, values: np.ndarray, origin: Point, unit: str) -> None:
        self.values = values
        self.origin = origin
        self.unit = unit


class Sample:
    """Default state of many kinds, stored in node tables (format 2) when met in numbers."""

    def __init__(self, i: int, owner: Point | None, data: np.ndarray | None) -> None:
        self.index = i
        self.flag = i % 3 == 0
        self.label = f"sample {i}"
        self.owner = owner
        self.data = data
        self.extra = (i, [i * 0.5]) if i % 2 else None
        self.big = 2**70 + i if i == 7 else i


ngser.register(Point, name="ngser_fixtures.Point", registry=REGISTRY)
ngser.register(Sample, name="ngser_fixtures.Sample", registry=REGISTRY)
ngser.register(Node, name="ngser_fixtures.Node", registry=REGISTRY)
ngser.register(
    Field,
    name="ngser_fixtures.Field",
    version=1,
    dump=lambda f: {"values": f.values, "origin": f.origin, "unit": f.unit},
    load=lambda s: Field(s["values"], s["origin"], s["unit"]),
    registry=REGISTRY,
)


def fixture_values() -> dict[str, Any]:
    """Every kind of graph value, deterministic (no random numbers: they may change with numpy)."""
    return {
        "none": None,
        "bools": [True, False],
        "ints": [0, -1, 2**31, -(2**63), 2**64, 2**200, -(2**200)],
        "floats": [0.0, -0.0, 1.5, -2.25e-300, math.inf, -math.inf, math.nan],
        "complex": [1 + 2j, complex(math.inf, -0.0)],
        "str": ["", "ascii", "ünïcödé ∑ 😀"],
        "bytes": [b"", b"\x00\xff\x80binary"],
        "tuple": (1, (2, 3), ()),
        "set": {1, "two", (3, 4)},
        "frozenset": frozenset({b"x", 5}),
        "nested": {"list": [[], [[]], {"deep": [1, {"deeper": (None,)}]}]},
        "non_str_keys": {1: "int", (1, 2): "tuple", None: "none", 2.5: "float", b"k": "bytes", frozenset({1}): "fs"},
        "numpy_scalars": [
            np.float64(1.25),
            np.float32(-3.5),
            np.float16(0.5),
            np.int8(-7),
            np.uint64(2**64 - 1),
            np.complex128(1 - 1j),
            np.bool_(True),
            np.datetime64("2024-01-02T03:04:05", "s"),
            np.timedelta64(90, "m"),
            np.str_("numpy str"),
            np.bytes_(b"numpy bytes"),
        ],
        "arrays": {
            "f8": np.linspace(0.0, 1.0, 11),
            "i4_2d": np.arange(12, dtype="<i4").reshape(3, 4),
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            "big_endian": np.arange(5, dtype=">u2"),
            "c16": np.array([1 + 2j, -3.5j]),
            "bool": np.array([True, False, True]),
            "empty": np.zeros((0, 3)),
            "zero_d": np.array(42.0),
            "structured": np.array([(1, 2.5), (3, -1.0)], dtype=[("id", "<i8"), ("w", "<f4")]),
            "strings": np.array(["a", "bc"], dtype="<U2"),
            "strided_view": np.arange(20.0)[::4],
        },
    }


def fixture_objects() -> dict[str, Any]:
    """Registered objects: shared references, a cycle, a custom serializer with an array, builtins."""
    origin = Point(1.0, -2.0)
    root = Node("root")
    child = Node("child", root)
    Node("grandchild", child)
    shared = np.arange(8.0)
    field = Field(shared, origin, "m/s")
    return {
        "origin": origin,
        "tree": root,
        "field": field,
        "same_array": shared,
        "same_field": [field, field],
        "builtins": [range(1, 10, 3), slice(None, 5), bytearray(b"ba")],
    }


def fixture_tables() -> dict[str, Any]:
    """Objects in numbers, which the encoder stores as node tables: float columns with NaN,
    -0.0 and infinities, references with ``None`` and to a single node, per-object and shared
    arrays, values of every kind, key orders that differ within a type, and a cycle between a
    table and a single node (the children of one root, each referring back to it)."""
    specials = [math.nan, -0.0, math.inf, -math.inf]
    points = [Point(float(i) if i >= 4 else specials[i], -i / 3) for i in range(100)]
    shared = np.arange(3.0)
    arrays = [shared if i % 5 == 0 else np.arange(i % 7) if i % 9 == 1 else None for i in range(90)]
    samples = [Sample(i, points[i % 10] if i % 4 else None, arrays[i]) for i in range(90)]
    for sample in samples[::9]:  # another key order of the same type
        sample.__dict__ = dict(reversed(list(sample.__dict__.items())))
    root = Node("root")
    for i in range(80):
        Node(f"leaf {i}", root)
    return {"points": points, "samples": samples, "tree": root, "first": samples[0], "count": len(samples)}


def same(a: Any, b: Any, memo: dict[int, int] | None = None) -> bool:
    """Whether ``b`` is a faithful copy of ``a``: equal values of the same types (NaN equal
    to NaN, -0.0 unlike 0.0, arrays by dtype, shape, order and bytes), and objects and arrays
    shared in ``a`` are shared the same way in ``b``."""
    memo = {} if memo is None else memo
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray) or type(a) in (Point, Node, Field, Sample):
        seen = memo.get(id(a))
        if seen is not None:
            return seen == id(b)
        if id(b) in memo.values():
            return False
        memo[id(a)] = id(b)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and _fortran(a) == _fortran(b) and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if type(a) is complex:
        return same(a.real, b.real, memo) and same(a.imag, b.imag, memo)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y, memo) for x, y in zip(a, b))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(ka, kb, memo) and same(va, vb, memo) for (ka, va), (kb, vb) in zip(a.items(), b.items())
        )
    if type(a) in (Point, Node, Field, Sample):
        return same(vars(a), vars(b), memo)
    return bool(a == b)


def _fortran(a: np.ndarray) -> bool:
    """Whether the backends store ``a`` in Fortran order."""
    return bool(a.flags.f_contiguous and not a.flags.c_contiguous)
