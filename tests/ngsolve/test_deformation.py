"""``mesh.SetDeformation(gf)`` comes back: the loaded mesh is deformed by the same values, a
deformation GridFunction saved beside its mesh loads as the loaded mesh's deformation, and a
deformation on a mesh curved by its file's curvature adds to the curvature."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import ngsolve
import pytest
from ngsolve import CF, x, y

import ngser
from conftest import ball_in_box_mesh, disk_mesh, square_mesh, write_edited
from ngser.serializers.ngsolve._curvature import CURVATURE_NAME


def deformed(mesh: ngsolve.Mesh, order: int = 2) -> ngsolve.GridFunction:
    gf = ngsolve.GridFunction(ngsolve.VectorH1(mesh, order=order), name="displacement")
    shift = (0.1 * x * y, 0.2 * x * x) if mesh.dim == 2 else (0.1 * x * y, 0.2 * x * x, 0.05 * ngsolve.z)
    gf.Set(CF(shift))
    mesh.SetDeformation(gf)
    return gf


def _values(mesh: ngsolve.Mesh) -> list[float]:
    f = x * x * y + y**3 + 1
    points = [(0.3, 0.4), (0.7, 0.2)] if mesh.dim == 2 else [(0.5, 0.5, 0.1), (0.2, 0.8, 0.9)]
    field = mesh.deformation
    return [
        ngsolve.Integrate(1, mesh),
        ngsolve.Integrate(f, mesh),
        ngsolve.Integrate(1, mesh, ngsolve.BND),
        *(float(c) for p in points for c in field(mesh(*p))),  # the deformation at reference points
    ]


def test_the_deformation_comes_back(roundtrip: Any) -> None:
    mesh = square_mesh()
    deformed(mesh)
    assert ngsolve.Integrate(1, mesh) == pytest.approx(1 + 0.05 - 0.04 / 3)  # det of the map: 1 + 0.1 y - 0.04 x^2
    native = pickle.dumps(mesh)
    if b"ngser.shim" not in native:  # (the shim fixture routes plain pickle through ngser)
        assert pickle.loads(native).deformation is None  # native pickle loses it
    loaded = roundtrip(mesh)
    assert loaded.deformation is not None
    assert _values(loaded) == pytest.approx(_values(mesh), rel=1e-13, abs=1e-15)


def test_a_saved_deformation_is_the_loaded_meshs(roundtrip: Any) -> None:
    mesh = square_mesh()
    gf = deformed(mesh)
    loaded_mesh, loaded_gf = roundtrip([mesh, gf])
    assert loaded_gf.name == "displacement"
    assert loaded_gf.space.mesh == loaded_mesh
    loaded_gf.vec[:] = 0.0  # the loaded GridFunction deforms the loaded mesh
    assert ngsolve.Integrate(1, loaded_mesh) == pytest.approx(1.0, abs=1e-13)


def test_the_gridfunction_first_also_works(roundtrip: Any) -> None:
    mesh = square_mesh()
    gf = deformed(mesh)
    loaded_gf, loaded_mesh = roundtrip([gf, mesh])
    assert ngsolve.Integrate(1, loaded_mesh) == pytest.approx(ngsolve.Integrate(1, mesh), rel=1e-13)
    loaded_gf.vec[:] = 0.0
    assert ngsolve.Integrate(1, loaded_mesh) == pytest.approx(1.0, abs=1e-13)


def test_an_unset_deformation_stays_unset(roundtrip: Any) -> None:
    mesh = square_mesh()
    gf = deformed(mesh)
    mesh.UnsetDeformation()
    loaded_mesh, loaded_gf = roundtrip([mesh, gf])
    assert loaded_mesh.deformation is None
    assert ngsolve.Integrate(1, loaded_mesh) == pytest.approx(1.0, abs=1e-13)
    assert loaded_gf.vec.FV().NumPy().tolist() == gf.vec.FV().NumPy().tolist()  # an ordinary GridFunction


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("make", [disk_mesh, ball_in_box_mesh])
def test_a_deformed_curved_mesh(make: Any, trusted: bool, fmt: str) -> None:
    """With its geometry netgen curves it again and the deformation is set on top; without (or
    under 6.2.2501) the stored curvature and the deformation are one deformation."""
    mesh = make()
    gf = deformed(mesh, order=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded_mesh, loaded_gf = ngser.loads(ngser.dumps([mesh, gf], format=fmt), trusted=trusted)
        assert _values(loaded_mesh)[:3] == pytest.approx(_values(mesh)[:3], rel=1e-10)
        assert loaded_gf.vec.FV().NumPy().tolist() == gf.vec.FV().NumPy().tolist()
        again = ngser.loads(ngser.dumps(loaded_mesh, format=fmt), trusted=trusted)  # saved again
        assert _values(again)[:3] == pytest.approx(_values(mesh)[:3], rel=1e-10)


def test_a_file_curvature_is_not_a_user_deformation() -> None:
    """A curved mesh loaded without its geometry is deformed by its curvature: saved again, that is
    stored as the curvature, and no deformation is added."""
    mesh = disk_mesh()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = ngser.loads(ngser.dumps(mesh))
    if loaded.deformation is None:
        pytest.skip("netgen curved the loaded mesh from its geometry")
    assert loaded.deformation.name == CURVATURE_NAME
    node = next(n for n in ngser.encode(loaded).nodes if n.name == "ngsolve.Mesh")
    assert "deformation" not in node.state and "curvature" in node.state


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d, g: d.__setitem__("name", 7), "name must be a string"),
        (lambda d, g: d.__setitem__("space", "VectorH1"), "must be a dict"),
        (lambda d, g: d["space"].__setitem__("class", "Hidden"), "unknown space class"),
        (lambda d, g: d["space"].__setitem__("mesh", None), "must not name a mesh"),
        (lambda d, g: d["space"]["flags"].__setitem__("order", 99), "order"),
    ],
)
def test_damaged_deformations_end_in_state_errors(edit: Any, match: str, tmp_path: Path) -> None:
    mesh = square_mesh()
    deformed(mesh)

    def change(graph: Any) -> None:
        node = next(n for n in graph.nodes if n.name == "ngsolve.Mesh")
        edit(node.state["deformation"], graph)

    path = write_edited(mesh, change, tmp_path / "edited.msgpack")
    with pytest.raises(ngser.StateError, match=match):
        ngser.load(path)


@pytest.mark.parametrize("values", ["short", "complex", "nan"])
def test_deformation_values_must_fit(values: str, tmp_path: Path) -> None:
    import numpy as np

    from conftest import add_array

    mesh = square_mesh()
    gf = deformed(mesh)
    good = gf.vec.FV().NumPy()
    bad = {"short": good[:-1], "complex": good.astype(complex), "nan": np.full_like(good, np.nan)}[values]

    def change(graph: Any) -> None:
        node = next(n for n in graph.nodes if n.name == "ngsolve.Mesh")
        node.state["deformation"]["values"] = add_array(graph, bad)

    path = write_edited(mesh, change, tmp_path / "edited.msgpack")
    with pytest.raises(ngser.StateError, match="deformation"):
        ngser.load(path)


@pytest.mark.parametrize("dim", [2, 3])
def test_a_deformation_of_a_locally_refined_mesh(dim: int, roundtrip: Any) -> None:
    """Its values are stored in node order like a GridFunction's (the rebuilt mesh numbers its
    edges otherwise): stored as they were, the loaded mesh had another shape."""
    from ngsolve import z

    from ngser.serializers.ngsolve._numbering import renumbered

    mesh = square_mesh() if dim == 2 else ball_in_box_mesh(order=1)
    for el in mesh.Elements():
        mesh.SetRefinementFlag(el, el.nr % 3 == 0)
    mesh.Refine()
    assert renumbered(mesh)
    gf = ngsolve.GridFunction(ngsolve.VectorH1(mesh, order=3), name="displacement")
    shift = (0.1 * x * y * y, 0.2 * x**3) if dim == 2 else (0.1 * x * y * y, 0.2 * x**3, 0.05 * z * z * y)
    gf.Set(CF(shift))
    mesh.SetDeformation(gf)
    loaded, gf2 = roundtrip([mesh, gf])
    assert loaded.deformation is not None
    assert ngsolve.Integrate(1, loaded) == pytest.approx(ngsolve.Integrate(1, mesh), rel=1e-13)
    assert ngsolve.Integrate(x * y * y + 1, loaded, ngsolve.BND) == pytest.approx(
        ngsolve.Integrate(x * y * y + 1, mesh, ngsolve.BND), rel=1e-13
    )
    diff = ngsolve.Integrate(ngsolve.InnerProduct(gf2 - CF(shift), gf2 - CF(shift)), loaded)
    assert diff == pytest.approx(
        ngsolve.Integrate(ngsolve.InnerProduct(gf - CF(shift), gf - CF(shift)), mesh), abs=1e-13
    )
