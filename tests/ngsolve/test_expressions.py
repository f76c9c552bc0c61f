"""Structured CoefficientFunction trees: every operation comes back with the same values, loads
without trust, reads as text in ``ngser info``, and crafted states end in a StateError."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ngsolve
import numpy as np
import pytest
from ngsolve import (
    CF,
    Cross,
    Det,
    Id,
    IfPos,
    InnerProduct,
    Inv,
    Norm,
    Parameter,
    Skew,
    Sym,
    Trace,
    atan2,
    cos,
    exp,
    grad,
    log,
    sin,
    sqrt,
    x,
    y,
)

import ngser
from conftest import load_each_in_child, square_mesh, write_edited
from ngser.graph import Graph, Ref

MESH = square_mesh(0.3)
U = ngsolve.GridFunction(ngsolve.H1(MESH, order=3), name="u")
U.Set(x * x * y + sin(3 * x))
V = ngsolve.GridFunction(ngsolve.VectorH1(MESH, order=2), name="v")
V.Set(CF((x * y, x - y)))
M = CF((x, y, 1, 2 + x), dims=(2, 2))
W = CF((x, y))

#: One tree per operation (or group of operations): name -> (tree, integrate over the boundary).
TREES: dict[str, Any] = {
    "coordinates and constants": x + 2 * y - 0.25,
    "complex constants": ((1 + 2j) * x + CF(1j) * y).real + (1j * x).imag,
    "zero": CF((0, 0)) + W,
    "arithmetic": x * U / (y + 1) - U * U,
    "unary functions": sin(x) * exp(y) + cos(U) + log(x + 2) + sqrt(y + 1) + atan2(x, y + 1),
    "unary of a vector": InnerProduct(sin(W), W) + InnerProduct(W, W),
    "powers": x**2.5 + x**y + x**3 + (x + 1) ** -2,
    "IfPos": IfPos(x - 0.5, U, 2 * y),
    "vector and components": CF((x, U, y * y))[1] + W.Norm() + CF((W, 1))[2],
    "matrices": Det(M) + Trace(Inv(M)) + InnerProduct(M * W, W) + Norm(Sym(M)) + Skew(M)[0, 1] + M.trans[1, 0],
    "matrix products": (M * M)[1, 1] + (x * W)[1] + Id(2)[0, 0],
    "cross product": Cross(CF((x, y, 1)), CF((y, x, 2)))[2] * x,
    "reshape": CF((x, y, 1, 2)).Reshape((2, 2))[1, 1] + M.Reshape((4,))[3],
    "MaterialCF": MESH.MaterialCF({"default": 3.5}) * U,
    "BoundaryCF": (MESH.BoundaryCF({"left": x, "top": 2}, default=0) + U, True),
    "BoundaryCF with gaps": (MESH.BoundaryCF({"left": 1 + y}), True),
    "region-wise list": CF([1.5]) * x,
    "GridFunction operators": grad(U)[0] * grad(U)[1] + U.Operator("hesse")[0, 1] + grad(V)[1, 0] + ngsolve.div(V),
    "Trace": (U.Trace() * 2, True),
    "Parameter": Parameter(2.5) * U,
    "compiled": (x * U + y * y).Compile(),
}


def _tree(name: str) -> tuple[Any, bool]:
    tree = TREES[name]
    return tree if isinstance(tree, tuple) else (tree, False)


def _value(tree: Any, mesh: ngsolve.Mesh, boundary: bool) -> Any:
    value = ngsolve.Integrate(tree, mesh, ngsolve.BND if boundary else ngsolve.VOL, order=6)
    return np.asarray(value).ravel()


def _archivable(cf: Any) -> bool:
    """Whether NGSolve can store every node of a tree (6.2.2501 cannot store Cross or Conj nodes)."""
    try:
        ngser.encode(cf)
    except ngser.UnsupportedTypeError:
        return False
    return True


def _available(name: str) -> bool:
    if name == "Trace":
        return not any(c is None for c in U.Trace().data["childs"])
    return _archivable(_tree(name)[0])


@pytest.mark.parametrize("name", sorted(TREES))
def test_tree_comes_back_with_the_same_values(name: str, roundtrip: Callable[[Any], Any]) -> None:
    if not _available(name):
        pytest.skip(f"this NGSolve ({ngsolve.__version__}) cannot store {name}")
    tree, boundary = _tree(name)
    mesh2, loaded = roundtrip([MESH, tree])
    assert np.allclose(_value(loaded, mesh2, boundary), _value(tree, MESH, boundary), rtol=1e-12, atol=1e-13)
    if not boundary:
        for point in [(0.3, 0.7), (0.9, 0.1)]:
            assert np.allclose(loaded(mesh2(*point)), tree(MESH(*point)), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(TREES))
def test_tree_is_stored_as_structure(name: str) -> None:
    """No node of a tree is stored as NGSolve's archive bytes: the file loads without trust."""
    if not _available(name):
        pytest.skip(f"this NGSolve ({ngsolve.__version__}) cannot store {name}")
    graph = ngser.encode([MESH, _tree(name)[0]])
    names = {node.name for node in graph.nodes}
    assert "ngsolve.CF" in names and "ngsolve.CoefficientFunction" not in names
    assert not any(
        isinstance(v, bytes) for node in graph.nodes if node.name == "ngsolve.CF" for v in node.state.values()
    )


