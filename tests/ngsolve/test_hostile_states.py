"""Crafted NGSolve mesh states: each ends in a StateError, none crashes or hangs the loading process.

Every case edits one value of a real mesh's graph and rewrites the file with ngser's own writer
(so every checksum matches), then loads it in a child process: a crash there (SIGSEGV, SIGABRT)
or a hang would kill or stall only the child, and the test sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from conftest import periodic_mesh, square_mesh
from ngser.backends import get_backend
from ngser.graph import Graph, ObjectNode


def _ngmesh_node(graph: Graph) -> tuple[int, dict[str, Any]]:
    for index, node in enumerate(graph.nodes):
        if node.name == "netgen.Mesh":
            return index, node.state
    raise AssertionError("no netgen.Mesh node")


def _array(graph: Graph, ref: Any) -> Any:
    return next(a for a in graph.arrays if a.id == ref.id)


def _set_array(graph: Graph, state: dict[str, Any], key: str, value: np.ndarray) -> None:
    _array(graph, state[key]).data = value


EDITS: dict[str, Callable[[Graph, dict[str, Any]], None]] = {
    "vertex 10**6": lambda g, s: _array(g, s["elements2d_vertices"]).data.__setitem__((0, 0), 10**6),
    "vertex -5": lambda g, s: _array(g, s["elements2d_vertices"]).data.__setitem__((0, 0), -5),
    "every vertex + 1000": lambda g, s: _array(g, s["elements1d_vertices"]).data.__iadd__(1000),
    "zero points": lambda g, s: _set_array(g, s, "points", np.zeros((0, 2))),
    "points with 7 columns": lambda g, s: _set_array(g, s, "points", np.zeros((50, 7))),
    "region index 99": lambda g, s: _array(g, s["elements2d_index"]).data.__setitem__(0, 99),
    "region index 10**9": lambda g, s: _array(g, s["elements1d_index"]).data.__setitem__(0, 10**9),
    "vertex twice": lambda g, s: _array(g, s["elements2d_vertices"]).data.__setitem__((0, 1), 1),
    "8 vertex columns for triangles": lambda g, s: _set_array(
        g, s, "elements2d_vertices", np.ones((len(_array(g, s["elements2d_vertices"]).data), 9), np.int32)
    ),
    "curve order 4097": lambda g, s: s.__setitem__("curve_order", 4097),
    "16,000 boundary names": lambda g, s: s["region_names"].__setitem__(1, [f"b{i}" for i in range(16_000)]),
    "dim 7": lambda g, s: s.__setitem__("dim", 7),
    "points as text": lambda g, s: s.__setitem__("points", "not points"),
    "face descriptor domin 2**40": lambda g, s: s["face_descriptors"][0].__setitem__("domin", 2**40),
    "face descriptor without bc": lambda g, s: s["face_descriptors"][0].pop("bc"),  # was a KeyError
    "face descriptor bc 0": lambda g, s: s["face_descriptors"][0].__setitem__("bc", 0),  # SIGSEGV in 6.2.2501
    # found by the state fuzzer: NGSolve 6.2.2501 sized a table by it (std::bad_alloc)
    "face descriptor bc 2**31-1": lambda g, s: s["face_descriptors"][0].__setitem__("bc", 2**31 - 1),
}

PERIODIC_EDITS: dict[str, Callable[[Graph, dict[str, Any]], None]] = {
    "identification of point 10**6": lambda g, s: _array(g, s["identifications"]).data.__setitem__((0, 0), 10**6),
    "identification number 50": lambda g, s: _array(g, s["identifications"]).data.__setitem__((0, 2), 50),
}

CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import ngser
try:
    ngser.load(sys.argv[1])
except ngser.NgserError as exc:
    print(type(exc).__name__, exc)
else:
    print("LOADED")
"""


