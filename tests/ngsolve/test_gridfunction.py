"""GridFunctions come back with the same vectors, values and integrals."""

from __future__ import annotations

import ngsolve
import numpy as np
import pytest
from ngsolve import x, y, z

import ngser
from conftest import integrals, same_topology_when_copied


def _vec(gf: ngsolve.GridFunction) -> np.ndarray:
    return gf.vec.FV().NumPy().copy()


def test_gridfunction_on_every_mesh(any_mesh, roundtrip):
    if not same_topology_when_copied(any_mesh):
        pytest.skip("this netgen's boundary-layer mesh numbers faces its elements do not give; its copy differs too")
    fes = ngsolve.H1(any_mesh, order=2)
    gfu = ngsolve.GridFunction(fes, name="u")
    f = x * x + 2 * y + (z if any_mesh.dim == 3 else 0) + 1
    gfu.Set(f)
    loaded = roundtrip(gfu)
    assert loaded.name == "u"
    np.testing.assert_array_equal(_vec(loaded), _vec(gfu))
    # interpolating the same function on the loaded space gives the same vector: same elements,
    # same curvature
    again = ngsolve.GridFunction(loaded.space)
    again.Set(f)
    np.testing.assert_allclose(_vec(again), _vec(gfu), rtol=1e-9, atol=1e-9)
    mesh2 = loaded.space.mesh
    np.testing.assert_allclose(integrals(loaded, mesh2), integrals(gfu, any_mesh), rtol=1e-10, atol=1e-12)
    pnt = (0.3, 0.2, 0.4)[: any_mesh.dim]
    # NGSolve locates points in the undeformed elements: where the curvature came back as a
    # deformation (documented in docs/ngsolve.md), point values near curved boundaries differ
    if any_mesh.Contains(*pnt) and mesh2.deformation is None:
        assert loaded(mesh2(*pnt)) == pytest.approx(gfu(any_mesh(*pnt)), abs=1e-10)


def test_complex_gridfunction(square, roundtrip):
    gfu = ngsolve.GridFunction(ngsolve.H1(square, order=2, complex=True))
    gfu.Set((1 + 2j) * x + 1j * y)
    loaded = roundtrip(gfu)
    assert loaded.space.is_complex
    np.testing.assert_array_equal(_vec(loaded), _vec(gfu))
    assert ngsolve.Integrate(loaded, loaded.space.mesh) == pytest.approx(ngsolve.Integrate(gfu, square))


def test_multidim_gridfunction(square, roundtrip):
    gfu = ngsolve.GridFunction(ngsolve.L2(square, order=1), multidim=3)
    for i in range(3):
        gfu.vecs[i].FV().NumPy()[:] = np.arange(gfu.space.ndof) * (i + 1)
    loaded = roundtrip(gfu)
    assert len(loaded.vecs) == 3
    for a, b in zip(loaded.vecs, gfu.vecs):
        np.testing.assert_array_equal(a.FV().NumPy(), b.FV().NumPy())


def test_compound_gridfunction_and_components(square, roundtrip):
    fes = ngsolve.VectorH1(square, order=2) * ngsolve.H1(square, order=1)
    gfu = ngsolve.GridFunction(fes)
    gfu.components[0].Set(ngsolve.CF((x, y * y)))
    gfu.components[1].Set(x * y)
    loaded, comp1 = roundtrip([gfu, gfu.components[1]])
    np.testing.assert_array_equal(_vec(loaded), _vec(gfu))
    assert ngsolve.Integrate(comp1, square) == pytest.approx(ngsolve.Integrate(gfu.components[1], square))
    # the loaded component is a view of the loaded parent
    loaded.components[1].Set(3)
    assert ngsolve.Integrate(comp1, loaded.space.mesh) == pytest.approx(3.0)


def test_component_alone_brings_its_parent(square, roundtrip):
    gfu = ngsolve.GridFunction(ngsolve.H1(square, order=1) ** 2)
    gfu.components[1].Set(x + 1)
    comp = roundtrip(gfu.components[1])
    assert ngsolve.Integrate(comp, comp.space.mesh) == pytest.approx(1.5)


def test_gridfunctions_share_their_space(square, roundtrip):
    fes = ngsolve.H1(square, order=2)
    gfu1, gfu2 = ngsolve.GridFunction(fes), ngsolve.GridFunction(fes)
    gfu1.Set(x)
    gfu2.Set(y)
    a, b = roundtrip([gfu1, gfu2])
    assert a.space is b.space
    assert ngsolve.Integrate(a - b, a.space.mesh) == pytest.approx(0.0, abs=1e-13)
    assert ngsolve.Integrate(a * a, a.space.mesh) == pytest.approx(1 / 3)


def test_gridfunction_3d_hcurl(ball, roundtrip):
    gfu = ngsolve.GridFunction(ngsolve.HCurl(ball, order=2))
    gfu.Set(ngsolve.CF((y, z, x)))
    loaded = roundtrip(gfu)
    np.testing.assert_array_equal(_vec(loaded), _vec(gfu))
    mesh2 = loaded.space.mesh
    a = ngsolve.Integrate(ngsolve.InnerProduct(loaded, loaded), mesh2, definedon=mesh2.Materials("ball"))
    b = ngsolve.Integrate(ngsolve.InnerProduct(gfu, gfu), ball, definedon=ball.Materials("ball"))
    assert a == pytest.approx(b, rel=1e-10)


def test_values_are_a_named_array(square):
    gfu = ngsolve.GridFunction(ngsolve.H1(square, order=1))
    gfu.Set(x)
    graph = ngser.encode(gfu)
    (values,) = [a for a in graph.arrays if a.label == "ngsolve.GridFunction/values"]
    np.testing.assert_array_equal(values.load(), _vec(gfu))


def test_ngsolve_pickle_converted_by_the_command_line_when_trusted(tmp_path):
    """`ngser convert native.pkl out.h5 --trusted` turns NGSolve's own pickle into a structured file."""
    import pickle
    import subprocess
    import sys

    mesh = ngsolve.Mesh(ngsolve.unit_square.GenerateMesh(maxh=0.3))
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=2), name="temperature")
    gfu.Set(x * y)
    native, out = tmp_path / "native.pkl", tmp_path / "out.h5"
    native.write_bytes(pickle.dumps({"u": gfu}))
    command = [sys.executable, "-m", "ngser", "convert", str(native), str(out)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "pass --trusted" in refused.stderr
    done = subprocess.run([*command, "--trusted"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = ngser.load(out)["u"]
    assert loaded.name == "temperature"
    np.testing.assert_array_equal(_vec(loaded), _vec(gfu))