def test_shared_parts_stay_shared(roundtrip: Callable[[Any], Any]) -> None:
    p = Parameter(2.0)
    common = sin(x) * U
    mesh2, u2, p2, a, b = roundtrip([MESH, U, p, common + p, common * p])
    p2.Set(3.0)
    u2.Set(1)  # the trees use the loaded GridFunction, not copies of it
    assert ngsolve.Integrate(a, mesh2) == pytest.approx(ngsolve.Integrate(sin(x) + 3.0, MESH))
    assert ngsolve.Integrate(b, mesh2) == pytest.approx(ngsolve.Integrate(3.0 * sin(x), MESH))
    graph = ngser.encode([MESH, common + p, common * p])
    assert sum(node.state.get("function") == "sin" for node in graph.nodes if node.name == "ngsolve.CF") == 1


def _voxel_tree() -> Any:
    voxels = ngsolve.VoxelCoefficient((0, 0), (1, 1), np.arange(12.0).reshape(3, 4))
    return voxels * x + y


def test_node_without_structured_form_is_trusted_only(tmp_path: Path) -> None:
    """A VoxelCoefficient node has no structured form: it is stored as NGSolve's bytes and needs trust."""
    tree = _voxel_tree()
    path = tmp_path / "voxels.msgpack"
    ngser.save([MESH, tree], path)
    with pytest.raises(ngser.UnsafeLoadError, match="'ngsolve.CoefficientFunction' node: it holds NGSolve's own"):
        ngser.load(path)
    mesh2, loaded = ngser.load(path, trusted=True)
    assert ngsolve.Integrate(loaded, mesh2) == pytest.approx(ngsolve.Integrate(tree, MESH), rel=1e-12)
    names = [node.name for node in ngser.read_graph(path).nodes]
    assert names.count("ngsolve.CoefficientFunction") == 1 and "ngsolve.CF" in names  # only the voxel node


