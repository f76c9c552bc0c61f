"""One C++ object, one node: a GridFunction inside a tree is the user's GridFunction after loading."""

from __future__ import annotations

import ngsolve
import numpy as np
import pytest
from ngsolve import grad, x, y

import ngser


def _gfu(mesh: ngsolve.Mesh) -> ngsolve.GridFunction:
    gf = ngsolve.GridFunction(ngsolve.H1(mesh, order=2))
    gf.Set(x * y + 1)
    return gf


def test_tree_follows_loaded_gridfunction(square, roundtrip):
    gfu = _gfu(square)
    g2, tree2 = roundtrip([gfu, x * gfu + grad(gfu)[0]])
    mesh2 = g2.space.mesh
    before = ngsolve.Integrate(tree2, mesh2)
    assert before == pytest.approx(ngsolve.Integrate(x * gfu + grad(gfu)[0], square))
    g2.vec[:] = 0
    assert ngsolve.Integrate(tree2, mesh2) == pytest.approx(0.0, abs=1e-13)


def test_tree_first_then_gridfunction(square, roundtrip):
    gfu = _gfu(square)
    tree2, g2 = roundtrip([x * gfu, gfu])
    g2.vec[:] = 0
    assert ngsolve.Integrate(tree2, g2.space.mesh) == pytest.approx(0.0, abs=1e-13)


def test_gridfunction_stored_once(square):
    gfu = _gfu(square)
    graph = ngser.encode([gfu, x * gfu, grad(gfu), 2 * gfu + y])
    names = [n.name for n in graph.nodes]
    assert names.count("ngsolve.GridFunction") == 1
    assert names.count("ngsolve.FESpace") == 1
    assert names.count("ngsolve.Mesh") == 1
    assert sum(a.label == "ngsolve.GridFunction/values" for a in graph.arrays) == 1


def test_component_parent_is_the_users_gridfunction(square, roundtrip):
    gfu = ngsolve.GridFunction(ngsolve.H1(square, order=1) * ngsolve.L2(square, order=0))
    gfu.components[0].Set(x)
    g2, c2 = roundtrip([gfu, gfu.components[0]])
    g2.vec[:] = 0
    assert np.all(c2.vec.FV().NumPy() == 0)


def test_tree_alone_shares_gridfunction_between_subtrees(square, roundtrip):
    gfu = _gfu(square)
    a2, _ = roundtrip([x * gfu, grad(gfu)[1]])
    graph = ngser.encode([x * gfu, grad(gfu)[1]])
    assert [n.name for n in graph.nodes].count("ngsolve.GridFunction") == 1
    assert ngsolve.Integrate(a2, ngsolve.Mesh(square.ngmesh)) == pytest.approx(ngsolve.Integrate(x * gfu, square))
