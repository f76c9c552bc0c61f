"""Node tables (format 2): many objects of one type stored column by column.

The encoder stores objects of a type whose serializer fills ``__dict__`` as tables once they
come in numbers (``ngser.graph._tablewalk``); everything must load exactly as the
node-by-node walk (``Encoder(tables=False)``) would have it, hostile tables must be refused
with FormatError, and states of older versions, unknown types and one-phase neighbours must
behave as they do for single nodes.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import msgpack
import numpy as np
import pytest

import ngser
from fixture_types import REGISTRY, Node, Point, Sample, fixture_tables, same
from ngser.backends import get_backend
from ngser.graph import Column, Graph, Ref, Table
from ngser.graph._encoder import Encoder
from ngser.graph._tablewalk import MIN_BATCH


def _roundtrip(obj: Any, fmt: str, registry: ngser.Registry = REGISTRY, **options: Any) -> Any:
    return ngser.loads(ngser.dumps(obj, format=fmt, registry=registry), registry=registry, **options)


def test_objects_in_numbers_become_tables(fmt: str) -> None:
    obj = fixture_tables()
    graph = Encoder(REGISTRY).encode(obj)
    assert {t.name for t in graph.tables} == {"ngser_fixtures.Point", "ngser_fixtures.Sample", "ngser_fixtures.Node"}
    assert graph.meta["format"] == 2 and graph.node_count == 100 + 90 + 81
    assert same(obj, _roundtrip(obj, fmt))


def test_few_objects_stay_single_nodes_in_format_1() -> None:
    graph = ngser.encode([Point(1.0, 2.0) for _ in range(MIN_BATCH - 1)], registry=REGISTRY)
    assert not graph.tables and graph.meta["format"] == 1


def test_columns_keep_every_value_exactly(fmt: str) -> None:
    specials = [math.nan, -0.0, math.inf, -math.inf, 5e-324, 1.0]
    points = [Point(specials[i % 6], float(i)) for i in range(200)]
    samples = [Sample(i, points[i] if i % 2 else None, None) for i in range(200)]
    samples[3].index = 2**64  # an int column beyond int64 is kept as values
    samples[4].flag = 1  # a bool column with an int in it is kept as values
    loaded = _roundtrip({"p": points, "s": samples}, fmt)
    assert same({"p": points, "s": samples}, loaded)
    assert type(loaded["s"][4].flag) is int and type(loaded["s"][5].flag) is bool
    columns = {t.name: dict(zip(t.keys, t.columns)) for t in ngser.encode({"p": points}, registry=REGISTRY).tables}
    assert columns["ngser_fixtures.Point"]["x"].kind == "float"
    assert columns["ngser_fixtures.Point"]["x"].data.view(np.uint64)[1] == np.float64(-0.0).view(np.uint64)


def test_tables_and_the_node_walk_load_the_same(fmt: str) -> None:
    obj = fixture_tables()
    graph = Encoder(REGISTRY, tables=False).encode(obj)
    assert not graph.tables
    classic = ngser.loads(get_backend(fmt).write_bytes(graph), registry=REGISTRY)
    assert same(classic, _roundtrip(obj, fmt))


def test_shared_objects_and_arrays_stay_shared(fmt: str) -> None:
    shared = np.arange(4.0)
    owner = Point(0.0, 0.0)
    samples = [Sample(i, owner, shared if i % 2 else np.full(2, i)) for i in range(100)]
    loaded = _roundtrip([samples, owner, shared], fmt)
    out, out_owner, out_shared = loaded
    assert all(s.owner is out_owner for s in out)
    assert all(s.data is out_shared for s in out[1::2])
    assert len({id(s.data) for s in out[::2]}) == 50


def test_a_long_chain_is_a_run_of_single_nodes(fmt: str) -> None:
    head = Node("0")
    node = head
    for i in range(1, 20_000):
        node = Node(str(i), node)
    graph = ngser.encode(head, registry=REGISTRY)
    assert not graph.tables or sum(map(len, graph.tables)) < 20_000
    loaded = _roundtrip(head, fmt)
    count = 0
    while loaded.children:
        loaded = loaded.children[0]
        count += 1
    assert count == 19_999 and loaded.name == "19999"


def _one_phase_registry() -> ngser.Registry:
    registry = ngser.Registry()
    ngser.register(Point, name="tests.Point", registry=registry)
    ngser.register(
        Summary,
        name="tests.Summary",
        dump=lambda s: {"points": s.points},
        load=lambda state: Summary(state["points"]),
        registry=registry,
    )
    return registry


class Summary:
    """One-phase: ``load`` reads the points' attributes, so they must be complete by then."""

    def __init__(self, points: list[Point]) -> None:
        self.points = points
        self.total = sum(p.x for p in points)


