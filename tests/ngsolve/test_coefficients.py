"""CoefficientFunction trees: same values after loading; clear errors for what NGSolve cannot store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ngsolve
import pytest
from ngsolve import IfPos, Parameter, cos, exp, grad, sin, specialcf, x, y

import ngser
from conftest import integrals


@pytest.fixture(scope="module")
def gfu(square: ngsolve.Mesh) -> ngsolve.GridFunction:
    gf = ngsolve.GridFunction(ngsolve.H1(square, order=3), name="u")
    gf.Set(x * x * y + sin(3 * x))
    return gf


TREES: dict[str, Callable[[ngsolve.Mesh, ngsolve.GridFunction], Any]] = {
    "arith": lambda m, g: x * g + y,
    "functions": lambda m, g: sin(x) * exp(y) + cos(g),
    "ifpos": lambda m, g: IfPos(x - 0.5, g, 2 * y),
    "vector": lambda m, g: ngsolve.CF((x, g, y * y))[1] + ngsolve.CF((x, y)).Norm(),
    "material": lambda m, g: m.MaterialCF({"default": 3.5}) * g,
    "boundary": lambda m, g: m.BoundaryCF({"left": 1, "top": 2}, default=0) + g,
    "grad": lambda m, g: grad(g)[0] * grad(g)[1] + g,
    "compiled": lambda m, g: (x * g + y * y).Compile(),
    "parameter": lambda m, g: Parameter(2.5) * g,
}


@pytest.mark.parametrize("kind", sorted(TREES))
def test_tree_values(kind, square, gfu, roundtrip):
    tree = TREES[kind](square, gfu)
    mesh2, loaded = roundtrip([square, tree])
    assert isinstance(loaded, ngsolve.CoefficientFunction)
    parts = {"vol": kind != "boundary", "bnd": kind not in ("material", "boundary")}
    expected = integrals(tree, square, **parts)
    if kind == "boundary":
        expected = [ngsolve.Integrate(tree, square, ngsolve.BND)]
        assert ngsolve.Integrate(loaded, mesh2, ngsolve.BND) == pytest.approx(expected[0], rel=1e-12)
        return
    assert integrals(loaded, mesh2, **parts) == pytest.approx(expected, rel=1e-12, abs=1e-13)
    for pnt in [(0.3, 0.7), (0.9, 0.1)]:
        assert loaded(mesh2(*pnt)) == pytest.approx(tree(square(*pnt)), rel=1e-12, abs=1e-13)


def test_trace_of_gridfunction_on_boundary(square, gfu, roundtrip, fmt):
    tree = gfu.Trace() * 2
    if any(child is None for child in gfu.Trace().data["childs"]):
        # NGSolve 6.2.2501 archives a Trace() without its GridFunction: evaluating the rebuilt node crashes.
        with pytest.raises(ngser.errors.UnsupportedTypeError, match="without the GridFunction"):
            ngser.dumps([square, tree], format=fmt)
        return
    mesh2, loaded = roundtrip([square, tree])
    for name in ("left", "top"):
        a = ngsolve.Integrate(loaded, mesh2, definedon=mesh2.Boundaries(name))
        assert a == pytest.approx(ngsolve.Integrate(tree, square, definedon=square.Boundaries(name)), rel=1e-12)


def test_parameters_stay_parameters_and_shared(square, roundtrip):
    p = Parameter(2.0)
    p2, a, b = roundtrip([p, p * x, p + y])
    assert isinstance(p2, Parameter)
    assert p2.Get() == 2.0
    mesh = ngsolve.Mesh(square.ngmesh)
    p2.Set(5.0)
    assert ngsolve.Integrate(a, mesh) == pytest.approx(2.5)
    assert ngsolve.Integrate(b, mesh) == pytest.approx(5.5)


def test_complex_parameter(roundtrip):
    p = ngsolve.ParameterC(1 + 2j)
    (loaded,) = roundtrip([p])
    assert isinstance(loaded, ngsolve.ParameterC)
    assert loaded.Get() == 1 + 2j


@pytest.mark.parametrize(
    ("make", "word"),
    [
        (lambda m: x * specialcf.normal(2)[0], "NormalVector"),
        (lambda m: ngsolve.H1(m).TrialFunction() * x, "ProxyFunction"),
        (lambda m: specialcf.mesh_size + 1, "MeshSize"),
    ],
)
def test_unserializable_node_is_a_clear_error(make, word, square, fmt):
    tree = make(square)
    with pytest.raises(ngser.errors.UnsupportedTypeError, match=word) as info:
        ngser.dumps([square, tree], format=fmt)
    assert "CoefficientFunction" in str(info.value)
