"""The pickle shim: plain pickle, copy and a fresh process go through ngser's serializers."""

from __future__ import annotations

import copy
import copyreg
import io
import os
import pickle
import pickletools
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
import ngser.shim  # installs the register hook (until ngser/__init__ imports it)
from ngser.backends.pickle_format import ALLOWED_GLOBALS
from ngser.serializers import Serializer

CALLS: list[str] = []


@ngser.register(name="shimtest.Node")
class Node:
    """Default state (StateSerializer): two-phase, BUILD applies the state."""

    def __init__(self, value: Any, parent: Node | None = None) -> None:
        self.value = value
        self.parent = parent
        self.children: list[Node] = []


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


def _dump_point(p: Point) -> dict[str, Any]:
    CALLS.append("dump Point")
    return {"xy": [p.x, p.y]}


def _load_point(state: dict[str, Any]) -> Point:
    CALLS.append("load Point")
    return Point(*state["xy"])


ngser.register(Point, name="shimtest.Point", dump=_dump_point, load=_load_point)


class Ring:
    """Filled by a custom two-phase serializer (its fill is not pickle's BUILD)."""

    def __init__(self) -> None:
        self.items: list[Any] = []


class RingSerializer(Serializer):
    name = "shimtest.Ring"
    types = (Ring,)

    def dump(self, obj: Ring) -> Any:
        CALLS.append("dump Ring")
        return {"n": len(obj.items), "items": obj.items}

    def create(self) -> Ring:
        CALLS.append("create Ring")
        return Ring()

    def fill(self, obj: Ring, state: Any) -> None:
        CALLS.append("fill Ring")
        assert len(state["items"]) == state["n"]
        obj.items = list(state["items"])


ngser.register(RingSerializer())


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def _globals(data: bytes) -> set[str]:
    """Every global a pickle names (GLOBAL and STACK_GLOBAL opcodes)."""
    names: set[str] = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            names.add(f"{strings[-2]}.{strings[-1]}")
        elif op.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
    return names


# -- routing ---------------------------------------------------------------------------------
def test_registered_classes_are_installed_with_their_registering_module() -> None:
    assert {Node, Point, Ring} <= set(ngser.shim.installed())
    assert ngser.shim._HINTS[Point] == __name__
    assert copyreg.dispatch_table[Node] is ngser.shim._reduce


def test_pickle_calls_the_serializers_dump_and_load() -> None:
    p = Point(1.5, -2.0)
    data = pickle.dumps(p)
    assert CALLS == ["dump Point"]
    assert "ngser.shim._REBUILD" in _globals(data)
    assert f"{__name__}.Point" not in _globals(data)  # the class itself is never named
    q = pickle.loads(data)
    assert CALLS == ["dump Point", "load Point"]
    assert (type(q), q.x, q.y) == (Point, 1.5, -2.0)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_shared_references_and_cycles_survive_pickle(protocol: int) -> None:
    root = Node("root")
    kid = Node(np.arange(4.0), parent=root)
    root.children = [kid, kid]
    p = Point(0, 1)
    data = pickle.dumps({"tree": root, "p1": p, "p2": p, "kid": kid}, protocol=protocol)
    out = pickle.loads(data)
    assert out["tree"].children[0] is out["tree"].children[1] is out["kid"]
    assert out["kid"].parent is out["tree"]
    assert out["p1"] is out["p2"]
    np.testing.assert_array_equal(out["kid"].value, np.arange(4.0))


def test_deepcopy_and_copy_go_through_the_serializer() -> None:
    root = Node("r")
    root.children = [root]
    p = Point(3, 4)
    dup = copy.deepcopy([root, p, p])
    assert dup[0] is not root and dup[0].children[0] is dup[0]
    assert dup[1] is dup[2] and dup[1] is not p and (dup[1].x, dup[1].y) == (3, 4)
    assert CALLS == ["dump Point", "load Point"]
    shallow = copy.copy(root)
    assert shallow is not root and shallow.children is root.children  # shallow: state not copied
    assert copy.copy(p).x == 3


def test_custom_two_phase_serializer_keeps_cycles_in_pickle_and_deepcopy() -> None:
    ring = Ring()
    ring.items = [ring, "x", Point(1, 1)]
    for clone in (pickle.loads(pickle.dumps(ring)), copy.deepcopy(ring)):
        assert type(clone) is Ring and clone.items[0] is clone and clone.items[1] == "x"
        assert "__setstate__" not in vars(clone)  # the one-shot hook removed itself
    assert CALLS.count("fill Ring") == 2 and CALLS.count("create Ring") == 2


