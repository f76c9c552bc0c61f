"""GridFunctions on refined meshes: a rebuilt mesh numbers the edges and faces differently, and
the values must come back as the same function (``_numbering``), or the save/load must fail."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import ngsolve
import numpy as np
import pytest
from netgen.csg import unit_cube
from netgen.geom2d import unit_square

import ngser
from conftest import disk_mesh
from ngser.serializers.ngsolve._numbering import canonical_dofs, renumbered
from ngser.serializers.ngsolve.gridfunction import GridFunctionSerializer

pytestmark = pytest.mark.filterwarnings("ignore::ngser.serializers.ngsolve.GeometryWarning")

_X, _Y, _Z = ngsolve.x, ngsolve.y, ngsolve.z
_F3 = (ngsolve.sin(3 * _X) * _Y + _Z, _X * _Y * _Y - _Z, ngsolve.cos(_Y + 2 * _Z) * _X)


def _locally_refined(dim: int, times: int = 1) -> ngsolve.Mesh:
    geo = unit_square if dim == 2 else unit_cube
    mesh = ngsolve.Mesh(geo.GenerateMesh(maxh=0.3 if dim == 2 else 0.5))
    for level in range(times):
        for el in mesh.Elements():
            mesh.SetRefinementFlag(el, (el.nr + level) % 3 == 0)
        mesh.Refine()
    return mesh


def _uniform(kind: str) -> ngsolve.Mesh:
    mesh = ngsolve.Mesh(unit_square.GenerateMesh(maxh=0.4))
    if kind == "ngsolve":
        mesh.Refine()
        return mesh
    mesh.ngmesh.Refine()
    return ngsolve.Mesh(mesh.ngmesh)


SPACES: dict[str, Callable[[ngsolve.Mesh], Any]] = {
    "H1-2": lambda m: ngsolve.H1(m, order=2, dirichlet=".*"),
    "H1-4": lambda m: ngsolve.H1(m, order=4),
    "HCurl-0": lambda m: ngsolve.HCurl(m, order=0),
    "HCurl-3": lambda m: ngsolve.HCurl(m, order=3),
    "HDiv-2": lambda m: ngsolve.HDiv(m, order=2),
    "L2-3": lambda m: ngsolve.L2(m, order=3),
    "VectorH1-3": lambda m: ngsolve.VectorH1(m, order=3),
    "H1dim2-3": lambda m: ngsolve.H1(m, order=3, dim=2),
    "H1xHCurl": lambda m: ngsolve.H1(m, order=3) * ngsolve.HCurl(m, order=2),
}


def _cf(fes: Any, dim: int) -> Any:
    parts = _F3[:dim]
    if fes.type in ("hcurlho", "hdivho", "VectorH1") or (fes.type == "h1ho" and fes.dim == 2):
        return ngsolve.CF(parts[: fes.dim if fes.type == "h1ho" else dim])
    if isinstance(fes, ngsolve.comp.ProductSpace) and fes.type != "VectorH1":
        return None
    return parts[0]


def _set(gfu: Any, dim: int) -> None:
    fes = gfu.space
    cf = _cf(fes, dim)
    if cf is not None:
        gfu.Set(cf)
        return
    gfu.components[0].Set(_F3[0])
    gfu.components[1].Set(ngsolve.CF(_F3[:dim]))


def _points(mesh: ngsolve.Mesh, n: int = 40) -> list[Any]:
    rng = np.random.default_rng(7)
    low, high = (-0.6, 0.6) if mesh.ngmesh.bounding_box[0][0] < -0.5 else (0.02, 0.98)  # the disk, the unit cube
    pts = rng.uniform(low, high, size=(n, mesh.dim))
    return [mesh(*p) for p in pts]


def _values(gfu: Any, mesh: ngsolve.Mesh) -> np.ndarray:
    cfs = list(gfu.components) if _cf(gfu.space, gfu.space.mesh.dim) is None else [gfu]
    out = [np.ravel(ngsolve.Integrate(cf, mesh, order=6)) for cf in cfs]
    out += [np.ravel(cf(p)) for cf in cfs for p in _points(mesh)]
    grads = [ngsolve.grad(c) for c in cfs if c.space.type in ("h1ho", "VectorH1")]
    out += [np.ravel(ngsolve.Integrate(ngsolve.InnerProduct(g, g) * (1 + _X), mesh, order=6)) for g in grads]
    return np.concatenate([np.asarray(o, dtype=float) for o in out])


def _check(gfu: Any, loaded: Any, fresh_set: bool = True) -> None:
    """Integrals of the function and its gradient and point values as the original's, and (for
    a function set by :func:`_set`) the vector as that of ``Set`` on the loaded space."""
    mesh, new_mesh = gfu.space.mesh, loaded.space.mesh
    assert np.allclose(_values(loaded, new_mesh), _values(gfu, mesh), rtol=1e-11, atol=1e-12)
    if not fresh_set:
        return
    fresh = ngsolve.GridFunction(loaded.space)
    _set(fresh, mesh.dim)
    assert np.allclose(loaded.vec.FV().NumPy(), fresh.vec.FV().NumPy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("space", sorted(SPACES))
@pytest.mark.parametrize("dim", [2, 3])
def test_locally_refined(space: str, dim: int, roundtrip: Callable[[Any], Any]) -> None:
    mesh = _locally_refined(dim)
    assert renumbered(mesh)
    gfu = ngsolve.GridFunction(SPACES[space](mesh))
    _set(gfu, dim)
    loaded = roundtrip(gfu)
    _check(gfu, loaded)
    if not space.startswith(("HCurl", "HDiv", "H1xHCurl")):  # no dofs on bisected edges and faces
        assert loaded.space.ndof == gfu.space.ndof
    # the same free dofs, compared node by node (dof numbers differ)
    (old, _), (new, _) = canonical_dofs(gfu.space), canonical_dofs(loaded.space)
    free_old, free_new = (np.fromiter(f.FreeDofs(), bool) for f in (gfu.space, loaded.space))
    assert np.array_equal(free_old[old], free_new[new])
    assert free_old.sum() == free_new.sum()


def test_native_pickle_is_wrong_here() -> None:
    """The case is real: native pickle gives back another function (this test fails if NGSolve
    starts to keep the numbering, and then ngser's node order is no longer needed)."""
    mesh = _locally_refined(2)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=3))
    gfu.Set(_F3[0])
    native = pickle.loads(pickle.dumps(gfu))
    assert not np.allclose(_values(native, native.space.mesh), _values(gfu, mesh), rtol=1e-6)


