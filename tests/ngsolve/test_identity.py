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


@pytest.mark.parametrize("tree_first", [False, True], ids=["gfu first", "tree first"])
def test_the_issues_dict_keeps_one_gridfunction(square, roundtrip, tree_first):
    """``{"gfu": gfu, "tree": 2*gfu}``: through the shim the tree held a copy (0.5 instead of 2.0)."""
    gfu = _gfu(square)
    d = roundtrip({"tree": 2 * gfu, "gfu": gfu} if tree_first else {"gfu": gfu, "tree": 2 * gfu})
    d["gfu"].Set(1)
    assert d["tree"](d["gfu"].space.mesh(0.3, 0.6)) == pytest.approx(2.0, rel=1e-12)


def test_the_shims_lasting_cache_does_not_alias_a_new_gridfunction(square):
    """The shim's identity cache outlives pickling calls: a GridFunction freed and another made at the
    same address, or a live one whose vector was reallocated, must not be taken for the old one."""
    import pickle

    import ngser.shim

    classes = ngser.shim.install_ngsolve()
    try:
        for value in range(20):
            gfu = _gfu(square)
            gfu.Set(value)
            tree = pickle.loads(pickle.dumps(3 * gfu))
            assert tree(square(0.5, 0.5)) == pytest.approx(3.0 * value)
            del gfu
        gfu = _gfu(square)
        pickle.dumps(gfu)
        gfu.space.Update()
        gfu.Update()  # a new vector (the space got no new dofs, but the memory is new)
        gfu.Set(5)
        assert pickle.loads(pickle.dumps(2 * gfu))(square(0.5, 0.5)) == pytest.approx(10.0)
    finally:
        for cls in classes:
            ngser.shim.uninstall(cls)


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