def test_info_shows_a_tree_as_text(tmp_path: Path) -> None:
    path = tmp_path / "tree.msgpack"
    ngser.save({"mesh": MESH, "u": U, "tree": x * U + sin(3 * y) - Parameter(2) * grad(U)[0]}, path)
    out = subprocess.run(
        [sys.executable, "-m", "ngser", "info", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "tree: ngsolve.CF #" in out and "= x*u + sin(3.0*y) - Parameter(2.0)*grad(u)[0]" in out, out


# -- crafted states ----------------------------------------------------------------------------
def _first(graph: Graph, op: str) -> dict[str, Any]:
    return next(n.state for n in graph.nodes if n.name == "ngsolve.CF" and n.state.get("op") == op)


def _set(op: str, key: str, value: Any) -> Callable[[Graph], None]:
    return lambda g: _first(g, op).__setitem__(key, value)


def _args(op: str, change: Callable[[list[Any]], list[Any]]) -> Callable[[Graph], None]:
    return lambda g: _first(g, op).__setitem__("args", change(list(_first(g, op)["args"])))


def _mesh_ref(g: Graph) -> Ref:
    return Ref(next(n.id for n in g.nodes if n.name == "ngsolve.Mesh"))


CRAFTED: dict[str, tuple[Any, Callable[[Graph], None], str]] = {
    "unknown op": (x + y, _set("binary", "op", "eval"), "unknown operation"),
    "op not a string": (x + y, _set("binary", "op", 7), "unknown operation"),
    "unknown operator": (x + y, _set("binary", "operator", "__import__"), "unknown binary operator"),
    "unknown function": (sin(x), _set("unary", "function", "system"), "unknown unary function"),
    "axis 7": (x + y, _set("coordinate", "axis", 7), "axis"),
    "axis as text": (x + y, _set("coordinate", "axis", "0"), "axis"),
    "constant as text": (x + 2.5, _set("constant", "value", "2.5"), "constant"),
    "three arguments to a binary": (x + y, _args("binary", lambda a: [*a, a[0]]), "arguments"),
    "argument is a mesh": (
        x + y,
        lambda g: _first(g, "binary")["args"].__setitem__(0, _mesh_ref(g)),
        "not a CoefficientFunction",
    ),
    "args not a list": (x + y, _set("binary", "args", {"a": 1}), "arguments"),
    "component 10**6": ((x * W)[1] + x, _set("component", "index", 10**6), "component"),
    "component -1": ((x * W)[1] + x, _set("component", "index", -1), "component"),
    "vector shape 10**9": (InnerProduct(W, W) + x, _set("vector", "shape", [10**9]), "shape"),
    "vector shape wrong size": (InnerProduct(W, W) + x, _set("vector", "shape", [5]), "values"),
    "Det of a vector": (
        Det(M),
        lambda g: _first(g, "Det").__setitem__("args", _first(g, "vector")["args"][:1]),
        "square",
    ),
    "Cross of scalars": (  # written as a product: 6.2.2501 cannot store Cross nodes
        x * y,
        lambda g: _first(g, "binary").update(op="Cross", args=[Ref(_coord_id(g))] * 2),
        "Cross",
    ),
    "regions of 10**6": (
        MESH.MaterialCF({"default": 3.5}),
        _args("regions", lambda a: a * 10**6),
        "region-wise node must have",
    ),
    "regions kind BBBND": (MESH.BoundaryCF({"left": 1}), _set("regions", "region", "BBBND"), "region"),
    "regions all empty": (MESH.BoundaryCF({"left": 1}), _args("regions", lambda a: [None] * len(a)), "no value"),
    "Id of size 10**9": (Id(2)[0, 0] + x, _set("Id", "size", 10**9), "identity"),
    "GridFunction operator unknown": (grad(U)[0], _set("gridfunction", "operator", "__del__"), "operator"),
    "GridFunction operator on a mesh": (
        grad(U)[0],
        lambda g: _first(g, "gridfunction").__setitem__("gridfunction", _mesh_ref(g)),
        "GridFunction",
    ),
    "sum of a vector and a scalar": (
        InnerProduct(W, W) + x,
        lambda g: _first(g, "binary").__setitem__("args", [Ref(_vector(g)), Ref(_coord_id(g))]),
        "shape",
    ),
}


def _vector(g: Graph) -> int:
    return next(n.id for n in g.nodes if n.name == "ngsolve.CF" and n.state.get("op") == "vector")


def _coord_id(g: Graph) -> int:
    return next(n.id for n in g.nodes if n.name == "ngsolve.CF" and n.state.get("op") == "coordinate")


def test_crafted_tree_states_end_in_state_errors(tmp_path: Path) -> None:
    """Each crafted file is written with ngser's own writer (checksums match) and loaded in one
    child process: a crash there kills only the child, and the test names the file it died on."""
    paths = {}
    for i, (case, (tree, edit, _)) in enumerate(sorted(CRAFTED.items())):
        paths[case] = write_edited([MESH, tree], edit, tmp_path / f"case{i}.msgpack")
    verdicts = load_each_in_child(list(paths.values()))
    wrong = {}
    for case, path in paths.items():
        verdict = verdicts.get(str(path), "")
        message = CRAFTED[case][2]
        if not (verdict.startswith("StateError") and "ngsolve.CF" in verdict and message in verdict):
            wrong[case] = verdict
    assert not wrong, wrong


@pytest.mark.parametrize(
    "make",
    [
        lambda m: ngsolve.H1(m, order=2, dim=2),
        lambda m: ngsolve.H1(m, order=2, dim=3),
        lambda m: ngsolve.VectorH1(m, order=2),
    ],
    ids=["H1 dim=2", "H1 dim=3", "VectorH1"],
)
def test_gradients_of_vector_valued_gridfunctions(make: Any, roundtrip: Any) -> None:
    """``grad(u)`` of a vector H1 GridFunction evaluates through a BlockDifferentialOperator (issue 13)."""
    mesh = square_mesh(0.3)
    u = ngsolve.GridFunction(make(mesh))
    u.Set(ngsolve.CF((ngsolve.x * ngsolve.y, ngsolve.x + ngsolve.y, ngsolve.y * ngsolve.y)[: u.dims[0]]))
    trees = [ngsolve.grad(u), u.Deriv(), 2 * ngsolve.grad(u).trans]
    u2, *loaded = roundtrip([u, *trees])
    mesh2 = u2.space.mesh
    native = pickle.loads(pickle.dumps([u, *trees]))
    for tree, back, theirs in zip(trees, loaded, native[1:]):
        expected = ngsolve.Integrate(ngsolve.InnerProduct(tree, tree), mesh)
        assert tuple(back.dims) == tuple(tree.dims)
        assert ngsolve.Integrate(ngsolve.InnerProduct(back, back), mesh2) == pytest.approx(expected, rel=1e-12)
        assert ngsolve.Integrate(ngsolve.InnerProduct(theirs, theirs), mesh) == pytest.approx(expected, rel=1e-12)
    u2.vec[:] = 0  # the trees follow the loaded GridFunction
    assert ngsolve.Integrate(ngsolve.Norm(loaded[0]), mesh2) == pytest.approx(0.0, abs=1e-13)
