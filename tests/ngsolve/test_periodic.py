"""Periodic and quasi-periodic spaces, stored by their parameters (``ngsolve.PeriodicSpace``).

The phase and identification numbers are read from NGSolve's archive bytes of the live space
when saving (their layout differs between 6.2.2501 and 6.2.2608); loading rebuilds the space
with ``ngsolve.Periodic`` from checked plain values, without trust. The layout of earlier ngser
versions (``ngsolve.Periodic``, NGSolve's bytes) still loads, with trust only.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netgen.meshing as nm
import ngsolve
import numpy as np
import pytest
from netgen.occ import OCCGeometry, Rectangle, X, Y

import ngser
from conftest import load_each_in_child, write_edited
from ngser.graph import Graph, Ref
from ngser.serializers.ngsolve import spaces
from ngser.serializers.ngsolve._archive_read import periodic_fields


def doubly_periodic_mesh() -> ngsolve.Mesh:
    """A unit square periodic in x (identification 0) and in y (identification 1)."""
    face = Rectangle(1, 1).Face()
    face.edges.Min(X).name, face.edges.Max(X).name = "left", "right"
    face.edges.Min(Y).name, face.edges.Max(Y).name = "bottom", "top"
    face.edges.Min(X).Identify(face.edges.Max(X), "px", nm.IdentificationType.PERIODIC)
    face.edges.Min(Y).Identify(face.edges.Max(Y), "py", nm.IdentificationType.PERIODIC)
    return ngsolve.Mesh(OCCGeometry(face, dim=2).GenerateMesh(maxh=0.3))


MESH = doubly_periodic_mesh()
PHASE_C = [cmath.exp(0.7j), -1j]
F = ngsolve.sin(3 * ngsolve.x) * ngsolve.cos(2 * ngsolve.y) + ngsolve.x * ngsolve.y

#: case -> (base space, keyword arguments of ngsolve.Periodic, stored class, stored phase, stored use_idnrs)
CASES: dict[str, tuple[Callable[[], Any], dict[str, Any], str, Any, Any]] = {
    "periodic": (lambda: ngsolve.H1(MESH, order=3), {}, "Periodic", None, None),
    "use_idnrs": (lambda: ngsolve.H1(MESH, order=2, dirichlet="bottom"), {"use_idnrs": [1]}, "Periodic", None, [1]),
    "dirichlet list": (
        lambda: ngsolve.H1(MESH, order=2, dirichlet=[1.0, 3.0]),
        {"use_idnrs": [0, 1]},
        "Periodic",
        None,
        [0, 1],
    ),
    "dirichlet region": (
        lambda: ngsolve.H1(MESH, order=2, dirichlet=MESH.Boundaries("left")),
        {"use_idnrs": [1]},
        "Periodic",
        None,
        [1],
    ),
    "real phase": (lambda: ngsolve.H1(MESH, order=3), {"phase": [2.0, -0.5]}, "QuasiPeriodicD", [2.0, -0.5], None),
    "complex phase": (
        lambda: ngsolve.H1(MESH, order=3, complex=True),
        {"phase": PHASE_C},
        "QuasiPeriodicC",
        PHASE_C,
        None,
    ),
    "complex phase, one identification": (
        lambda: ngsolve.H1(MESH, order=2, complex=True, dirichlet="top"),
        {"phase": PHASE_C[:1], "use_idnrs": [0]},
        "QuasiPeriodicC",
        PHASE_C[:1],
        [0],
    ),
    "phase longer than the identifications": (
        lambda: ngsolve.H1(MESH, order=2),
        {"phase": [2.0, 3.0, 4.0]},
        "QuasiPeriodicD",
        [2.0, 3.0],
        None,
    ),
    "product": (lambda: ngsolve.H1(MESH, order=2) * ngsolve.L2(MESH, order=0), {}, "Periodic", None, None),
}


def _make(case: str) -> Any:
    base, kwargs, *_ = CASES[case]
    return ngsolve.Periodic(base(), **kwargs)


def _nodes(obj: Any, name: str) -> list[dict[str, Any]]:
    return [node.state for node in ngser.encode(obj).nodes if node.name == name]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_state_holds_the_parameters(case: str) -> None:
    _, _, cls, phase, idnrs = CASES[case]
    (state,) = _nodes(_make(case), "ngsolve.PeriodicSpace")
    assert not _nodes(_make(case), "ngsolve.Periodic")
    assert {k: state[k] for k in ("class", "phase", "use_idnrs", "autoupdate")} == {
        "class": cls,
        "phase": phase,
        "use_idnrs": idnrs,
        "autoupdate": True,
    }
    assert isinstance(state["space"], Ref)


@pytest.mark.parametrize("case", sorted(CASES))
def test_periodic_roundtrip(case: str, roundtrip: Callable[[Any], Any]) -> None:
    fes = _make(case)
    gfu = ngsolve.GridFunction(fes)
    scalar = case != "product"
    if scalar:
        gfu.Set(F)
    else:  # a compound space: any values
        gfu.vec.FV().NumPy()[:] = np.random.default_rng(1).random(fes.ndof)
    loaded = roundtrip(gfu)  # untrusted: nothing of NGSolve's bytes in the file
    space = loaded.space
    assert isinstance(space, ngsolve.comp.Periodic)
    assert space.ndof == fes.ndof
    assert list(space.FreeDofs()) == list(fes.FreeDofs())
    assert list(space.dofmap) == list(fes.dofmap)
    assert np.array_equal(loaded.vec.FV().NumPy(), gfu.vec.FV().NumPy())
    if scalar:
        assert ngsolve.Integrate(loaded * loaded, space.mesh) == ngsolve.Integrate(gfu * gfu, MESH)
        assert ngsolve.Integrate(loaded, space.mesh, definedon=space.mesh.Boundaries("right|top")) == (
            ngsolve.Integrate(gfu, MESH, definedon=MESH.Boundaries("right|top"))
        )
        # a GridFunction set on the loaded space equals one set on the original (phase and dof map)
        again = ngsolve.GridFunction(space)
        again.Set(F)
        assert np.allclose(again.vec.FV().NumPy(), gfu.vec.FV().NumPy(), rtol=0, atol=1e-13)


@pytest.mark.parametrize("case", ["real phase", "complex phase"])
def test_the_phase_changes_the_values(case: str) -> None:
    """What the round trip compares depends on the phase: without it the values differ."""
    base, *_ = CASES[case]
    with_phase, without = ngsolve.GridFunction(_make(case)), ngsolve.GridFunction(ngsolve.Periodic(base()))
    with_phase.Set(F)
    without.Set(F)
    assert not np.allclose(with_phase.vec.FV().NumPy(), without.vec.FV().NumPy())


def test_the_base_space_is_shared(roundtrip: Callable[[Any], Any]) -> None:
    base = ngsolve.H1(MESH, order=2)
    spaces_ = [ngsolve.Periodic(base), ngsolve.Periodic(base, phase=[2.0, 3.0]), base]
    assert len(_nodes(spaces_, "ngsolve.FESpace")) == 1 and len(_nodes(spaces_, "ngsolve.PeriodicSpace")) == 2
    first, second, loaded_base = roundtrip(spaces_)
    assert first.mesh is second.mesh is loaded_base.mesh
    assert (first.ndof, second.ndof) == (spaces_[0].ndof, spaces_[1].ndof)


def test_the_parser_refuses_damaged_bytes() -> None:
    data = bytes(ngsolve.Periodic(ngsolve.H1(MESH, order=2, dirichlet=[1.0]), phase=PHASE_C).__getstate__()[0][-3])
    fields = periodic_fields(data)
    assert fields is not None and fields.cls == "QuasiPeriodicC" and fields.phase == PHASE_C
    for cut in range(len(data)):  # a cut inside what is read is refused; the rest is not read
        found = periodic_fields(data[:cut])
        assert found is None or (found.phase, found.use_idnrs) == (PHASE_C, [])
    plain = bytes(ngsolve.Periodic(ngsolve.H1(MESH, order=2), use_idnrs=[1]).__getstate__()[0][-3])
    assert periodic_fields(plain) is not None
    for cut in range(len(plain)):
        found = periodic_fields(plain[:cut])
        assert found is None or (found.cls, found.phase, found.use_idnrs) == ("Periodic", None, [1])
    assert periodic_fields(plain[:40]) is None  # the class name and 9 bytes of the first field
    rng = np.random.default_rng(5)
    for _ in range(2000):
        damaged = bytearray(data)
        for at in rng.integers(0, len(data), int(rng.integers(1, 4))):
            damaged[at] = int(rng.integers(0, 256))
        found = periodic_fields(bytes(damaged))  # never raises
        assert found is None or (len(found.phase or []) < 2**20 and len(found.use_idnrs) < 2**20)


def _legacy(fes: Any) -> Any:
    return spaces.NativePeriodicSpace(fes)


@pytest.mark.parametrize("case", ["periodic", "complex phase"])
def test_old_periodic_nodes_need_trust(case: str, fmt: str, tmp_path: Path) -> None:
    fes = _make(case)
    path = tmp_path / f"old.{fmt}"
    ngser.save(_legacy(fes), path, format=fmt)  # the node earlier ngser versions wrote: NGSolve's bytes
    assert "ngsolve.Periodic" in {node.name for node in ngser.read_graph(path).nodes}
    with pytest.raises(ngser.UnsafeLoadError, match="NGSolve's own archive bytes of a Periodic space"):
        ngser.load(path)
    loaded = ngser.load(path, trusted=True)
    assert loaded.ndof == fes.ndof and list(loaded.FreeDofs()) == list(fes.FreeDofs())
    mine, theirs = ngsolve.GridFunction(fes), ngsolve.GridFunction(loaded)
    mine.Set(F)
    theirs.Set(F)  # 6.2.2501 restores a space that interpolates to zeros unless updated
    assert np.abs(theirs.vec.FV().NumPy()).max() > 0.1
    assert np.allclose(mine.vec.FV().NumPy(), theirs.vec.FV().NumPy(), rtol=0, atol=1e-13)


def test_unreadable_archives_are_saved_as_trusted_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A periodic space whose archive ngser cannot read (another NGSolve's layout) or that names
    identifications the mesh does not have is written in the old, trusted-only layout."""
    fes = _make("real phase")
    monkeypatch.setattr(spaces, "periodic_fields", lambda data: None)
    assert _nodes(fes, "ngsolve.Periodic") and not _nodes(fes, "ngsolve.PeriodicSpace")
    monkeypatch.undo()
    odd = ngsolve.Periodic(ngsolve.H1(MESH, order=2), use_idnrs=[5])
    assert _nodes(odd, "ngsolve.Periodic") and not _nodes(odd, "ngsolve.PeriodicSpace")
    with pytest.raises(ngser.UnsafeLoadError):
        ngser.loads(ngser.dumps(odd))
    assert ngser.loads(ngser.dumps(odd), trusted=True).ndof == odd.ndof