# -- protocols -------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [0, 1])
@pytest.mark.parametrize("make", [lambda: Point(1, 2), lambda: Node(1), Ring])
def test_protocols_below_2_are_refused(protocol: int, make: Any) -> None:
    with pytest.raises(ngser.shim.PickleProtocolError, match=f"protocol {protocol}") as info:
        pickle.dumps([make()], protocol=protocol)
    assert isinstance(info.value, ngser.NgserError) and isinstance(info.value, pickle.PicklingError)


def test_the_python_pickler_is_routed_too() -> None:
    stream = io.BytesIO()
    pickle._Pickler(stream, protocol=2).dump(Point(5, 6))  # type: ignore[attr-defined]
    assert pickle.loads(stream.getvalue()).y == 6
    with pytest.raises(ngser.shim.PickleProtocolError):
        pickle._Pickler(io.BytesIO(), protocol=1).dump(Point(5, 6))  # type: ignore[attr-defined]


# -- versions, unregistering, private registries ---------------------------------------------
def test_migrations_run_for_older_pickles_in_both_reductions() -> None:
    class Old:
        pass

    ngser.register(Old, name="shimtest.Old")
    try:
        one = Old()
        one.v = 1
        data = pickle.dumps(one)
        ngser.register(Old, name="shimtest.Old", version=2, replace=True)

        @ngser.migration("shimtest.Old", from_version=1)
        def _(state: dict[str, Any]) -> dict[str, Any]:
            return {"v": state["v"] * 10}

        assert pickle.loads(data).v == 10  # two-phase: the hook runs fill with the upgraded state
        ngser.register(Old, name="shimtest.Old", version=3, replace=True)
        with pytest.raises(ngser.VersionError, match="from version 2"):
            pickle.loads(data)
    finally:
        ngser.unregister("shimtest.Old")
        ngser.default_registry._migrations.pop(("shimtest.Old", 1), None)
        ngser.shim.uninstall(Old)


def test_newer_pickle_than_installed_serializer_is_a_version_error() -> None:
    data = pickle.dumps(Point(1, 2))
    doctored = data.replace(b"K\x01", b"K\x09", 1)  # the version, BININT1 1 -> 9
    with pytest.raises(ngser.VersionError, match="version 9"):
        pickle.loads(doctored)


def test_unregistered_class_pickles_natively_again() -> None:
    ngser.register(Portable, name="shimtest.Portable")
    assert Portable in ngser.shim.installed()
    ngser.unregister("shimtest.Portable")
    data = pickle.dumps(Portable())
    assert f"{__name__}.Portable" in _globals(data) and "ngser.shim._CREATE" not in _globals(data)
    assert Portable not in ngser.shim.installed()
    assert type(pickle.loads(data)) is Portable


class Portable:
    pass


def test_private_registry_registration_does_not_install(registry: ngser.Registry) -> None:
    class Private:
        pass

    ngser.register(Private, name="shimtest.Private", registry=registry)
    assert Private not in ngser.shim.installed()
    with pytest.raises(ngser.RegistrationError, match="no ngser serializer"):
        ngser.shim.install(Private)


def test_manual_install_and_uninstall() -> None:
    class Manual:
        pass

    ngser.default_registry.add(ngser.serializers.StateSerializer(Manual, "shimtest.Manual"))
    try:
        assert Manual not in ngser.shim.installed()  # Registry.add runs no hooks
        ngser.shim.install(Manual, module="some.module")
        data = pickle.dumps(Manual())
        assert b"some.module" in data and type(pickle.loads(data)) is Manual
        ngser.shim.uninstall(Manual)
        assert Manual not in copyreg.dispatch_table
    finally:
        ngser.unregister("shimtest.Manual")


class _Forged:
    """Pickles as a shim reduction with any name and hint (what another process could have written)."""

    def __init__(self, name: str, hint: str | None) -> None:
        self.args = (name, 1, hint, {"xy": [0, 0]})

    def __reduce__(self) -> Any:
        return (ngser.shim._REBUILD, self.args)


def test_unknown_name_is_an_unknown_type_error_naming_the_module() -> None:
    with pytest.raises(ngser.UnknownTypeError, match=r"'shimtest\.Gone'.*importing 'test_shim' did not"):
        pickle.loads(pickle.dumps(_Forged("shimtest.Gone", "test_shim")))
    with pytest.raises(ngser.UnknownTypeError, match=r"importing 'no_such_mod_xyz'.*failed"):
        pickle.loads(pickle.dumps(_Forged("shimtest.Gone", "no_such_mod_xyz")))
    with pytest.raises(ngser.UnknownTypeError, match="no serializer is registered"):
        pickle.loads(pickle.dumps(_Forged("shimtest.Gone", "os; import evil")))  # not a module name: not imported
    assert pickle.loads(pickle.dumps(_Forged("shimtest.Point", "no_such_mod_xyz"))).x == 0  # known: no import


