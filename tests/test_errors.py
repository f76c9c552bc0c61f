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
