"""The architecture, enforced: which layer may import which, read from the source with ``ast``.

Layers (``docs/serializers.md`` and ``docs/format.md`` describe them):

* the graph core ``ngser.graph``: the value vocabulary and the graph (``_values``, ``_model``,
  the package itself) and the walks between objects and graphs (``_encoder``, ``_decoder``);
* the serializer framework ``ngser.serializers`` with the serializers that ship;
* the backends ``ngser.backends`` with their private I/O helpers;
* the front-ends: every module directly under ``ngser``.

Front-ends may use everything. Backends know no class: they never import the serializers, the
registry, the encoder or the decoder. Serializers know no format: they never import a backend
or the graph's internals. No layer below the front-ends imports a front-end, ``ngser.errors``
and ``ngser._version`` excepted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ngser
from ngser._moved import MOVED

SRC = Path(ngser.__file__).parent
MODULES = sorted(SRC.rglob("*.py"))
#: Front-end modules every layer may import.
SHARED = {"ngser.errors", "ngser._version"}
#: The graph's public face: the vocabulary and the model, importable by every layer.
GRAPH_PUBLIC = {"ngser.graph", "ngser.graph._values", "ngser.graph._model"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ngser module that ``path`` imports (``from . import x`` counts as ``package.x``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "ngser")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ngser":
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if _is_module(f"{target}.{alias.name}"))
    return found


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _layer(name: str) -> str:
    if name.startswith("ngser.graph"):
        walks = ("ngser.graph._encoder", "ngser.graph._tablewalk", "ngser.graph._decoder")
        return "graph-walk" if name in walks else "graph"
    if name.startswith("ngser.serializers"):
        return "serializers"
    if name.startswith("ngser.backends"):
        return "backends"
    return "front-end"


def _allowed(importer: str, imported: str) -> bool:
    if imported in SHARED or imported == importer:
        return True
    source, target = _layer(importer), _layer(imported)
    if source == "front-end":
        return True
    if target == "front-end":
        return False  # only ngser.errors and ngser._version, above
    if source == "backends":
        return target == "backends" or imported in GRAPH_PUBLIC
    if source == "serializers":
        return target == "serializers" or imported in GRAPH_PUBLIC
    if source == "graph":  # the vocabulary and the model need nothing but each other
        return target == "graph"
    return target in ("graph", "graph-walk", "serializers")  # the encoder and decoder use the registry


def test_the_source_tree_is_found() -> None:
    names = {_module_name(path) for path in MODULES}
    assert {"ngser.api", "ngser.graph._encoder", "ngser.serializers.registry", "ngser.backends._codec"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_follow_the_layers(path: Path) -> None:
    importer = _module_name(path)
    wrong = sorted(name for name in _imports(path) if not _allowed(importer, name))
    assert not wrong, f"{importer} ({_layer(importer)}) must not import {wrong}"


def test_the_rules_catch_a_backend_importing_the_registry() -> None:
    """The checker itself can fail: these imports would break the layering."""
    assert not _allowed("ngser.backends.msgpack_format", "ngser.serializers.registry")
    assert not _allowed("ngser.backends.hdf5_format", "ngser.graph._encoder")
    assert not _allowed("ngser.serializers.ngsolve.mesh", "ngser.backends.hdf5_format")
    assert not _allowed("ngser.serializers.base", "ngser.graph._decoder")
    assert not _allowed("ngser.graph._values", "ngser.serializers.base")
    assert not _allowed("ngser.graph._encoder", "ngser.api")
    assert _allowed("ngser.api", "ngser.graph._encoder")


def test_relative_imports_are_resolved() -> None:
    imports = _imports(SRC / "backends" / "msgpack_format.py")
    assert "ngser.backends._codec" in imports and "ngser.graph" in imports and "ngser.errors" in imports


def test_the_top_level_holds_only_front_ends() -> None:
    top = sorted(p.stem for p in SRC.glob("*.py"))
    packages = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
    # the three layers, and the front-ends big enough to be packages of their own
    assert packages == ["backends", "checkpoint", "graph", "mpi", "serializers", "vtk"]
    assert len(top) <= 13, top


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_is_much_over_400_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= 450, f"{_module_name(path)} has {lines} lines: split it by what its parts do"


# -- module paths of ngser 0.1 ------------------------------------------------------------------
@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_module_paths_still_import_the_same_module(old: str, new: str) -> None:
    import importlib
    import sys
    import warnings

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
    assert module.__spec__ is not None and module.__spec__.name == new  # the real module keeps its own spec


def test_old_module_paths_work_as_attributes_and_pickled_names_did_not_move() -> None:
    import pickle
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert ngser.registry.Registry is ngser.Registry  # type: ignore[attr-defined]
    from ngser.graph import ArrayNode, Graph, ObjectNode, PairsDict, RawNode, Ref

    for cls in (Ref, PairsDict, ObjectNode, ArrayNode, Graph, RawNode):
        assert cls.__module__ == "ngser.graph"
    assert b"ngser.graph" in pickle.dumps(Ref(3)) and pickle.loads(pickle.dumps(Ref(3))) == Ref(3)
    assert ngser.shim._REBUILD is not None and ngser.shim._CREATE is not None
    with pytest.raises(AttributeError):
        ngser.no_such_module  # type: ignore[attr-defined]  # noqa: B018


def test_import_ngser_leaves_heavy_modules_for_later() -> None:
    """``import ngser`` stays near ``import numpy`` (bench/run.py import): modules only a save,
    a plugin lookup or a format needs are imported when first used."""
    import subprocess
    import sys

    heavy = ["h5py", "msgpack", "ngsolve", "tempfile", "socket", "importlib.metadata", "importlib.abc", "hashlib"]
    code = f"import sys, ngser; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