def _crafted(mesh: Any, edit: Callable[[Graph, dict[str, Any]], None], path: Path) -> Path:
    ngser.save(mesh, path)
    graph = ngser.read_graph(path)
    index, state = _ngmesh_node(graph)
    for array in graph.arrays:
        array.data = np.array(array.data)  # writable copies
    edit(graph, state)
    node = graph.nodes[index]
    graph.nodes[index] = ObjectNode(node.id, node.name, node.version, state)
    graph._flat = None  # the node table was edited in its list form
    get_backend("msgpack").write_path(graph, path)
    return path


def _load_in_child(path: Path) -> str:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, f"the loading process died with {out.returncode}: {out.stderr[-1500:]}"
    return out.stdout.strip()


@pytest.mark.parametrize("case", sorted(EDITS))
def test_crafted_mesh_states_are_refused_before_netgen_sees_them(case: str, tmp_path: Path) -> None:
    path = _crafted(square_mesh(0.3), EDITS[case], tmp_path / "m.msgpack")
    verdict = _load_in_child(path)
    assert verdict.startswith("StateError") and "netgen.Mesh" in verdict, verdict


@pytest.mark.parametrize("case", sorted(PERIODIC_EDITS))
def test_crafted_identifications_are_refused(case: str, tmp_path: Path) -> None:
    path = _crafted(periodic_mesh(), PERIODIC_EDITS[case], tmp_path / "p.msgpack")
    verdict = _load_in_child(path)
    assert verdict.startswith("StateError") and "identification" in verdict, verdict


def test_the_unedited_file_loads_in_the_child(tmp_path: Path) -> None:
    path = _crafted(square_mesh(0.3), lambda g, s: None, tmp_path / "m.msgpack")
    assert _load_in_child(path) == "LOADED"


def _crafted_node(obj: Any, name: str, edit: Callable[[dict[str, Any]], None], path: Path) -> Path:
    """``obj`` saved, then the state of its first node of type ``name`` edited in place."""
    ngser.save(obj, path)
    graph = ngser.read_graph(path)
    index = next(i for i, node in enumerate(graph.nodes) if node.name == name)
    node = graph.nodes[index]
    edit(node.state)
    graph._flat = None
    get_backend("msgpack").write_path(graph, path)
    return path


def _gridfunction(space: str = "H1", **kwargs: Any) -> Any:
    import ngsolve

    mesh = square_mesh(0.5)
    gfu = ngsolve.GridFunction(getattr(ngsolve, space)(mesh, order=2, **kwargs))
    gfu.Set(ngsolve.x)
    return gfu


def _product() -> Any:
    import ngsolve

    mesh = square_mesh(0.5)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=1) * ngsolve.L2(mesh, order=0))
    gfu.components[0].Set(ngsolve.x)
    return gfu


def _power() -> Any:
    import ngsolve

    gfu = ngsolve.GridFunction(ngsolve.H1(square_mesh(0.5), order=1) ** 2)
    gfu.components[1].Set(ngsolve.y)
    return gfu


def _compressed() -> Any:
    import ngsolve

    fes = ngsolve.H1(square_mesh(0.5), order=2, dirichlet="left")
    return ngsolve.GridFunction(ngsolve.Compress(fes, active_dofs=fes.FreeDofs()))


