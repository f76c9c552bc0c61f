"""Every error a caller can cause is an NgserError with a message that helps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ngser


class Unregistered:
    pass


def test_unregistered_object_names_class_and_fix(fmt: str) -> None:
    with pytest.raises(ngser.UnsupportedTypeError) as info:
        ngser.dumps({"x": [Unregistered()]}, format=fmt)
    message = str(info.value)
    assert "test_errors.Unregistered" in message
    assert 'ngser.register(Unregistered, name="' in message
    assert isinstance(info.value, ngser.NgserError)


def test_functions_need_a_fallback(fmt: str) -> None:
    with pytest.raises(ngser.UnsupportedTypeError, match="builtin_function_or_method|function"):
        ngser.dumps(len, format=fmt)


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ngser.ArgumentError, match=r"'\.txt'"):
        ngser.save(1, tmp_path / "x.txt")
    assert not list(tmp_path.iterdir())


def test_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(ngser.ArgumentError, match="unknown format 'yaml'"):
        ngser.save(1, tmp_path / "x.bin", format="yaml")  # type: ignore[arg-type]


def test_format_override(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "data.bin"
    ngser.save({"a": 1}, path, format=fmt)  # type: ignore[arg-type]
    assert ngser.load(path) == {"a": 1}


def test_format_follows_magic_not_name(tmp_path: Path) -> None:
    path = tmp_path / "misnamed.h5"
    path.write_bytes(ngser.dumps([1, 2], format="msgpack"))
    assert ngser.load(path) == [1, 2]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ngser.FileAccessError, match="no such file"):
        ngser.load(tmp_path / "missing.pkl")


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "g.pkl").write_bytes(b"this is not a pickle at all")
    (tmp_path / "e.pkl").write_bytes(b"")
    for name in ("g.pkl", "e.pkl"):
        with pytest.raises(ngser.FormatError, match="not an ngser file"):
            ngser.load(tmp_path / name)


def test_garbage_bytes() -> None:
    with pytest.raises(ngser.FormatError):
        ngser.loads(b"\x00\x01garbage")


def test_unknown_type_name_on_load(fmt: str) -> None:
    registry = ngser.Registry()

    class Temp:
        pass

    ngser.register(Temp, name="tests.Temp", registry=registry)
    data = ngser.dumps(Temp(), format=fmt, registry=registry)
    with pytest.raises(ngser.UnknownTypeError, match="'tests.Temp'"):
        ngser.loads(data)
    raw = ngser.loads(data, unknown="raw")
    assert isinstance(raw, ngser.RawNode) and raw.name == "tests.Temp" and raw.state == {}


def test_duplicate_name_refused() -> None:
    registry = ngser.Registry()

    class A:
        pass

    class B:
        pass

    ngser.register(A, name="tests.Same", registry=registry)
    with pytest.raises(ngser.RegistrationError, match="already registered"):
        ngser.register(B, name="tests.Same", registry=registry)
    ngser.register(B, name="tests.Same", registry=registry, replace=True)
    assert registry.for_name("tests.Same").types == (B,)  # type: ignore[union-attr]


def test_register_needs_a_name() -> None:
    with pytest.raises(ngser.RegistrationError, match="name="):
        ngser.register(Unregistered)  # type: ignore[call-overload]


def test_bad_version_refused() -> None:
    with pytest.raises(ngser.RegistrationError, match="version"):
        ngser.register(Unregistered, name="tests.BadVersion", version=0, registry=ngser.Registry())


def test_newer_file_than_serializer(fmt: str) -> None:
    old, new = ngser.Registry(), ngser.Registry()

    class Thing:
        pass

    ngser.register(Thing, name="tests.Thing", version=1, registry=old)
    ngser.register(Thing, name="tests.Thing", version=3, registry=new)
    data = ngser.dumps(Thing(), format=fmt, registry=new)
    with pytest.raises(ngser.VersionError, match="version 3 .* installed one is version 1"):
        ngser.loads(data, registry=old)


def test_failing_dump_names_type(fmt: str) -> None:
    registry = ngser.Registry()

    class Bad:
        pass

    def dump(obj: Any) -> Any:
        raise RuntimeError("boom")

    ngser.register(Bad, name="tests.Bad", dump=dump, load=lambda s: Bad(), registry=registry)
    with pytest.raises(ngser.SerializerError, match="'tests.Bad' failed to dump.*boom"):
        ngser.dumps(Bad(), format=fmt, registry=registry)


def test_failing_load_names_node(fmt: str) -> None:
    registry = ngser.Registry()

    class Fragile:
        pass

    def load(state: Any) -> Any:
        raise KeyError("missing")

    ngser.register(Fragile, name="tests.Fragile", dump=lambda o: {}, load=load, registry=registry)
    data = ngser.dumps([Fragile()], format=fmt, registry=registry)
    with pytest.raises(ngser.SerializerError, match=r"rebuilding 'tests.Fragile' \(node 0\) failed"):
        ngser.loads(data, registry=registry)


def test_bad_options(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(ngser.ArgumentError, match="takes no option"):
        ngser.save(1, tmp_path / "x.bin", format=fmt, colour="blue")  # type: ignore[arg-type]


def _graph(root: Any, *nodes: tuple[Any, str, int, Any]) -> ngser.Graph:
    from ngser.graph import ObjectNode

    return ngser.Graph(root, [ObjectNode(*node) for node in nodes], [])


def test_damaged_graphs_are_format_errors() -> None:
    from ngser.graph import Ref

    registry = ngser.Registry()

    class Leaf:
        pass

    ngser.register(Leaf, name="tests.Leaf", registry=registry)
    ngser.register(
        Leaf, name="tests.OnePhase", load=lambda s: Leaf(), dump=lambda o: {}, registry=registry, replace=True
    )
    with pytest.raises(ngser.FormatError, match="used twice"):
        ngser.decode(_graph(Ref(0), (0, "tests.OnePhase", 1, {}), (0, "tests.OnePhase", 1, {})), registry=registry)
    with pytest.raises(ngser.FormatError, match="refers to id 7"):
        ngser.decode(_graph(Ref(7), (0, "tests.OnePhase", 1, {})), registry=registry)
    with pytest.raises(ngser.GraphError, match="before it is built"):
        ngser.decode(
            _graph(Ref(1), (1, "tests.OnePhase", 1, {"x": Ref(2)}), (2, "tests.OnePhase", 1, {})), registry=registry
        )
    with pytest.raises(ngser.FormatError, match="damaged"):
        ngser.decode(_graph(None, ("x", "tests.OnePhase", 1, {})), registry=registry)
    with pytest.raises(ngser.FormatError, match="damaged"):
        ngser.decode(_graph(None, (0, ["not", "a", "name"], 1, {})), registry=registry)
    with pytest.raises(ngser.FormatError, match="not a graph value"):
        ngser.decode(_graph(object()), registry=registry)


# -- where an error happened --------------------------------------------------------------------
class Picky:
    def __init__(self, value: int) -> None:
        self.value = value


def _picky_registry(fail_on: str) -> ngser.Registry:
    """A registry whose serializer raises its own NgserError (not a foreign exception) on ``fail_on``."""
    registry = ngser.Registry()

    def dump(obj: Picky) -> Any:
        if fail_on == "dump":
            raise ngser.UnsupportedTypeError("this Picky cannot be stored")
        return {"value": obj.value}

    def load(state: Any) -> Picky:
        if fail_on == "load":
            raise ngser.StateError(f"the state holds value {state['value']!r}, which must be positive")
        return Picky(state["value"])

    ngser.register(Picky, name="tests.Picky", dump=dump, load=load, registry=registry)
    return registry


def test_a_serializers_own_error_on_load_names_file_node_and_type(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "picky.bin"
    ngser.save([1, Picky(-1)], path, format=fmt, registry=_picky_registry("none"))
    with pytest.raises(ngser.StateError) as info:
        ngser.load(path, registry=_picky_registry("load"))
    error = info.value
    assert (error.path, error.node, error.type_name) == (str(path), 0, "tests.Picky")
    assert str(error) == f"{path}: 'tests.Picky' (node 0): the state holds value -1, which must be positive"
    assert isinstance(error, ngser.FormatError)  # a state no serializer writes is bad data


def test_a_serializers_own_error_on_save_names_the_node_and_type(fmt: str) -> None:
    with pytest.raises(ngser.UnsupportedTypeError) as info:
        ngser.dumps({"x": Picky(1)}, format=fmt, registry=_picky_registry("dump"))
    assert (info.value.node, info.value.type_name) == (0, "tests.Picky")
    assert str(info.value) == "'tests.Picky' (node 0): this Picky cannot be stored"


def test_errors_are_located_once_at_the_innermost_node() -> None:
    error = ngser.StateError("bad")
    error.locate(path="a.h5", node=3, type_name="x.Y")
    error.locate(path="a.h5", node=1, type_name="x.Outer")
    assert str(error) == "a.h5: 'x.Y' (node 3): bad" and error.node == 3


# -- bad arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda: ngser.dumps(1, fallback="dill"),  # type: ignore[arg-type]
        lambda: ngser.loads(ngser.dumps(1), unknown="ignore"),  # type: ignore[arg-type]
        lambda: ngser.dumps(1, format="yaml"),  # type: ignore[arg-type]
        lambda: ngser.dumps(1, format="msgpack", compression="gzip"),
        lambda: ngser.dumps(1, format="hdf5", compression="zstd"),
        lambda: ngser.loads("not bytes"),  # type: ignore[arg-type]
        lambda: ngser.save(1, 3.5, format="msgpack"),  # type: ignore[arg-type]
    ],
    ids=["fallback", "unknown", "format", "option", "option-value", "loads-str", "save-target"],
)
def test_bad_arguments_are_argument_errors(call: Any) -> None:
    with pytest.raises(ngser.ArgumentError) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    assert isinstance(info.value, ngser.NgserError)


def test_file_view_lookups_raise_a_key_error_with_a_plain_message(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "v.msgpack"
    ngser.save({"a": np.arange(3)}, path)
    with ngser.open(path) as view:
        for lookup in (lambda: view.load("nothing"), lambda: view.load(99), lambda: view.array("nope")):
            with pytest.raises(KeyError) as info:
                lookup()
            assert isinstance(info.value, ngser.NotFoundError)
            assert str(info.value).startswith(f"{path}: ")  # not KeyError's quoted repr


def test_wrapped_exceptions_carry_where_they_happened_too(fmt: str) -> None:
    registry = ngser.Registry()

    class Brittle:
        pass

    def load(state: Any) -> Any:
        raise KeyError("missing")

    ngser.register(Brittle, name="tests.Brittle", dump=lambda o: {}, load=load, registry=registry)
    with pytest.raises(ngser.SerializerError) as info:
        ngser.loads(ngser.dumps([Brittle()], format=fmt, registry=registry), registry=registry)
    assert (info.value.path, info.value.node, info.value.type_name) == ("<bytes>", 0, "tests.Brittle")


def test_errors_without_a_node_name_only_the_type() -> None:
    error = ngser.StateError("bad").locate(path="<pickle>", type_name="x.Y")
    assert str(error) == "<pickle>: 'x.Y': bad"


WITHOUT_NGSOLVE = """
import importlib.abc, sys

