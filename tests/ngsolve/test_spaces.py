"""Spaces come back with the same type, flags, free dofs and dof numbering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ngsolve
import ngsolve.comp as comp
import numpy as np
import pytest
from ngsolve import BND, VOL, x, y

import ngser
from conftest import periodic_mesh

SPACES: dict[str, Callable[[ngsolve.Mesh], Any]] = {
    "h1-dirichlet": lambda m: ngsolve.H1(m, order=2, dirichlet="left|bottom"),
    "h1-dirichlet-numbers": lambda m: ngsolve.H1(m, order=1, dirichlet=[2, 3]),
    "h1-complex": lambda m: ngsolve.H1(m, order=2, complex=True),
    "l2": lambda m: ngsolve.L2(m, order=1),
    "hcurl": lambda m: ngsolve.HCurl(m, order=1, dirichlet="top"),
    "hdiv-rt": lambda m: ngsolve.HDiv(m, order=1, RT=True),
    "vectorh1": lambda m: ngsolve.VectorH1(m, order=2, dirichletx="left"),
    "number": lambda m: ngsolve.NumberSpace(m),
    "facet-on-region": lambda m: ngsolve.FacetFESpace(m, order=1, definedon=m.Boundaries("left|top")),
    "surfacel2": lambda m: ngsolve.SurfaceL2(m, order=1),
    "hdivdiv": lambda m: ngsolve.HDivDiv(m, order=1),
    "product": lambda m: ngsolve.H1(m, order=2, dirichlet="left") * ngsolve.L2(m, order=1),
    "power": lambda m: ngsolve.H1(m, order=1, dirichlet="right") ** 3,
    "discontinuous": lambda m: ngsolve.Discontinuous(ngsolve.H1(m, order=2)),
    "compress-definedon": lambda m: ngsolve.Compress(ngsolve.H1(m, order=1, definedon=m.Materials(".*"))),
    "compress-active": lambda m: ngsolve.Compress(
        ngsolve.H1(m, order=1), active_dofs=ngsolve.BitArray([i % 3 != 0 for i in range(ngsolve.H1(m).ndof)])
    ),
    "product-of-wrappers": lambda m: ngsolve.Discontinuous(ngsolve.H1(m, order=1)) * ngsolve.H1(m, order=1) ** 2,
}


def _dofs(fes: Any, mesh: ngsolve.Mesh) -> list[tuple[int, ...]]:
    out = []
    for vb in (VOL, BND):
        out += [tuple(fes.GetDofNrs(el)) for el in mesh.Elements(vb)]
    return out


def _interpolated(fes: Any) -> np.ndarray | None:
    gf = ngsolve.GridFunction(fes)
    cf = x * y + x + 1
    try:
        if isinstance(fes, comp.ProductSpace) and not isinstance(fes, comp.VectorH1):
            gf.components[0].Set(cf)
        elif fes.dim > 1 or isinstance(fes, (comp.VectorH1, comp.HDiv, comp.HCurl, comp.VectorValued)):
            gf.Set(ngsolve.CF((cf, 2 * cf, 3 * cf)[: fes.mesh.dim if not isinstance(fes, comp.VectorValued) else 3]))
        else:
            gf.Set(cf)
    except Exception:
        return None
    return gf.vec.FV().NumPy().copy()


def _check_same(fes: Any, loaded: Any, mesh: ngsolve.Mesh, mesh2: ngsolve.Mesh, atol: float = 1e-13) -> None:
    assert type(loaded) is type(fes)
    assert loaded.ndof == fes.ndof
    assert str(loaded.FreeDofs()) == str(fes.FreeDofs())
    assert _dofs(loaded, mesh2) == _dofs(fes, mesh)
    assert loaded.is_complex == fes.is_complex
    a, b = _interpolated(fes), _interpolated(loaded)
    assert (a is None) == (b is None)
    if a is not None:
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=atol)


@pytest.mark.parametrize("kind", sorted(SPACES))
def test_space_roundtrip(kind, square, roundtrip):
    fes = SPACES[kind](square)
    loaded, mesh2 = roundtrip([fes, square])
    assert loaded.mesh is mesh2
    _check_same(fes, loaded, square, mesh2)


@pytest.mark.parametrize("kind", ["h1-dirichlet", "hcurl", "product", "power"])
def test_space_roundtrip_3d(kind, ball, roundtrip):
    special = {
        "h1-dirichlet": lambda m: ngsolve.H1(m, order=2, dirichlet="left|sphere"),
        "hcurl": lambda m: ngsolve.HCurl(m, order=1, dirichlet="outer", definedon="box"),
    }
    make = special.get(kind, SPACES[kind])
    loaded = roundtrip(make(ball))
    # curved 3D elements are recomputed from the geometry (or the stored curvature): equal to ~1e-11
    _check_same(make(ball), loaded, ball, loaded.mesh, atol=1e-9)


def test_periodic_space(roundtrip):
    mesh = periodic_mesh()
    fes = ngsolve.Periodic(ngsolve.H1(mesh, order=2, dirichlet="bottom"))
    loaded = roundtrip(fes)
    _check_same(fes, loaded, mesh, loaded.mesh)


def test_spaces_share_their_mesh(square, roundtrip):
    v, q = ngsolve.H1(square, order=1), ngsolve.L2(square, order=0)
    v2, q2, x2 = roundtrip([v, q, v * q])
    assert v2.mesh is q2.mesh
    assert x2.components[0] is v2 and x2.components[1] is q2


def test_regions_are_stored_by_name(square):
    graph = ngser.encode(ngsolve.H1(square, order=1, dirichlet="left|bottom"))
    (node,) = [n for n in graph.nodes if n.name == "ngsolve.FESpace"]
    region = node.state["flags"]["dirichlet"]
    assert region["region"] == "BND"
    assert sorted(region["names"]) == ["bottom", "left"]


@pytest.mark.parametrize(
    "make",
    [
        lambda m: comp.Hidden(ngsolve.H1(m)),
        lambda m: comp.Reorder(ngsolve.H1(m)),
        lambda m: comp.MatrixValued(ngsolve.H1(m), 2),
    ],
)
def test_unsupported_space_is_a_clear_error(make, square):
    fes = make(square)
    with pytest.raises(ngser.NgserError, match=type(fes).__name__):
        ngser.dumps(fes)


@pytest.mark.parametrize("numbers", [[1, 2, 3, 4, 5], [1, 10**9], [0, -3]])
def test_region_numbers_the_mesh_does_not_have_load_as_ngsolve_accepted_them(numbers, square, roundtrip):
    """NGSolve accepts (and ignores) dirichlet numbers beyond the mesh's boundaries; they were saved
    but refused on load ("names region numbers outside the mesh")."""
    fes = ngsolve.H1(square, order=2, dirichlet=numbers)
    loaded = roundtrip(fes)
    assert list(loaded.FreeDofs()) == list(fes.FreeDofs())
    flags = loaded.__reduce_ex__(2)[2][2].ToDict()
    assert flags["dirichlet"] == [float(n) for n in numbers]


@pytest.mark.parametrize(
    ("numbers", "form"), [([2**40], "list"), ("1", "list"), ([1.5], "list"), ([1], "mask"), ([1], ["list"])], ids=str
)
def test_region_number_lists_are_checked(numbers, form, square):
    graph = ngser.encode(ngsolve.H1(square, order=1, dirichlet=[1]))
    (state,) = [n.state for n in graph.nodes if n.name == "ngsolve.FESpace"]
    state["flags"]["dirichlet"].update(numbers=numbers, form=form)
    with pytest.raises(ngser.StateError, match="region numbers|not a region"):
        ngser.decode(graph)