NODE_EDITS: dict[str, tuple[Callable[[], Any], str, Callable[[dict[str, Any]], None], str]] = {
    "order 10**6": (_gridfunction, "ngsolve.FESpace", lambda s: s["flags"].__setitem__("order", 1e6), "order"),
    "order NaN": (_gridfunction, "ngsolve.FESpace", lambda s: s["flags"].__setitem__("order", float("nan")), "finite"),
    "flags as a list": (_gridfunction, "ngsolve.FESpace", lambda s: s.__setitem__("flags", [1, 2]), "flags"),
    "flag 2**63": (  # went to pybind11 as an int and failed there with a RuntimeError
        _gridfunction,
        "ngsolve.FESpace",
        lambda s: s["flags"].__setitem__("dgjumps", 2**63 - 1),
        "integer beyond",
    ),
    "region numbers as text": (
        lambda: _gridfunction(dirichlet="left"),
        "ngsolve.FESpace",
        lambda s: s["flags"]["dirichlet"].__setitem__("numbers", "1"),
        "region numbers",
    ),
    "multidim 10**9": (
        _gridfunction,
        "ngsolve.GridFunction",
        lambda s: s["flags"].__setitem__("multidim", 1e9),
        "multidim",
    ),
    "values as text": (_gridfunction, "ngsolve.GridFunction", lambda s: s.__setitem__("values", "x"), "values"),
    "space is a number": (_gridfunction, "ngsolve.GridFunction", lambda s: s.__setitem__("space", 3), "FESpace"),
    # found by tests/ngsolve/test_fuzz_states.py: NGSolve takes None (or nothing) for a space or a
    # mesh and crashes on it
    "mesh is None": (_gridfunction, "ngsolve.FESpace", lambda s: s.__setitem__("mesh", None), "ngsolve.Mesh"),
    "space type is None": (_gridfunction, "ngsolve.FESpace", lambda s: s.__setitem__("type", None), "space type"),
    "product of no spaces": (_product, "ngsolve.ProductSpace", lambda s: s.__setitem__("spaces", []), "1 to"),
    "product spaces as text": (_product, "ngsolve.ProductSpace", lambda s: s.__setitem__("spaces", ""), "1 to"),
    "product component None": (
        _product,
        "ngsolve.ProductSpace",
        lambda s: s["spaces"].__setitem__(1, None),
        "component 1",
    ),
    "VectorValued of None": (
        _power,
        "ngsolve.VectorValued",
        lambda s: s.__setitem__("space", None),
        "must refer to a space",
    ),
    "Compress with two active dofs": (
        _compressed,
        "ngsolve.Compress",
        lambda s: s.__setitem__("active_dofs", [True, False]),
        "active_dofs",
    ),
}


#: Found by tests/ngsolve/test_fuzz_states.py: values that reached pybind11 or numpy unchecked and
#: failed there with a Python exception (a SerializerError) instead of a StateError.
LEAKS: dict[str, tuple[Callable[[], Any], str, Callable[[dict[str, Any]], None], str]] = {
    "region numbers 2**70": (
        lambda: _gridfunction(dirichlet="left"),
        "ngsolve.FESpace",
        lambda s: s["flags"]["dirichlet"].__setitem__("numbers", [2**70]),
        "region numbers",
    ),
    "region numbers missing": (
        lambda: _gridfunction(dirichlet="left"),
        "ngsolve.FESpace",
        lambda s: s["flags"]["dirichlet"].pop("numbers"),
        "region numbers",
    ),
}


@pytest.mark.parametrize("case", sorted(LEAKS))
def test_values_that_leaked_python_exceptions_are_state_errors(case: str, tmp_path: Path) -> None:
    make, name, edit, message = LEAKS[case]
    verdict = _load_in_child(_crafted_node(make(), name, edit, tmp_path / "g.msgpack"))
    assert verdict.startswith("StateError") and message in verdict, verdict


def test_an_integer_flag_beyond_int32_is_a_number(tmp_path: Path) -> None:
    """NGSolve's flags are doubles; pybind11 cast a Python int only within int32 (a RuntimeError)."""
    path = _crafted_node(
        _gridfunction(), "ngsolve.FESpace", lambda s: s["flags"].__setitem__("dgjumps", 2**32), tmp_path / "g.msgpack"
    )
    assert _load_in_child(path) == "LOADED"


@pytest.mark.parametrize("case", sorted(NODE_EDITS))
def test_crafted_space_and_gridfunction_states(case: str, tmp_path: Path) -> None:
    make, name, edit, message = NODE_EDITS[case]
    path = _crafted_node(make(), name, edit, tmp_path / "g.msgpack")
    verdict = _load_in_child(path)
    assert verdict.startswith("StateError") and message in verdict, verdict
