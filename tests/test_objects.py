"""Registered objects: default state, custom functions, Serializer classes, identity and cycles."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import ngser


@ngser.register(name="tests.Node")
class Node:
    def __init__(self, value: Any, next: Any = None) -> None:
        self.value = value
        self.next = next


@ngser.register(name="tests.Frozen")
@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int
    y: tuple[float, ...]


@ngser.register(name="tests.Slotted")
@dataclasses.dataclass(slots=True)
class Slotted:
    a: int
    b: list[int]


@ngser.register(name="tests.Slots")
class Slots:
    __slots__ = ("p", "q")

    def __init__(self, p: Any, q: Any) -> None:
        self.p = p
        self.q = q


@ngser.register(name="tests.WithState")
class WithState:
    """Custom __getstate__/__setstate__ are honoured."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cache = object()  # not serializable: excluded by __getstate__

    def __getstate__(self) -> dict[str, int]:
        return {"n": self.n}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.n = state["n"]
        self.cache = None


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


ngser.register(Point, name="tests.Point", dump=lambda p: [p.x, p.y], load=lambda s: Point(*s))


class Circle:
    def __init__(self, center: Point, radius: float) -> None:
        self.center, self.radius = center, radius


class CircleSerializer(ngser.Serializer):
    name = "tests.Circle"
    version = 1
    types = (Circle,)

    def dump(self, obj: Circle) -> Any:
        return {"center": obj.center, "radius": obj.radius}

    def load(self, state: Any) -> Circle:
        return Circle(state["center"], state["radius"])


ngser.register(CircleSerializer())


def test_default_state(roundtrip: Any) -> None:
    out = roundtrip(Node(1, Node("two")))
    assert type(out) is Node and out.value == 1 and out.next.value == "two" and out.next.next is None


def test_dataclasses_and_slots(roundtrip: Any) -> None:
    out = roundtrip([Frozen(1, (2.0, 3.0)), Slotted(4, [5]), Slots("p", {"q": 1})])
    assert out[0] == Frozen(1, (2.0, 3.0))
    assert out[1] == Slotted(4, [5])
    assert (out[2].p, out[2].q) == ("p", {"q": 1})


def test_getstate_setstate(roundtrip: Any) -> None:
    out = roundtrip(WithState(7))
    assert out.n == 7 and out.cache is None


def test_custom_functions_and_serializer_class(roundtrip: Any) -> None:
    center = Point(1.0, 2.0)
    out = roundtrip([Circle(center, 3.0), Circle(center, 4.0), center])
    assert out[0].center is out[1].center is out[2]
    assert (out[2].x, out[2].y, out[1].radius) == (1.0, 2.0, 4.0)


def test_shared_objects_and_arrays_load_as_one(roundtrip: Any) -> None:
    shared = Node("shared")
    array = np.arange(5.0)
    out = roundtrip({"a": Node(1, shared), "b": Node(2, shared), "x": array, "y": [array, array]})
    assert out["a"].next is out["b"].next
    assert out["x"] is out["y"][0] is out["y"][1]


def test_self_cycle(roundtrip: Any) -> None:
    node = Node("me")
    node.next = node
    out = roundtrip(node)
    assert out.next is out


def test_parent_child_cycle(roundtrip: Any) -> None:
    parent = Node("parent")
    parent.next = [Node("child", parent), Node("child2", parent)]
    out = roundtrip(parent)
    assert out.next[0].next is out and out.next[1].next is out


def test_cycle_through_custom_loaded_object_refused(fmt: str) -> None:
    class Holder:
        def __init__(self, item: Any) -> None:
            self.item = item

    registry = ngser.Registry()
    registry.add(CircleSerializer())
    ngser.register(Holder, name="tests.Holder", dump=lambda h: h.item, load=Holder, registry=registry)
    holder = Holder(None)
    holder.item = [holder]
    with pytest.raises(ngser.GraphError, match="cycle through 'tests.Holder'"):
        ngser.dumps(holder, format=fmt, registry=registry)


def test_cycle_between_default_and_custom(roundtrip: Any) -> None:
    # A one-phase object inside a cycle through a two-phase one is fine (pickle semantics).
    node = Node("n")
    node.next = Circle(Point(0, 0), 1.0)
    node.next.center = Point(0, 0)
    out = roundtrip(node)
    assert out.next.radius == 1.0


def test_long_chain(fmt: str) -> None:
    head = None
    for i in range(100_000):
        head = Node(i, head)
    out = ngser.loads(ngser.dumps(head, format=fmt))
    count = 0
    while out is not None:
        assert out.value == 99_999 - count
        count += 1
        out = out.next
    assert count == 100_000


def test_long_chain_of_one_phase_objects(fmt: str) -> None:
    registry = ngser.Registry()

    class Link:
        def __init__(self, nxt: Any) -> None:
            self.nxt = nxt

    ngser.register(Link, name="tests.Link", dump=lambda o: [o.nxt], load=lambda s: Link(s[0]), registry=registry)
    head = None
    for _ in range(20_000):
        head = Link(head)
    out = ngser.loads(ngser.dumps(head, format=fmt, registry=registry), registry=registry)
    count = 0
    while out is not None:
        count += 1
        out = out.nxt
    assert count == 20_000


def test_many_small_objects_share_parents(fmt: str) -> None:
    parents = [Node(f"p{i}") for i in range(100)]
    children = [Node(i, parents[i % 100]) for i in range(10_000)]
    out = ngser.loads(ngser.dumps(children, format=fmt))
    assert len({id(child.next) for child in out}) == 100
    assert all(out[i].next is out[i + 100].next for i in range(0, 9_900, 97))


def test_deep_nesting_is_a_clear_error(fmt: str) -> None:
    value: Any = []
    for _ in range(10_000):
        value = [value]
    with pytest.raises(ngser.GraphError, match="nested more than"):
        ngser.dumps(value, format=fmt)


def test_self_containing_list_is_a_clear_error(fmt: str) -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(ngser.GraphError, match="contains itself"):
        ngser.dumps(value, format=fmt)


def test_nesting_below_the_limit_works(roundtrip: Any) -> None:
    value: Any = "leaf"
    for _ in range(ngser.graph.MAX_DEPTH - 2):
        value = [value]
    out = roundtrip(value)
    for _ in range(ngser.graph.MAX_DEPTH - 2):
        out = out[0]
    assert out == "leaf"


def test_registered_objects_as_dict_keys(roundtrip: Any) -> None:
    key = Frozen(1, ())
    out = roundtrip({key: "v", "k": key})
    assert out[out["k"]] == "v"