# -- a fresh process finds the serializer ----------------------------------------------------
MODULE = """
import ngser
import ngser.shim

@ngser.register(name="hinted.Vec")
class Vec:
    def __init__(self, data):
        self.data = data
        self.me = self
"""

LOADER = """
import pickle, sys
import ngser
before = set(sys.modules)
obj = pickle.loads(open(sys.argv[1], "rb").read())
# the standard library's modules do not count (ngser imports importlib.metadata on a registry miss)
new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] not in sys.stdlib_module_names | {"ngser"})
print(type(obj[0]).__module__, obj[0] is obj[1], obj[0].me is obj[0], float(obj[0].data.sum()), new)
"""


def test_a_fresh_process_imports_the_registering_module_and_only_it(tmp_path: Path) -> None:
    (tmp_path / "hinted_mod_x.py").write_text(MODULE)
    (tmp_path / "loader.py").write_text(LOADER)
    writer = (
        "import pickle, sys, numpy as np, hinted_mod_x as m; v = m.Vec(np.arange(5.0)); "
        "open(sys.argv[1], 'wb').write(pickle.dumps([v, v]))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    pkl = tmp_path / "vec.pkl"
    subprocess.run([sys.executable, "-c", writer, pkl], env=env, check=True, timeout=60)
    assert b"hinted_mod_x" in pkl.read_bytes() and b"hinted.Vec" in pkl.read_bytes()
    out = subprocess.run(
        [sys.executable, tmp_path / "loader.py", pkl], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" ", 4) == ["hinted_mod_x", "True", "True", "10.0", "['hinted_mod_x']\n"]


# -- ngser's own pickle format ---------------------------------------------------------------
def test_ngser_pickle_format_holds_structured_state_and_only_ngser_globals(tmp_path: Path) -> None:
    root = Node("r", None)
    root.children = [Node(np.ones(3), root)]
    data = ngser.dumps({"tree": root, "p": Point(1, 2), "ring": Ring()}, format="pickle")
    doc = pickle.loads(data)  # the outer pickle is plain data
    inner = doc[2]
    assert ALLOWED_GLOBALS == {} and _globals(data) == set()  # no global at all: tuples, bytes, buffers
    assert b"shimtest.Point" in inner and b"ngser.shim" not in inner and b"ngser.shim" not in data
    out = ngser.loads(data)  # through the restricted unpickler
    assert out["tree"].children[0].parent is out["tree"] and out["p"].y == 2
    assert CALLS[-1] == "fill Ring"


# -- NGSolve ---------------------------------------------------------------------------------
NGSOLVE_SCRIPT = """
import pickle, sys
import ngsolve as ng
from netgen.geom2d import unit_square
import ngser.shim
classes = ngser.shim.install_ngsolve()
mesh = ng.Mesh(unit_square.GenerateMesh(maxh=0.3))
fes = ng.H1(mesh, order=2)
gfu = ng.GridFunction(fes)
gfu.Set(ng.x * ng.x + ng.y)
data = pickle.dumps([mesh, fes, gfu])
assert b"ngser.shim" in data, "not routed through ngser"
m, f, g = pickle.loads(data)
err = ng.Integrate((g - gfu) ** 2, mesh) ** 0.5
print(f.mesh is m, g.space is f, m.ne == mesh.ne, err < 1e-12, ng.Integrate(g, m) - ng.Integrate(gfu, mesh))
try:
    pickle.dumps(mesh, protocol=int(sys.argv[1]))
except ngser.shim.PickleProtocolError as exc:
    print("refused", type(exc).__name__)
"""


@pytest.mark.parametrize("protocol", [0, 1])
def test_ngsolve_objects_route_through_ngser_and_protocol_1_is_refused(tmp_path: Path, protocol: int) -> None:
    pytest.importorskip("ngsolve")
    script = tmp_path / "ng.py"
    script.write_text(textwrap.dedent(NGSOLVE_SCRIPT))
    out = subprocess.run([sys.executable, script, str(protocol)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]  # -6 would be NGSolve's abort
    lines = out.stdout.splitlines()
    first = lines[0].split()
    assert first[:4] == ["True", "True", "True", "True"] and abs(float(first[4])) < 1e-12
    assert lines[1] == "refused PickleProtocolError"