# -- crafted states ------------------------------------------------------------------------


def _edit(**changes: Any) -> Callable[[Graph], None]:
    def run(graph: Graph) -> None:
        state = next(n.state for n in graph.nodes if n.name == "ngsolve.PeriodicSpace")
        for key, value in changes.items():
            if value is _MESH:
                value = Ref(next(n.id for n in graph.nodes if n.name == "ngsolve.Mesh"))
            state[key] = value

    return run


_MESH = object()

#: case -> (space to save, edit of its graph, text the StateError must contain)
CRAFTED: dict[str, tuple[str, Callable[[Graph], None], str]] = {
    "phase too short": ("complex phase", _edit(phase=[1j]), "phase of a QuasiPeriodicC space must be a list of 2"),
    "phase too long": ("real phase", _edit(phase=[1.0, 2.0, 3.0]), "list of 2 to 2 factors"),
    "phase empty": ("real phase", _edit(phase=[]), "phase"),
    "phase of 10**6 factors": ("real phase", _edit(phase=[1.0] * 10**6), "phase"),
    "NaN phase": ("real phase", _edit(phase=[math.nan, 1.0]), "finite float"),
    "infinite phase": ("complex phase", _edit(phase=[complex(math.inf, 0), 1j]), "finite complex"),
    "complex phase in a real space": ("real phase", _edit(phase=[1j, 2j]), "finite float"),
    "phase of text": ("real phase", _edit(phase="2.0"), "phase"),
    "phase for a Periodic space": ("periodic", _edit(phase=[1.0, 2.0]), "has no phase"),
    "no phase for a quasi-periodic space": ("complex phase", _edit(phase=None), "phase"),
    "use_idnrs 10**9": ("periodic", _edit(use_idnrs=[10**9]), "use_idnrs"),
    "use_idnrs 2**70": ("periodic", _edit(use_idnrs=[2**70]), "use_idnrs"),
    "use_idnrs -1": ("use_idnrs", _edit(use_idnrs=[-1]), "distinct periodic identifications"),
    "use_idnrs 2 of 2": ("use_idnrs", _edit(use_idnrs=[2]), "which has 2"),
    "use_idnrs twice": ("use_idnrs", _edit(use_idnrs=[0, 0]), "distinct"),
    "use_idnrs of 10**6 numbers": ("periodic", _edit(use_idnrs=list(range(10**6))), "at most 2"),
    "use_idnrs of floats": ("periodic", _edit(use_idnrs=[0.0]), "use_idnrs"),
    "use_idnrs of text": ("periodic", _edit(use_idnrs="0"), "use_idnrs"),
    "wrong class name": ("periodic", _edit(**{"class": "Hidden"}), "class must be one of"),
    "class not text": ("periodic", _edit(**{"class": 3}), "class must be one of"),
    "space is a mesh": ("periodic", _edit(space=_MESH), "not a space"),
    "space is None": ("periodic", _edit(space=None), "not a space"),
    "space is a number": ("periodic", _edit(space=7), "not a space"),
    "autoupdate text": ("periodic", _edit(autoupdate="yes"), "autoupdate"),
}


def test_crafted_periodic_states_end_in_state_errors(tmp_path: Path) -> None:
    """Each crafted file is written with ngser's own writer (checksums match) and loaded in one
    child process: a crash there kills only the child, and the test names the file it died on.
    The unedited file loads there."""
    paths = {}
    for i, (case, (kind, edit, _)) in enumerate([("unedited", ("complex phase", _edit(), "")), *CRAFTED.items()]):
        paths[case] = write_edited([MESH, _make(kind)], edit, tmp_path / f"case{i}.msgpack")
    verdicts = load_each_in_child(list(paths.values()))
    assert verdicts.get(str(paths.pop("unedited"))) == "LOADED"
    wrong = {}
    for case, path in paths.items():
        verdict = verdicts.get(str(path), "")
        if not (
            verdict.startswith("StateError") and "ngsolve.PeriodicSpace" in verdict and CRAFTED[case][2] in verdict
        ):
            wrong[case] = verdict
    assert not wrong, wrong