def test_a_one_phase_node_sees_the_rows_it_refers_to_filled(fmt: str) -> None:
    registry = _one_phase_registry()
    points = [Point(float(i), 0.0) for i in range(100)]
    summary = Summary(points)
    graph = Encoder(registry).encode({"summary": summary, "points": points})
    assert graph.tables
    loaded = _roundtrip({"summary": summary, "points": points}, fmt, registry)
    assert loaded["summary"].total == sum(range(100)) and loaded["summary"].points[5] is loaded["points"][5]


def test_rows_referring_to_a_one_phase_node(fmt: str) -> None:
    registry = _one_phase_registry()
    first = [Point(float(i), 0.0) for i in range(3)]
    summary = Summary(first)
    points = [Point(float(i), 1.0) for i in range(100)]
    for p in points:
        p.summary = summary  # type: ignore[attr-defined]
    loaded = _roundtrip(points, fmt, registry)
    assert all(p.summary is loaded[0].summary for p in loaded) and loaded[0].summary.total == 3.0


def test_a_cycle_only_the_node_walk_can_order(fmt: str) -> None:
    # p0 -> summary -> p1: no cycle between objects, but one between the table of points and
    # the one-phase summary; the encoder then walks node by node and the summary sees p1 filled
    registry = _one_phase_registry()
    points = [Point(float(i), 0.0) for i in range(100)]
    for p in points:
        p.link = None  # type: ignore[attr-defined]
    points[0].link = Summary([points[1]])  # type: ignore[attr-defined]
    loaded = _roundtrip(points, fmt, registry)
    assert loaded[0].link.total == 1.0 and loaded[0].link.points[0] is loaded[1]


def test_a_cycle_through_a_one_phase_node_is_refused_as_before() -> None:
    registry = _one_phase_registry()
    points = [Point(float(i), 0.0) for i in range(100)]
    summary = Summary(points)
    for p in points:
        p.summary = summary  # type: ignore[attr-defined]
    with pytest.raises(ngser.GraphError, match="cycle through 'tests.Summary'"):
        ngser.dumps(summary, registry=registry)


def test_older_versions_of_a_table_are_upgraded(fmt: str) -> None:
    old, new = ngser.Registry(), ngser.Registry()
    ngser.register(Point, name="tests.Point", version=1, registry=old)
    ngser.register(Point, name="tests.Point", version=2, registry=new)

    @ngser.migration("tests.Point", from_version=1, registry=new)
    def scale(state: dict[str, Any]) -> dict[str, Any]:
        return {"x": state["x"] * 10, "y": state["y"]}

    points = [Point(float(i), 1.0) for i in range(100)]
    assert ngser.encode(points, registry=old).tables
    data = ngser.dumps(points, format=fmt, registry=old)
    loaded = ngser.loads(data, registry=new)
    assert [p.x for p in loaded] == [10.0 * i for i in range(100)]


def test_unknown_table_types_load_as_raw_nodes(fmt: str) -> None:
    data = ngser.dumps([Point(float(i), 2.0) for i in range(100)], format=fmt, registry=REGISTRY)
    with pytest.raises(ngser.UnknownTypeError):
        ngser.loads(data, registry=ngser.Registry())
    raw = ngser.loads(data, registry=ngser.Registry(), unknown="raw")
    assert raw[3].name == "ngser_fixtures.Point" and raw[3].state == {"x": 3.0, "y": 2.0}


def test_graph_views_show_table_rows_as_nodes() -> None:
    obj = fixture_tables()
    graph = ngser.encode(obj, registry=REGISTRY)
    nodes = graph.nodes
    assert len(nodes) == graph.node_count == len({n.id for n in nodes})
    rebuilt = Graph(graph.root, nodes, graph.arrays, graph.writers)  # the same nodes, node by node
    assert same(obj, ngser.decode(rebuilt, registry=REGISTRY))


# -- hostile tables ------------------------------------------------------------------------


def _table_graph() -> Graph:
    return ngser.encode([Point(float(i), 0.0) for i in range(100)], registry=REGISTRY)


def _damaged(change: Any) -> Graph:
    graph = _table_graph()
    change(graph.tables[0])
    return graph