@pytest.mark.parametrize(("dim", "times"), [(2, 2), (2, 3), (3, 2)])
def test_refined_several_times(dim: int, times: int, fmt: str) -> None:
    mesh = _locally_refined(dim, times)
    for space in ("H1-4", "HCurl-3", "HDiv-2"):
        gfu = ngsolve.GridFunction(SPACES[space](mesh))
        _set(gfu, dim)
        _check(gfu, ngser.loads(ngser.dumps(gfu, format=fmt)))


@pytest.mark.parametrize("kind", ["ngsolve", "netgen"])
def test_uniformly_refined(kind: str, fmt: str) -> None:
    mesh = _uniform(kind)
    assert renumbered(mesh)
    for space in ("H1-4", "HCurl-0", "L2-3"):
        gfu = ngsolve.GridFunction(SPACES[space](mesh))
        _set(gfu, 2)
        _check(gfu, ngser.loads(ngser.dumps(gfu, format=fmt)))


def test_curved_mesh_refined_after_curving() -> None:
    mesh = disk_mesh(order=3)
    mesh.Refine()
    mesh.Curve(3)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=3))
    _set(gfu, 2)
    data = ngser.dumps(gfu)
    _check(gfu, ngser.loads(data, trusted=True))  # curved again from its geometry
    untrusted = ngser.loads(data)  # curved by the curvature the file stores
    f = _X**4 * _Y**2 + _X**3 * gfu
    for vb in (ngsolve.VOL, ngsolve.BND):
        got = ngsolve.Integrate(_X**4 * _Y**2 + _X**3 * untrusted, untrusted.space.mesh, vb, order=10)
        assert got == pytest.approx(ngsolve.Integrate(f, mesh, vb, order=10), rel=1e-10)


def test_many_gridfunctions_share_one_order(fmt: str) -> None:
    mesh = _locally_refined(2)
    fes = ngsolve.H1(mesh, order=3, dirichlet="left")
    gfs = [ngsolve.GridFunction(fes, name=f"u{i}") for i in range(5)]
    for i, gf in enumerate(gfs):
        gf.Set((i + 1) * _X * _Y + ngsolve.sin(i * _Y))
    assert canonical_dofs(fes) is canonical_dofs(fes)  # computed once per space
    multi = ngsolve.GridFunction(fes, multidim=3)
    for i in range(3):
        multi.vecs[i].data = gfs[i].vec
    loaded = ngser.loads(ngser.dumps([*gfs, multi], format=fmt))
    assert loaded[0].space is loaded[4].space
    for gf, back in zip(gfs, loaded[:5]):
        _check(gf, back, fresh_set=False)
    for i in range(3):
        assert np.allclose(loaded[5].vecs[i].FV().NumPy(), loaded[i].vec.FV().NumPy(), atol=1e-14)


