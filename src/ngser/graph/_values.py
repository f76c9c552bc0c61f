"""The value vocabulary: every kind of value a graph state may hold, defined once.

Serializers produce these values, backends store them, and every module that looks inside
a value (the encoder and decoder, the value codec, ``ngser open``, ``ngser info``, the HDF5
path builder) takes its kinds from :data:`KINDS` and walks values with :func:`children`,
:func:`items` or :func:`iter_refs`. Adding a kind means adding it here, to the codec's table of
encodings, and to the encoder and decoder, whose hot loops test these same type sets inline.

======================  ====================================================
kind                    Python type
======================  ====================================================
atomic                  ``None``, ``bool``, ``int`` (any size), ``float``, ``complex``,
                        ``str``, ``bytes``
containers              ``list``, ``tuple``, ``set``, ``frozenset``, ``dict`` with ``str``
                        keys, :class:`PairsDict` for dicts with other keys
``Kind.SCALAR``         numpy scalars (``numpy.generic``, not of object dtype)
``Kind.REF``            :class:`Ref`, a reference to a node by its integer id
======================  ====================================================
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..errors import FormatError

__all__ = [
    "ATOMIC_TYPES",
    "MAX_SAME_HASH",
    "check_hash_spread",
    "CONTAINER_TYPES",
    "KINDS",
    "PLAIN_CONTAINERS",
    "Kind",
    "PairsDict",
    "Ref",
    "children",
    "items",
    "iter_refs",
    "kind_of",
    "values_equal",
]


class Ref:
    """A reference to the node (object or array) with id :attr:`id`."""

    __slots__ = ("id",)

    def __init__(self, id: int) -> None:
        self.id = id

    def __eq__(self, other: object) -> bool:
        return type(other) is Ref and other.id == self.id

    def __hash__(self) -> int:
        return hash(("ngser.Ref", self.id))

    def __repr__(self) -> str:
        return f"Ref({self.id})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.id,))


class PairsDict:
    """A dict whose keys are not all strings, kept as a list of ``(key, value)`` pairs."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[Any, Any]]) -> None:
        self.pairs = pairs

    def __eq__(self, other: object) -> bool:
        return type(other) is PairsDict and other.pairs == self.pairs

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PairsDict({self.pairs!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (PairsDict, (self.pairs,))


# Pickles of graph values name the public package, wherever the classes are defined.
Ref.__module__ = PairsDict.__module__ = "ngser.graph"


class Kind(enum.Enum):
    """The kinds of graph values."""

    NONE = "none"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    COMPLEX = "complex"
    STR = "str"
    BYTES = "bytes"
    LIST = "list"
    TUPLE = "tuple"
    SET = "set"
    FROZENSET = "frozenset"
    DICT = "dict"
    PAIRS = "pairs"
    SCALAR = "scalar"
    REF = "ref"


#: Exact Python type -> kind (numpy scalars, of many types, are found by :func:`kind_of`).
KINDS: dict[type, Kind] = {
    type(None): Kind.NONE,
    bool: Kind.BOOL,
    int: Kind.INT,
    float: Kind.FLOAT,
    complex: Kind.COMPLEX,
    str: Kind.STR,
    bytes: Kind.BYTES,
    list: Kind.LIST,
    tuple: Kind.TUPLE,
    set: Kind.SET,
    frozenset: Kind.FROZENSET,
    dict: Kind.DICT,
    PairsDict: Kind.PAIRS,
    Ref: Kind.REF,
}

_ATOMIC_KINDS = (Kind.NONE, Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.COMPLEX, Kind.STR, Kind.BYTES)
#: Values that are their own graph representation and hold nothing.
ATOMIC_TYPES: frozenset[type] = frozenset(t for t, k in KINDS.items() if k in _ATOMIC_KINDS)
#: Container values of a graph (they hold other values).
CONTAINER_TYPES: frozenset[type] = frozenset(t for t, k in KINDS.items() if k not in _ATOMIC_KINDS and t is not Ref)
#: The Python containers the encoder keeps as values (a :class:`PairsDict` is its output, never its input).
PLAIN_CONTAINERS: frozenset[type] = CONTAINER_TYPES - {PairsDict}


def kind_of(value: Any) -> Kind | None:
    """The kind of ``value``, or ``None`` if it is not a graph value.

    >>> kind_of((1, 2)), kind_of(np.float32(1)), kind_of(object())
    (<Kind.TUPLE: 'tuple'>, <Kind.SCALAR: 'scalar'>, None)
    """
    kind = KINDS.get(type(value))
    if kind is None and isinstance(value, np.generic) and not value.dtype.hasobject:
        return Kind.SCALAR
    return kind


def children(value: Any) -> Iterator[Any]:
    """The values directly inside ``value`` (keys of a :class:`PairsDict` included); none for
    atomic values, scalars and references."""
    t = type(value)
    if t is dict:
        return iter(value.values())
    if t is PairsDict:
        return (x for pair in value.pairs for x in pair)
    if t in CONTAINER_TYPES:
        return iter(value)
    return iter(())


def items(value: Any) -> list[tuple[Any, Any]]:
    """``(key, child)`` of a container value, for display: the key of a dict or
    :class:`PairsDict`, the position in a list, tuple or set."""
    t = type(value)
    if t is dict:
        return list(value.items())
    if t is PairsDict:
        return list(value.pairs)
    if t in CONTAINER_TYPES:
        return list(enumerate(value))
    return []


def iter_refs(value: Any) -> Iterator[tuple[Ref, str | None]]:
    """Every :class:`Ref` inside ``value``, with the ``str`` dict key it is stored under
    directly (``None`` elsewhere). Iterative: any nesting depth, linear time.

    >>> list(iter_refs({"points": Ref(3), "all": [Ref(4)]}))
    [(Ref(3), 'points'), (Ref(4), None)]
    """
    stack: list[tuple[Any, str | None]] = [(value, None)]
    while stack:
        v, key = stack.pop()
        t = type(v)
        if t is Ref:
            yield v, key
        elif t is dict:
            stack.extend((x, k if type(k) is str else None) for k, x in reversed(v.items()))
        elif t in CONTAINER_TYPES:
            stack.extend((x, None) for x in reversed(list(children(v))))


#: How many keys of one set or dict read from a file may share one hash value. Keys with equal
#: hashes make building the set or dict quadratic in their number (integers ``k * (2**61 - 1)``
#: all hash to 0); real data never comes near this.
MAX_SAME_HASH = 64


def check_hash_spread(keys: Iterable[Any], where: str) -> None:
    """Refuse keys of a set or dict of which more than :data:`MAX_SAME_HASH` share one hash value,
    before the set or dict is built (:class:`~ngser.FormatError`). ``str`` and ``bytes`` keys are
    skipped: their hashes are salted per process, so a file cannot choose them."""
    counts: dict[int, int] = {}
    for key in keys:
        t = type(key)
        if t is str or t is bytes:
            continue
        try:
            h = hash(key)
        except TypeError as exc:
            raise FormatError(f"{where}: a set element or dict key is unhashable: {exc}") from exc
        count = counts[h] = counts.get(h, 0) + 1
        if count > MAX_SAME_HASH:
            raise FormatError(
                f"{where}: more than {MAX_SAME_HASH} set elements or dict keys share one hash value, which would "
                "make building it take time quadratic in their number; ngser never writes such data"
            )


def values_equal(a: Any, b: Any) -> bool:
    """Exact structural equality of graph values: types must match, floats are equal when
    they are the same number of the same sign (NaN equals NaN, ``-0.0`` differs from ``0.0``),
    numpy scalars when their dtype and bytes are. Iterative: any nesting depth.

    >>> values_equal([1.0, float("nan")], [1.0, float("nan")]), values_equal(-0.0, 0.0)
    (True, False)
    """
    stack = [(a, b)]
    while stack:
        a, b = stack.pop()
        t = type(a)
        if t is not type(b):
            return False
        if isinstance(a, np.generic):
            if not (a.dtype == b.dtype and a.tobytes() == b.tobytes()):
                return False
        elif t is float:
            if not ((a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (a != a and b != b)):
                return False
        elif t is complex:
            stack.append((a.real, b.real))
            stack.append((a.imag, b.imag))
        elif t is list or t is tuple:
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b))
        elif t is dict:
            if a.keys() != b.keys():
                return False
            stack.extend((a[k], b[k]) for k in a)
        elif t is PairsDict:
            stack.append((a.pairs, b.pairs))
        elif a != b:
            return False
    return True
