"""Sparse matrices, sparse Cholesky factorizations and operators built from matrices: they come back
with the same entries and products (native pickle fails on all but the factorization, whose
products are compared with native pickle's), what cannot be rebuilt is refused when saving, and
crafted states end in a StateError before NGSolve sees them."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ngsolve
import ngsolve.la as la
import numpy as np
import pytest

import ngser
from conftest import add_array, crafted_verdicts, load_each_in_child, square_mesh, write_edited
from ngser.graph import Graph

MESH = square_mesh(0.3)
V = ngsolve.H1(MESH, order=2, dirichlet="left|bottom")
VC = ngsolve.H1(MESH, order=2, dirichlet="left", complex=True)


def _form(space: Any, test_space: Any = None, **flags: Any) -> Any:
    u, v = space.TrialFunction(), (test_space or space).TestFunction()
    form = ngsolve.BilinearForm(space, test_space, **flags) if test_space else ngsolve.BilinearForm(space, **flags)
    if test_space is None:
        form += (ngsolve.grad(u) * ngsolve.grad(v) + (1 + ngsolve.x) * u * v) * ngsolve.dx
    else:
        form += ngsolve.grad(u)[0] * v * ngsolve.dx
    return form.Assemble()


def _csr(mat: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values, indices, indptr = mat.CSR()
    return np.array(indptr), np.array(indices), np.array(values)


def _vector(size: int, cplx: bool = False, seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)
    vec = la.BaseVector(size, cplx)
    vec.FV().NumPy()[:] = rng.standard_normal(size) + (1j * rng.standard_normal(size) if cplx else 0)
    return vec


def _times(op: Any, vec: Any, height: int) -> np.ndarray:
    # vec's kind, not op.is_complex: under 6.2.2501 a restored SparseCholesky (native pickle's too) crashes there
    out = la.BaseVector(height, bool(vec.is_complex))
    op.Mult(vec, out)
    return np.array(out.FV().NumPy())


def _coo() -> Any:
    rows, cols = np.array([0, 0, 1, 2, 2], dtype=np.int32), np.array([0, 4, 1, 2, 3], dtype=np.int32)
    return la.SparseMatrixd.CreateFromCOO(rows, cols, np.array([1.0, -2.5, 3.0, 0.0, 1e-300]), 3, 5)


MATRICES: dict[str, Callable[[], Any]] = {
    "H1 stiffness": lambda: _form(V).mat,
    "symmetric=True": lambda: _form(V, symmetric=True).mat,
    "mixed H1 x L2": lambda: _form(V, ngsolve.L2(MESH, order=1)).mat,
    "CreateFromCOO 3x5 with zero": _coo,
    "empty 0x0": lambda: la.SparseMatrixd.CreateFromCOO(
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), 0, 0
    ),
    "empty 3x5": lambda: la.SparseMatrixd.CreateFromCOO(
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0), 3, 5
    ),
}


def _mass(space: Any) -> Any:
    u, v = space.TnT()
    form = ngsolve.BilinearForm(space, symmetric=True)
    form += u * v * ngsolve.dx
    return form.Assemble().mat


A = _form(V).mat
B = _mass(V)
OPERATORS: dict[str, Callable[[], Any]] = {
    "IdentityMatrix": lambda: la.IdentityMatrix(A.height),
    "IdentityMatrix complex": lambda: la.IdentityMatrix(7, complex=True),
    "Projector range": lambda: la.Projector(V.FreeDofs(), True),
    "Projector complement": lambda: la.Projector(V.FreeDofs(), False),
    "a + b": lambda: A + B,
    "a - b": lambda: A - B,
    "a @ b (kept a product)": lambda: la.BaseMatrix.__matmul__(A, B),
    "a.T": lambda: A.T,
    "2.7 * a": lambda: 2.7 * A,
    "-a": lambda: -A,
    "1e-7 * a.T": lambda: 1e-7 * A.T,
    "(a - 0.3 * b.T) @ a": lambda: (A - 0.3 * B.T) @ A,
    "projected a": lambda: la.Projector(V.FreeDofs(), True) @ A @ la.Projector(V.FreeDofs(), True),
}


@pytest.mark.parametrize("make", MATRICES.values(), ids=MATRICES.keys())
def test_sparse_matrices_come_back_with_the_same_entries(
    make: Callable[[], Any], roundtrip: Callable[[Any], Any]
) -> None:
    mat = make()
    loaded = roundtrip(mat)
    assert type(loaded) is la.SparseMatrixd and loaded.shape == mat.shape and loaded.nze == mat.nze
    for ours, theirs in zip(_csr(loaded), _csr(mat)):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    h, w = mat.shape
    x = _vector(w)
    assert np.array_equal(_times(loaded, x, h), _times(mat, x, h))


@pytest.mark.parametrize("make", [*MATRICES.values(), *OPERATORS.values()], ids=[*MATRICES, *OPERATORS])
def test_native_pickle_fails_on_them(make: Callable[[], Any]) -> None:
    with pytest.raises(TypeError, match="cannot pickle"):
        pickle.dumps(make())  # what ngser is for


def test_symmetric_storage_loads_as_the_full_matrix(roundtrip: Callable[[Any], Any]) -> None:
    mat = _form(V, symmetric=True, symmetric_storage=True).mat
    assert isinstance(mat, la.SparseMatrixSymmetricd)
    loaded = roundtrip(mat)
    # NGSolve has no Python constructor of SparseMatrixSymmetricd: both triangles, the same entries
    assert type(loaded) is la.SparseMatrixd and loaded.nze == 2 * mat.nze - mat.height
    assert np.array_equal(loaded.ToDense().NumPy(), mat.ToDense().NumPy())
    x = _vector(mat.width)
    assert np.allclose(_times(loaded, x, mat.height), _times(mat, x, mat.height), rtol=1e-14, atol=1e-14)
    free = V.FreeDofs()
    y = mat.CreateColVector()
    y.data = mat.Inverse(free, inverse="sparsecholesky") * x
    z = mat.CreateColVector()
    z.data = loaded.Inverse(free, inverse="sparsecholesky") * x
    assert np.allclose(y.FV().NumPy(), z.FV().NumPy(), rtol=1e-12)


def test_a_million_rows_without_loops_per_entry() -> None:
    n = 1_000_000
    rows = np.repeat(np.arange(n, dtype=np.int32), 3)
    cols = np.clip(rows + np.tile(np.array([-1, 0, 1], dtype=np.int32), n), 0, n - 1)
    keep = np.ones(rows.size, dtype=bool)
    keep[[0, -1]] = False  # the clipped duplicates of the first and last row
    rows, cols = rows[keep], cols[keep]
    mat = la.SparseMatrixd.CreateFromCOO(rows, cols, np.sin(np.arange(rows.size, dtype=float)), n, n)
    start = time.perf_counter()
    loaded = ngser.loads(ngser.dumps(mat))
    assert time.perf_counter() - start < 30
    for ours, theirs in zip(_csr(loaded), _csr(mat)):
        assert np.array_equal(ours, theirs)
    x = _vector(n)
    assert np.array_equal(_times(loaded, x, n), _times(mat, x, n))


def _save_load(obj: Any, path: Path, trusted: bool) -> Any:
    ngser.save(obj, path)
    return ngser.load(path, trusted=trusted)


@pytest.mark.parametrize(
    ("space", "free"),
    [(V, True), (V, False), (VC, True)],
    ids=["real, free dofs", "real, all dofs", "complex, free dofs"],
)
def test_sparse_cholesky_is_trusted_only_and_solves_as_before(space: Any, free: bool, fmt: str, tmp_path: Path) -> None:
    mat = _form(space, symmetric=True).mat
    inverse = mat.Inverse(space.FreeDofs() if free else None, inverse="sparsecholesky")
    with pytest.raises(ngser.UnsafeLoadError, match="no way back to the factored matrix"):
        _save_load(inverse, tmp_path / f"inv.{fmt}", trusted=False)
    loaded = ngser.load(tmp_path / f"inv.{fmt}", trusted=True)
    native = pickle.loads(pickle.dumps(inverse))
    assert type(loaded) is type(inverse) and loaded.shape == inverse.shape
    x = _vector(mat.width, space.is_complex)
    expected = _times(inverse, x, mat.height)
    assert np.abs(expected).max() > 0
    assert np.array_equal(_times(loaded, x, mat.height), expected)
    assert np.array_equal(_times(native, x, mat.height), expected)


@pytest.mark.parametrize("make", OPERATORS.values(), ids=OPERATORS.keys())
def test_operators_come_back_with_the_same_products(make: Callable[[], Any], roundtrip: Callable[[Any], Any]) -> None:
    op = make()
    loaded = roundtrip(op)
    assert type(loaded) is type(op) and loaded.height == op.height and loaded.width == op.width
    x = _vector(op.width, bool(op.is_complex))
    expected = _times(op, x, op.height)
    assert np.abs(expected).max() > 0 and loaded.is_complex == op.is_complex
    assert np.array_equal(_times(loaded, x, op.height), expected)


def test_children_stay_shared(roundtrip: Callable[[Any], Any]) -> None:
    mat, total, scaled = roundtrip([A, A + A.T, 2.0 * A])
    assert total.matA is mat and total.matB.mat is mat and scaled.mat is mat
    mat.AsVector()[:] = 1.0  # every operator follows the loaded matrix
    x = _vector(A.width)
    assert np.array_equal(_times(scaled, x, A.height), 2.0 * _times(mat, x, A.height))


def _block_matrix() -> Any:
    space = ngsolve.H1(MESH, order=1, dim=2)
    u, v = space.TnT()
    form = ngsolve.BilinearForm(space)
    form += ngsolve.InnerProduct(u, v) * ngsolve.dx
    return form.Assemble().mat


REFUSED: dict[str, tuple[Callable[[], Any], str]] = {
    "complex sparse": (lambda: _form(VC).mat, "complex sparse matrices cannot be rebuilt"),
    "2x2 blocks": (_block_matrix, "block entries"),
    "conjugate transpose": (lambda: A.H, "cannot be saved"),
    "complex scale": (lambda: 1j * A, "cannot be saved"),
    "Embedding": (lambda: la.Embedding(10, ngsolve.IntRange(2, 5)), "Embedding"),
}
if "umfpack" in la.GetAvailableSolvers():
    REFUSED["umfpack inverse"] = (lambda: A.Inverse(V.FreeDofs(), inverse="umfpack"), "call Inverse again")


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_what_cannot_be_rebuilt_is_refused_when_saving(case: tuple[Callable[[], Any], str]) -> None:
    make, message = case
    with pytest.raises(ngser.UnsupportedTypeError, match=message):
        ngser.dumps(make())


def _state(graph: Graph, name: str) -> dict[str, Any]:
    return next(n.state for n in graph.nodes if n.name == name)


def _array(name: str, key: str, array: np.ndarray) -> Callable[[Graph], None]:
    def edit(graph: Graph) -> None:
        _state(graph, name)[key] = add_array(graph, array)

    return edit


def _update(name: str, **values: Any) -> Callable[[Graph], None]:
    return lambda graph: _state(graph, name).update(values)


SM = "ngsolve.SparseMatrix"
COO = _coo()  # indptr [0, 2, 3, 5], indices [0, 4, 1, 2, 3]
CRAFTED: dict[str, tuple[Any, Callable[[Graph], None], str]] = {
    "indptr decreasing": (COO, _array(SM, "indptr", np.array([0, 3, 2, 5])), "indptr decreases"),
    "indptr too short": (COO, _array(SM, "indptr", np.array([0, 5])), "needs 4"),
    "indptr past the end": (COO, _array(SM, "indptr", np.array([0, 2, 3, 6])), "run from 0"),
    "indptr of floats": (COO, _array(SM, "indptr", np.array([0.0, 2, 3, 5])), "integer array"),
    "indptr of 2**64 - 1": (COO, _array(SM, "indptr", np.array([0, 2**64 - 1, 3, 5], np.uint64)), "decreases"),
    "column past the width": (COO, _array(SM, "indices", np.array([0, 5, 1, 2, 3])), "has 5 columns"),
    "negative column": (COO, _array(SM, "indices", np.array([0, -1, 1, 2, 3])), "has 5 columns"),
    "columns unsorted": (COO, _array(SM, "indices", np.array([4, 0, 1, 2, 3])), "strictly increasing"),
    "column twice": (COO, _array(SM, "indices", np.array([0, 1, 1, 3, 3])), "strictly increasing"),
    "fewer values": (COO, _array(SM, "data", np.ones(4)), "5 column numbers but 4 values"),
    "complex values": (COO, _array(SM, "data", np.ones(5, complex)), "real numbers"),
    "values 2D": (COO, _array(SM, "data", np.ones((5, 1))), "1-dimensional"),
    "values as text": (COO, _update(SM, data="12345"), "real numbers"),
    "shape negative": (COO, _update(SM, shape=[3, -5]), "width"),
    "shape of 2**40": (COO, _update(SM, shape=[3, 2**40]), "width"),
    "shape a string": (COO, _update(SM, shape="3x5"), "shape must be"),
    "symmetric not square": (COO, _update(SM, symmetric=True), "must be square"),
    "symmetric with upper entries": (A, _update(SM, symmetric=True), "lower triangle"),
    "symmetric a string": (COO, _update(SM, symmetric="yes"), "true or false"),
    "sum factor 2": (A + B, _update("ngsolve.SumMatrix", factor=2.0), "1.0 or -1.0"),
    "product child an array": (A @ la.IdentityMatrix(A.height), _array("ngsolve.ProductMatrix", "a", np.ones(3)),
                               "must refer to a matrix"),
    "scale infinite": (2.0 * A, _update("ngsolve.ScaleMatrix", scale=float("inf")), "finite float"),
    "scale a string": (2.0 * A, _update("ngsolve.ScaleMatrix", scale="2"), "finite float"),
    "projector mask of ints": (la.Projector(V.FreeDofs(), True), _array("ngsolve.Projector", "mask", np.ones(3, int)),
                               "bool array"),
    "identity of 2**40": (la.IdentityMatrix(3), _update("ngsolve.IdentityMatrix", size=2**40), "size"),
}  # fmt: skip


def test_crafted_states_end_in_state_errors(tmp_path: Path) -> None:
    wrong = {}
    for case, verdict in crafted_verdicts(CRAFTED, tmp_path).items():
        expected = CRAFTED[case][2]
        kind = "UnsafeLoadError" if expected == "UnsafeLoadError" else "StateError"
        if not (verdict.startswith(kind) and expected in verdict):
            wrong[case] = verdict
    assert not wrong, wrong


def test_operators_of_mismatched_sizes_end_in_state_errors(tmp_path: Path) -> None:
    def use_small(name: str) -> Callable[[Graph], None]:  # the second child becomes the 5x3 matrix COO.T
        def edit(graph: Graph) -> None:
            _state(graph, name)["b"] = _state(graph, "ngsolve.TransposeMatrix")["mat"]

        return edit

    objs = [COO.T, A + B, la.BaseMatrix.__matmul__(A, B)]
    paths = [write_edited(objs, use_small(name), tmp_path / f"{name}.msgpack")
             for name in ("ngsolve.SumMatrix", "ngsolve.ProductMatrix")]  # fmt: skip
    verdicts = load_each_in_child(paths)
    assert verdicts[str(paths[0])].startswith("StateError") and "not of one shape" in verdicts[str(paths[0])]
    assert verdicts[str(paths[1])].startswith("StateError") and "columns but b has" in verdicts[str(paths[1])]


def test_crafted_cholesky_states_are_checked_before_the_bytes(tmp_path: Path) -> None:
    inverse = A.Inverse(V.FreeDofs(), inverse="sparsecholesky")
    cases = {
        "int8": (_update("ngsolve.SparseCholesky", scalar="int8"), "scalar must be one of"),
        "shape": (_update("ngsolve.SparseCholesky", shape=[3, 3]), "the state says 3 x 3"),
        "no data": (_update("ngsolve.SparseCholesky", data=None), "lacks its 'data' bytes"),
    }
    for i, (edit, message) in enumerate(cases.values()):
        path = write_edited(inverse, edit, tmp_path / f"chol{i}.msgpack")
        with pytest.raises(ngser.StateError, match=message):
            ngser.load(path, trusted=True)