class NoNGSolve(importlib.abc.MetaPathFinder):  # as on a machine without NGSolve
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("ngsolve", "netgen", "pyngcore"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoNGSolve())
import ngser
from ngser.backends import get_backend
from ngser.graph import Graph, ObjectNode, Ref

graph = Graph({"k": Ref(0)}, [ObjectNode(0, "ngsolve.Parameter", 1, {"value": 2.5})], [], {}, {})
path = sys.argv[1]
get_backend("msgpack").write_path(graph, path)
for how in ("load", "open"):
    try:
        ngser.load(path) if how == "load" else ngser.open(path).load("k")
    except ngser.UnknownTypeError as exc:
        print(how, "UnknownTypeError", exc)
print("raw", ngser.load(path, unknown="raw"))
"""


def test_an_ngsolve_file_without_ngsolve_says_what_to_install(tmp_path: Path) -> None:
    """Was a raw ModuleNotFoundError traceback: NGSolve's provider imports NGSolve when it runs."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", WITHOUT_NGSOLVE, str(tmp_path / "k.msgpack")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert [line.split(" ", 2)[:2] for line in lines[:2]] == [
        ["load", "UnknownTypeError"],
        ["open", "UnknownTypeError"],
    ]
    for line in lines[:2]:
        assert "'ngsolve.Parameter'" in line and "pip install 'ngser[ngsolve]'" in line and "No module named" in line
    assert lines[2] == "raw {'k': RawNode(name='ngsolve.Parameter', version=1)}"


def test_a_huge_message_is_cut_to_its_start_and_end() -> None:
    """Regression (crafted-file fuzzer, NGSolve 6.2.2501): NGSolve's refusal of a space type of a
    million characters quoted it whole, and ngser's StateError carried the million characters on."""
    huge = "undefined fespace '" + "x" * 1_000_000 + "' (end)"
    error = ngser.StateError(huge)
    assert len(str(error)) < 4_100 and str(error).startswith("undefined fespace 'xxx") and str(error).endswith("(end)")
    assert "characters left out" in str(error)
    located = ngser.FormatError("short").locate(path="f.h5", node=3, type_name="ngsolve.FESpace")
    assert str(located) == "f.h5: 'ngsolve.FESpace' (node 3): short"
    assert len(str(ngser.FormatError("x" * 3_990).locate(path="p" * 500, node=1, type_name="t"))) < 4_100