def test_component_and_complex() -> None:
    mesh = _locally_refined(3)
    gfu = ngsolve.GridFunction(SPACES["H1xHCurl"](mesh))
    _set(gfu, 3)
    comp, whole = ngser.loads(ngser.dumps([gfu.components[1], gfu]))
    assert np.allclose(_values(comp, comp.space.mesh)[:3], _values(gfu.components[1], mesh)[:3], rtol=1e-11)
    _check(gfu, whole)
    gfc = ngsolve.GridFunction(ngsolve.H1(mesh, order=3, complex=True))
    gfc.Set((1 + 2j) * _X * _Y * _Z + 1j * _Y)
    back = ngser.loads(ngser.dumps(gfc))
    points = _points(mesh)
    assert np.allclose([back(p) for p in _points(back.space.mesh)], [gfc(p) for p in points], rtol=1e-11)


def test_unrefined_mesh_keeps_the_plain_layout() -> None:
    mesh = ngsolve.Mesh(unit_square.GenerateMesh(maxh=0.3))
    assert not renumbered(mesh)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=3))
    serializer = GridFunctionSerializer()
    assert "dof_order" not in serializer.dump(gfu)
    state = serializer.dump(ngsolve.GridFunction(ngsolve.H1(_locally_refined(2), order=3)))
    assert state["dof_order"]["kind"] == "nodes"


def _edited_state(edit: Callable[[dict[str, Any]], None] | None) -> Any:
    mesh = _locally_refined(2)
    gfu = ngsolve.GridFunction(ngsolve.H1(mesh, order=3))
    gfu.Set(_X)
    other = ngsolve.H1(ngsolve.Mesh(unit_square.GenerateMesh(maxh=0.3)), order=3)
    serializer = GridFunctionSerializer()
    state = serializer.dump(gfu)
    state["values"] = np.array(state["values"])
    state["space"] = other if edit is None else gfu.space
    if edit is not None:
        edit(state)
    return serializer, state


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.update(dof_order={"kind": "nodes", "digest": "0" * 32, "count": s["dof_order"]["count"]}),
        lambda s: s.update(dof_order={"kind": "other", "digest": "0" * 32, "count": 1}),
        lambda s: s.update(dof_order=[1, 2]),
        lambda s: s["dof_order"].update(count=-3),
        lambda s: s["dof_order"].update(count=True),
        lambda s: s["dof_order"].update(digest=5),
        lambda s: s.update(values=s["values"][:-1]),
        None,  # another mesh's space
    ],
)
def test_bad_dof_order_is_a_state_error(edit: Any) -> None:
    serializer, state = _edited_state(edit)
    with pytest.raises(ngser.StateError):
        serializer.load(state)


@pytest.mark.parametrize("dim", [2, 3])
def test_a_compressed_space_on_a_refined_mesh(dim: int, roundtrip: Callable[[Any], Any]) -> None:
    """``Compress(V, active_dofs)`` names dofs by number: on a refined mesh the bits are stored in
    node order too (stored as they were, another set of dofs was active after loading)."""
    mesh = _locally_refined(dim)
    base = ngsolve.H1(mesh, order=3, dirichlet=".*")
    fes = ngsolve.Compress(base, active_dofs=base.FreeDofs())
    gfu = ngsolve.GridFunction(fes)
    gfu.Set(ngsolve.x * (1 - ngsolve.x) * ngsolve.y * (1 - ngsolve.y))
    loaded = roundtrip(gfu)
    assert loaded.space.ndof == fes.ndof
    mesh2 = loaded.space.mesh
    for f in (1, ngsolve.x * ngsolve.y):
        assert ngsolve.Integrate(f * loaded, mesh2) == pytest.approx(ngsolve.Integrate(f * gfu, mesh), rel=1e-12)
    assert ngsolve.Integrate(ngsolve.grad(loaded) * ngsolve.grad(loaded), mesh2) == pytest.approx(
        ngsolve.Integrate(ngsolve.grad(gfu) * ngsolve.grad(gfu), mesh), rel=1e-12
    )


