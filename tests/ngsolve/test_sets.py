"""BitArrays (``fes.FreeDofs()``) and Regions (``mesh.Materials(...)``) come back equal, also to
what NGSolve's own pickle gives, and crafted states end in a StateError."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ngsolve
import numpy as np
import pyngcore
import pytest

from conftest import add_array, ball_in_box_mesh, crafted_verdicts, square_mesh
from ngser.graph import Graph

MESH = square_mesh(0.3)
BALL = ball_in_box_mesh()


@pytest.mark.parametrize(
    "make",
    [
        lambda: ngsolve.H1(MESH, order=2, dirichlet="left|top").FreeDofs(),
        lambda: pyngcore.BitArray(0),
        lambda: pyngcore.BitArray((np.arange(100_003) % 7 == 0).tolist()),
    ],
    ids=["free dofs", "empty", "100,003 bits"],
)
def test_bit_arrays_come_back_equal(make: Callable[[], Any], roundtrip: Callable[[Any], Any]) -> None:
    bits = make()
    loaded = roundtrip(bits)
    assert isinstance(loaded, pyngcore.BitArray)
    assert list(loaded) == list(bits) == list(pickle.loads(pickle.dumps(bits)))


@pytest.mark.parametrize(
    ("mesh", "make", "vb"),
    [
        (MESH, lambda m: m.Materials("default"), ngsolve.VOL),
        (MESH, lambda m: m.Boundaries("left|top"), ngsolve.BND),
        (BALL, lambda m: m.Materials("ball"), ngsolve.VOL),
        (BALL, lambda m: m.Boundaries("sphere|left"), ngsolve.BND),
    ],
    ids=["2D material", "2D boundaries", "3D material", "3D boundaries"],
)
def test_regions_come_back_on_the_loaded_mesh(
    mesh: ngsolve.Mesh, make: Callable[[Any], Any], vb: Any, roundtrip: Callable[[Any], Any]
) -> None:
    region = make(mesh)
    mesh2, loaded = roundtrip([mesh, region])
    assert loaded.mesh is mesh2 and loaded.VB() == region.VB() == vb
    assert list(loaded.Mask()) == list(region.Mask()) == list(pickle.loads(pickle.dumps(region)).Mask())
    area = ngsolve.Integrate(1, mesh, definedon=region)
    assert area > 0 and ngsolve.Integrate(1, mesh2, definedon=loaded) == pytest.approx(area, rel=1e-12)


def test_a_region_on_its_own_brings_its_mesh(roundtrip: Callable[[Any], Any]) -> None:
    loaded = roundtrip(MESH.Boundaries("left"))
    assert loaded.mesh.nv == MESH.nv and list(loaded.Mask()) == list(MESH.Boundaries("left").Mask())


def _state(graph: Graph, name: str) -> dict[str, Any]:
    return next(n.state for n in graph.nodes if n.name == name)


def _replace_array(graph: Graph, name: str, key: str, array: np.ndarray) -> None:
    _state(graph, name)[key] = add_array(graph, array)


CRAFTED: dict[str, tuple[Any, Callable[[Graph], None], str]] = {
    "bits as text": (pyngcore.BitArray(5), lambda g: _state(g, "pyngcore.BitArray").update(bits="11"), "bool array"),
    "bits of ints": (
        pyngcore.BitArray(5),
        lambda g: _replace_array(g, "pyngcore.BitArray", "bits", np.ones(5, dtype=np.int64)),
        "bool array",
    ),
    "mask too short": (
        MESH.Boundaries("left"),
        lambda g: _replace_array(g, "ngsolve.Region", "mask", np.ones(1, dtype=bool)),
        "the mesh has 4 BND regions",
    ),
    "mask of 10**6": (
        MESH.Boundaries("left"),
        lambda g: _replace_array(g, "ngsolve.Region", "mask", np.ones(10**6, dtype=bool)),
        "the mesh has 4 BND regions",
    ),
    "region kind XYZ": (MESH.Boundaries("left"), lambda g: _state(g, "ngsolve.Region").update(region="XYZ"), "one of"),
    # found by the state fuzzer: a list as the kind was a TypeError (unhashable)
    "region kind a list": (MESH.Boundaries("left"), lambda g: _state(g, "ngsolve.Region").update(region=[1]), "one of"),
    "mesh is None": (MESH.Boundaries("left"), lambda g: _state(g, "ngsolve.Region").update(mesh=None), "ngsolve.Mesh"),
}


def test_crafted_states_end_in_state_errors(tmp_path: Path) -> None:
    verdicts = crafted_verdicts(CRAFTED, tmp_path)
    wrong = {
        case: verdict
        for case, verdict in verdicts.items()
        if not (verdict.startswith("StateError") and CRAFTED[case][2] in verdict)
    }
    assert not wrong, wrong