DAMAGE = {
    "short column": lambda t: t.columns.__setitem__(0, Column("float", t.columns[0].data[:-1])),
    "unknown kind": lambda t: t.columns.__setitem__(0, Column("complex", t.columns[0].data)),
    "list kind": lambda t: t.columns.__setitem__(0, Column(["float"], t.columns[0].data)),  # type: ignore[arg-type]
    "wrong dtype": lambda t: t.columns.__setitem__(0, Column("float", t.columns[0].data.astype("<f4"))),
    "values not a list": lambda t: t.columns.__setitem__(0, Column("values", "abc")),
    "keys not strings": lambda t: setattr(t, "keys", (1, "y")),
    "duplicate keys": lambda t: setattr(t, "keys", ("x", "x")),
    "fewer keys": lambda t: setattr(t, "keys", ("x",)),
    "negative position": lambda t: setattr(t, "at", -1),
    "position beyond the nodes": lambda t: setattr(t, "at", 2**63),
    "ids as floats": lambda t: setattr(t, "ids", t.ids.astype(float)),
    "duplicate ids": lambda t: t.ids.__setitem__(slice(0, 2), 5),
    "negative id": lambda t: t.ids.__setitem__(0, -3),
    "name not a string": lambda t: setattr(t, "name", 5),
    "missing reference": lambda t: t.columns.__setitem__(0, Column("ref", np.full(len(t), 10**6))),
    "reference below -1": lambda t: t.columns.__setitem__(0, Column("ref", np.full(len(t), -2))),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_tables_are_refused(fmt: str, damage: str) -> None:
    graph = _damaged(DAMAGE[damage])
    try:
        data = get_backend(fmt).write_bytes(graph)
    except (ngser.NgserError, ValueError, TypeError):
        data = None  # some damage cannot even be written; the decoder must refuse it as well
    with pytest.raises(ngser.FormatError):
        ngser.decode(graph, registry=REGISTRY)
    if data is not None:
        with pytest.raises(ngser.FormatError):
            ngser.loads(data, registry=REGISTRY)


def test_a_negative_row_id_is_refused_even_if_nothing_refers_to_it() -> None:
    graph = _table_graph()
    graph.tables[0].ids[-1] = -3
    with pytest.raises(ngser.FormatError, match="negative node id"):
        ngser.decode(graph, registry=REGISTRY)


def test_a_table_id_used_by_a_single_node_is_refused() -> None:
    graph = ngser.encode({"a": [Point(float(i), 0.0) for i in range(100)], "b": Node("single")}, registry=REGISTRY)
    single = graph.flat_nodes
    single[0] = int(graph.tables[0].ids[0])
    with pytest.raises(ngser.FormatError, match="used twice"):
        ngser.decode(graph, registry=REGISTRY)


ONE_ID = [0, False, 1, b"\x00"]
POINT = ["ngser_fixtures.Point", 1, ["x"], 0]


@pytest.mark.parametrize(
    "packed",
    [
        "tables",
        ["not a table"],
        [[*POINT, [0, False, 8, b"\x00" * 7], [["float", b"\x00" * 8]]]],
        [[*POINT, [0, False, 3, b"\x00" * 3], [["float", b"\x00" * 8]]]],
        [[*POINT, [2**63, False, 1, b"\x00"], [["float", b"\x00" * 8]]]],
        [[*POINT, [0, 1, 1, b"\x00"], [["float", b"\x00" * 8]]]],
        [[*POINT, b"\x00" * 8, [["float", b"\x00" * 8]]]],
        [[*POINT, ONE_ID, [["bool", b"\x02"]]]],
        [[*POINT, ONE_ID, [["float", b"\x00" * 7]]]],
        [[*POINT, ONE_ID, [["ref", b"\x00" * 8]]]],
        [[*POINT, ONE_ID, [["float"]]]],
        [[*POINT, ONE_ID, "columns"]],
        [[*POINT, ONE_ID, [["float", b"\x00" * 8], ["float", b"\x00" * 8]]]],
        [["ngser_fixtures.Point", 1, "x", 0, ONE_ID, []]],
    ],
    ids=[
        "not a list",
        "entry",
        "ids bytes",
        "ids width",
        "ids base",
        "ids deltas flag",
        "ids raw",
        "bool byte",
        "float bytes",
        "ref raw",
        "column",
        "columns",
        "more columns than keys",
        "keys",
    ],
)
def test_damaged_msgpack_tables_are_refused(packed: Any) -> None:
    from helpers import msgpack_file

    doc = {"format": 2, "ngser": "0", "writers": {}, "root": None, "nodes": [], "arrays": [], "tables": packed}
    with pytest.raises(ngser.FormatError):
        ngser.loads(msgpack_file(msgpack.packb(doc, use_bin_type=True)), registry=REGISTRY)


def test_a_damaged_list_of_references_is_refused() -> None:
    from helpers import msgpack_file

    marker = msgpack.ExtType(2, b"\x05")
    doc = {"format": 2, "ngser": "0", "writers": {}, "root": [marker, b"\x00" * 8], "nodes": [], "arrays": []}
    with pytest.raises(ngser.FormatError, match="list of references"):
        ngser.loads(msgpack_file(msgpack.packb(doc, use_bin_type=True)), registry=REGISTRY)


def test_a_valid_hand_made_msgpack_table_loads() -> None:
    from helpers import msgpack_file

    columns = [["float", b"\x00" * 8], ["ref", [-1, False, 1, b"\x00"]]]
    table = [*POINT[:2], ["x", "y"], 0, [7, False, 1, b"\x00"], columns]
    root = [msgpack.ExtType(2, b"\x05"), [7, True, 1, b"\x00"]]
    doc = {"format": 2, "ngser": "0", "writers": {"ngser_fixtures.Point": 1}, "nodes": [], "arrays": [], "root": root}
    doc["tables"] = [table]
    (point,) = ngser.loads(msgpack_file(msgpack.packb(doc, use_bin_type=True)), registry=REGISTRY)
    assert (point.x, point.y) == (0.0, None)


@pytest.mark.parametrize("values", [[], [5], [2**63 - 1, -(2**63), 0], list(range(10**5, 10**5 + 300)) * 2, [-1] * 9])
def test_packed_integer_sequences_give_the_values_back(values: list[int]) -> None:
    from ngser.backends._arrays import pack_ints, unpack_ints

    packed = pack_ints(np.array(values, np.int64))
    assert unpack_ints(packed, "test").tolist() == values
    assert len(packed[3]) <= 8 * len(values)


def test_ids_in_order_cost_a_byte_each() -> None:
    from ngser.backends._arrays import pack_ints

    assert len(pack_ints(np.arange(10**6, 2 * 10**6))[3]) == 10**6


def test_tables_of_a_hand_made_graph() -> None:
    table = Table("ngser_fixtures.Point", 1, ("x", "y"), np.array([0, 1]), [Column("float", np.array([1.0, 2.0])),
                  Column("values", [Ref(0), None])])  # fmt: skip
    graph = Graph.from_flat([Ref(0), Ref(1)], [], [], {"ngser_fixtures.Point": 1}, tables=[table])
    a, b = ngser.decode(graph, registry=REGISTRY)
    assert (a.x, b.x, a.y, b.y) == (1.0, 2.0, a, None)
    assert same([a, b], ngser.loads(get_backend("msgpack").write_bytes(graph), registry=REGISTRY))


class Link:
    def __init__(self, following: Link | None) -> None:
        self.following = following
        self.depth = 0 if following is None else following.depth + 1


def test_a_table_loads_under_a_newer_one_phase_serializer(fmt: str) -> None:
    # written with the default serializer (two-phase: rows in any order, here each refers to the
    # next row); read by a version-2 serializer that builds a Link from its complete followers
    old, new = ngser.Registry(), ngser.Registry()
    ngser.register(Link, name="tests.Link", registry=old)
    ngser.register(
        Link,
        name="tests.Link",
        version=2,
        dump=lambda link: {"following": link.following},
        load=lambda state: Link(state["following"]),
        registry=new,
    )
    ngser.migration("tests.Link", from_version=1, registry=new)(lambda state: {"following": state["following"]})
    links: list[Link] = [Link(None)]
    for _ in range(99):
        links.append(Link(links[-1]))
    links.reverse()  # the root list meets each link before the one it refers to
    assert ngser.encode(links, registry=old).tables
    loaded = ngser.loads(ngser.dumps(links, format=fmt, registry=old), registry=new)
    assert [link.depth for link in loaded] == list(range(99, -1, -1))
    assert all(a.following is b for a, b in itertools.pairwise(loaded))


def test_ngser_info_counts_the_rows_of_tables() -> None:
    from pathlib import Path

    from helpers import ngser_cli

    fixture = Path(__file__).parent / "fixtures" / "tables.format2.msgpack"
    result = ngser_cli("info", str(fixture))
    assert result.returncode == 0, result.stderr
    assert "format version 2" in result.stdout
    assert "objects:        271, 270 of them in 4 node tables" in result.stdout
    assert "       100  ngser_fixtures.Point" in result.stdout


def test_a_file_view_loads_parts_of_a_table_file(fmt: str, tmp_path: Any) -> None:
    obj = fixture_tables()
    from helpers import EXTENSION

    path = tmp_path / f"tables{EXTENSION[fmt]}"
    ngser.save(obj, path, registry=REGISTRY)
    with ngser.open(path) as view:
        tree = view.load("tree", registry=REGISTRY)
        sample = view.load("samples/3", registry=REGISTRY)
    assert same(obj["tree"], tree) and all(leaf.parent is tree for leaf in tree.children)
    assert same(obj["samples"][3], sample)