def _count_dof_nrs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The node kinds of every ``GetDofNrs`` question the node order asks from now on."""
    from ngser.serializers.ngsolve import _numbering

    calls: list[int] = []
    original = _numbering._dof_nrs

    def counted(fes: Any, kind: int, nr: int) -> tuple[int, ...]:
        calls.append(kind)
        return original(fes, kind, nr)

    monkeypatch.setattr(_numbering, "_dof_nrs", counted)
    return calls


def test_face_vertices_of_a_refined_mesh_ask_no_face_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The faces' dofs come in one piece (the facet space's numbering, sampled), not from
    GetDofNrs face by face, which took 20 microseconds a face (minutes for a 3.7M-tet mesh)."""
    from ngser.serializers.ngsolve import _numbering

    ngmesh = unit_cube.GenerateMesh(maxh=0.25)
    ngmesh.Refine()
    mesh = ngsolve.Mesh(ngmesh)
    calls = _count_dof_nrs(monkeypatch)
    faces = _numbering._face_vertices(mesh)
    assert len(calls) <= 2 * _numbering._SAMPLES < int(mesh.nface)
    assert faces.shape == (int(mesh.nface), 4) and (faces[:, :3] >= 0).all() and (faces[:, 3] == -1).all()
    for nr in (0, int(mesh.nface) // 2, int(mesh.nface) - 1):  # the vertices NGSolve gives each face
        expected = sorted(v.nr for v in mesh[ngsolve.NodeId(ngsolve.FACE, nr)].vertices)
        assert faces[nr, :3].tolist() == expected


@pytest.mark.parametrize("refine", ["uniform", "local"])
def test_faces_of_an_ngsolve_refined_mesh_ask_no_face_one_by_one(refine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ngsolve.Mesh.Refine`` keeps the coarse faces, which no element has and the facet space
    gives no dof: the faces' dofs are then the ranks of the used faces (found by one table of
    ``H1(order=3)``), not 20 s of GetDofNrs face by face for a 200k-tet mesh."""
    from ngser.serializers.ngsolve import _numbering

    mesh = ngsolve.Mesh(unit_cube.GenerateMesh(maxh=0.3))
    for el in mesh.Elements():
        mesh.SetRefinementFlag(el, refine == "uniform" or el.nr % 3 == 0)
    mesh.Refine()
    facets = ngsolve.FacetFESpace(mesh, order=0)
    truth = [tuple(facets.GetDofNrs(ngsolve.NodeId(ngsolve.FACE, nr))) for nr in range(int(mesh.nface))]
    assert () in truth and int(facets.ndof) < int(mesh.nface)  # coarse faces without a dof
    calls = _count_dof_nrs(monkeypatch)
    dofs = _numbering._lowest_order_facet_dofs(facets, int(mesh.nface))
    assert [(d,) if d >= 0 else () for d in dofs.tolist()] == truth
    assert len(calls) <= 4 * _numbering._SAMPLES < int(mesh.nface)
    faces = _numbering._face_vertices(mesh)
    for nr in range(0, int(mesh.nface), 7):
        expected = sorted(v.nr for v in mesh[ngsolve.NodeId(ngsolve.FACE, nr)].vertices) if truth[nr] else [-1] * 3
        assert faces[nr, :3].tolist() == expected, nr


#: Digests of the node order of spaces on a refined structured mesh, as files since ngser 0.1 store
#: them (the same under NGSolve 6.2.2501 and 6.2.2608). A change of the order or of the keys would
#: make GridFunctions saved on refined meshes unloadable: it needs a new ``dof_order`` kind instead.
STORED_DIGESTS = {
    (2, "H1", 3): "704b10b03151a12e6e3b84ddd8d86823",
    (2, "H1", 5): "73dc919ccfa674695559bea75741af45",
    (2, "HCurl", 2): "984e2051ddd881c35733fd5106b648d7",
    (2, "L2", 2): "6de250a17aab6fb32cebfc0c4ed6c5e7",
    (3, "H1", 3): "dd9ea3cb69b446b501f3e9bd8ec20630",
    (3, "H1", 5): "646628ae80e9b52b0570256e5b7d6976",
    (3, "HCurl", 2): "2685d61a71bb79c0527aa5417c64b0fd",
    (3, "L2", 2): "324596b590e216ba6b24c8b16b536d82",
}


@pytest.mark.parametrize(("dim", "space", "order"), sorted(STORED_DIGESTS))
def test_node_order_digests_stay_those_files_store(dim: int, space: str, order: int) -> None:
    from ngsolve.meshes import MakeStructured2DMesh, MakeStructured3DMesh

    if dim == 3:
        mesh = MakeStructured3DMesh(hexes=False, nx=2, ny=2, nz=2)
    else:
        mesh = MakeStructured2DMesh(quads=False, nx=3, ny=3)
    mesh.ngmesh.Refine()
    mesh = ngsolve.Mesh(mesh.ngmesh)
    fes = getattr(ngsolve, space)(mesh, order=order)
    assert canonical_dofs(fes)[1] == STORED_DIGESTS[(dim, space, order)]
