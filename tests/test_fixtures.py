"""Format stability: the files committed under ``tests/fixtures/`` must load in every later version.

Each fixture was written by some ngser version (``manifest.json`` says which). If a test
here fails, a change broke reading files that users already have: fix the reader (or add
a migration), never regenerate the fixture. ``tests/fixtures/make_fixtures.py`` only
*adds* files, when the format version changes or a backend is added.

The ``ngsolve-<version>`` fixtures were written under the oldest and the newest supported
NGSolve; ``make test`` runs this module under both (``make test-ngsolve-oldest``), so every
such file is loaded under every supported version and must give the same numbers.
"""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest

import ngser
from fixture_types import REGISTRY, fixture_objects, fixture_tables, fixture_values, same
from helpers import EXTENSION
from ngser.graph import FORMAT_VERSION, format_of

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST: dict[str, Any] = json.loads((FIXTURES / "manifest.json").read_text())
KINDS = ("values", "objects", "tables", "ngsolve")
#: The format version ngser writes NGSolve objects in: their serializers never fill
#: ``__dict__``, so their graphs have no node tables (format 2).
NGSOLVE_FORMAT = 1
#: What the plain fixture kinds hold.
MAKERS = {"values": fixture_values, "objects": fixture_objects, "tables": fixture_tables}
#: Cross-version NGSolve fixtures compare to the numbers their writer computed to this relative
#: precision (and this absolute one, for numbers that are zero up to rounding).
REL, ABS = 1e-12, 1e-14


def _ngsolve_versions(module_name: str = "ngsolve_versions") -> Any:
    """``tests/fixtures/ngsolve_versions.py`` (or ``ngsolve_structured.py``), which builds and
    measures the cross-version fixtures."""
    spec = importlib.util.spec_from_file_location(module_name, FIXTURES / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifest_lists_every_fixture() -> None:
    files = {p.name for p in FIXTURES.iterdir() if p.suffix in EXTENSION.values()}
    assert files == set(MANIFEST)


def test_fixtures_are_small() -> None:
    for name in MANIFEST:
        assert (FIXTURES / name).stat().st_size < 100_000, name


@pytest.mark.parametrize("kind", KINDS)
def test_every_backend_has_fixtures_of_the_current_format(fmt: str, kind: str) -> None:
    if kind == "ngsolve":
        pytest.importorskip("ngsolve")
        version = NGSOLVE_FORMAT
    else:
        version = format_of(ngser.encode(MAKERS[kind](), registry=REGISTRY))
    name = f"{kind}.format{version}{EXTENSION[fmt]}"
    assert name in MANIFEST, (
        f"no fixture {name}: a new backend or format version needs its fixtures; run "
        "tests/fixtures/make_fixtures.py once (it only adds missing files)"
    )


def _names(kind: str) -> list[str]:
    return sorted(name for name, info in MANIFEST.items() if info["kind"] == kind)


@pytest.mark.parametrize("name", _names("values"))
def test_values_fixture_loads(name: str) -> None:
    if MANIFEST[name]["format"] not in ngser.backends.available():
        pytest.skip(f"{MANIFEST[name]['format']} backend not available")
    loaded = ngser.load(FIXTURES / name, registry=REGISTRY)
    expected = fixture_values()
    assert loaded.keys() == expected.keys()
    for key in expected:
        assert same(expected[key], loaded[key]), (name, key, loaded[key])


@pytest.mark.parametrize("name", _names("objects"))
def test_objects_fixture_loads(name: str) -> None:
    if MANIFEST[name]["format"] not in ngser.backends.available():
        pytest.skip(f"{MANIFEST[name]['format']} backend not available")
    loaded = ngser.load(FIXTURES / name, registry=REGISTRY)
    assert same(fixture_objects(), loaded)
    tree = loaded["tree"]
    assert tree.children[0].parent is tree and tree.children[0].children[0].parent is tree.children[0]
    assert loaded["field"].values is loaded["same_array"] and loaded["same_field"][0] is loaded["field"]


def test_the_newest_format_has_fixtures() -> None:
    assert any(info.get("format_version") == FORMAT_VERSION for info in MANIFEST.values())


@pytest.mark.parametrize("name", _names("tables"))
def test_tables_fixture_loads(name: str) -> None:
    if MANIFEST[name]["format"] not in ngser.backends.available():
        pytest.skip(f"{MANIFEST[name]['format']} backend not available")
    assert ngser.read_graph(FIXTURES / name).tables  # the rows are stored as node tables
    loaded = ngser.load(FIXTURES / name, registry=REGISTRY)
    assert same(fixture_tables(), loaded)  # key order of every __dict__ included
    tree = loaded["tree"]
    assert all(leaf.parent is tree for leaf in tree.children) and loaded["first"] is loaded["samples"][0]


@pytest.mark.parametrize("name", _names("objects") + _names("values") + _names("tables"))
def test_fixture_graph_and_conversion(name: str, tmp_path: Path) -> None:
    """The graph reads without building objects and converts to every available format."""
    info = MANIFEST[name]
    if info["format"] not in ngser.backends.available():
        pytest.skip(f"{info['format']} backend not available")
    graph = ngser.read_graph(FIXTURES / name)
    assert graph.writers == info["writers"]
    for fmt in ngser.backends.available():
        target = tmp_path / f"converted{EXTENSION[fmt]}"
        ngser.convert(FIXTURES / name, target)
        expected = MAKERS[info["kind"]]()
        assert same(expected, ngser.load(target, registry=REGISTRY))


@pytest.mark.parametrize("name", _names("ngsolve"))
def test_ngsolve_fixture_loads(name: str) -> None:
    """Loaded NGSolve objects reproduce the integrals and point values computed before saving."""
    ngsolve = pytest.importorskip("ngsolve")
    if MANIFEST[name]["format"] not in ngser.backends.available():
        pytest.skip(f"{MANIFEST[name]['format']} backend not available")
    from ngser.serializers.ngsolve import GeometryWarning

    # ngser 0.1.0 stored CoefficientFunction nodes as NGSolve's archive bytes: trusted-only.
    with pytest.raises(ngser.UnsafeLoadError, match="ngsolve.CoefficientFunction"):
        ngser.load(FIXTURES / name, registry=REGISTRY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = ngser.load(FIXTURES / name, registry=REGISTRY, trusted=True)
    mesh, fes, gfu, cf = loaded["mesh"], loaded["space"], loaded["u"], loaded["cf"]
    numbers = MANIFEST[name]["numbers"]
    assert gfu.space.mesh is mesh or gfu.space is fes
    assert (mesh.nv, fes.ndof) == (numbers["nv"], numbers["ndof"])
    if any(issubclass(w.category, GeometryWarning) for w in caught):
        # Written by NGSolve 6.2.2608: an older NGSolve cannot read its OCC geometry, so the
        # curved mesh loads straight (with a warning) and the integrals differ. The point value
        # lies in an element away from the curved boundary.
        assert "netgen.OCCGeometry" in str(caught[0].message)
        assert gfu(mesh(0.1, 0.9)) == pytest.approx(numbers["u_at_point"], rel=1e-12)
        return
    assert ngsolve.Integrate(1, mesh) == pytest.approx(numbers["area"], rel=1e-12)
    assert ngsolve.Integrate(gfu, mesh) == pytest.approx(numbers["integral_u"], rel=1e-12)
    assert ngsolve.Integrate(cf, mesh) == pytest.approx(numbers["integral_cf"], rel=1e-12)
    assert gfu(mesh(0.1, 0.9)) == pytest.approx(numbers["u_at_point"], rel=1e-12)


def _load_recording(name: str, trusted: bool) -> tuple[dict[str, Any], Any, list[warnings.WarningMessage]]:
    """The manifest entry of fixture ``name``, what it loads as, and the warnings of loading it."""
    info = MANIFEST[name]
    if info["format"] not in ngser.backends.available():
        pytest.skip(f"{info['format']} backend not available")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = ngser.load(FIXTURES / name, registry=REGISTRY, trusted=trusted)
    return info, loaded, caught


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
@pytest.mark.parametrize("name", _names("ngsolve-version"))
def test_ngsolve_version_fixture_loads(name: str, trusted: bool) -> None:
    """A file written under any supported NGSolve loads under the running one with the same
    meshes, spaces and GridFunctions: sizes, free dofs, integrals and point values. Untrusted,
    the geometries are left out with a warning; trusted, they load (an OCC geometry of a newer
    NGSolve from its BREP text)."""
    ngsolve = pytest.importorskip("ngsolve")
    from ngser.serializers.ngsolve import GeometryWarning

    info, loaded, caught = _load_recording(name, trusted)
    messages = [str(w.message) for w in caught]
    if trusted and info["ngsolve"] == ngsolve.__version__:
        assert not caught, messages
    # Untrusted, the geometries are not loaded; trusted, an OCC geometry of a newer NGSolve in a
    # file written before ngser stored BREP text cannot be rebuilt (these fixtures predate it).
    reason = "could not be rebuilt" if trusted else "the file is not trusted"
    for w in caught:
        assert issubclass(w.category, GeometryWarning) and reason in str(w.message), str(w.message)
    assert loaded["h1"].mesh is loaded["mesh2d"] and loaded["u"].space is loaded["h1"]
    assert loaded["v"].space is loaded["vectorh1"] and loaded["c"].space.is_complex
    got, expected = _ngsolve_versions().measure(loaded), info["numbers"]
    assert set(got) == set(expected)
    wrong = {
        k: (got[k], expected[k]) for k in expected if not math.isclose(got[k], expected[k], rel_tol=REL, abs_tol=ABS)
    }
    assert not wrong, f"{name} (NGSolve {info['ngsolve']}) under NGSolve {ngsolve.__version__}: {wrong}"


@pytest.mark.parametrize("kind", ["ngsolve-version", "ngsolve-structured"])
def test_ngsolve_version_fixtures_of_two_versions(fmt: str, kind: str) -> None:
    """Cross-version fixtures of the oldest and the newest supported NGSolve, in every format."""
    versions = {info["ngsolve"] for name, info in MANIFEST.items() if info["kind"] == kind}
    assert len(versions) >= 2, versions
    prefix = "ngsolve" if kind == "ngsolve-version" else kind
    for version in versions:
        name = f"{prefix}-{version}.format{NGSOLVE_FORMAT}{EXTENSION[fmt]}"
        assert name in MANIFEST, f"no fixture {name}: run tests/fixtures/make_fixtures.py under NGSolve {version}"


#: Structured fixtures: curvature restored from the file agrees with netgen's own to this precision.
STRUCTURED_REL, STRUCTURED_ABS = 1e-10, 1e-12


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "trusted"])
@pytest.mark.parametrize("name", _names("ngsolve-structured"))
def test_ngsolve_structured_fixture_loads(name: str, trusted: bool) -> None:
    """Curved meshes, expression trees and a Periodic space written under any supported NGSolve
    load under the running one, without trust, with the same integrals and point values. Trusted,
    the geometry loads too where this NGSolve reads it (and the meshes are curved from it)."""
    ngsolve = pytest.importorskip("ngsolve")
    from ngser.serializers.ngsolve import GeometryWarning

    info, loaded, caught = _load_recording(name, trusted)
    for w in caught:  # only about the geometry: not trusted, or of an NGSolve this one cannot read
        assert issubclass(w.category, GeometryWarning) and "Geometry" in str(w.message), str(w.message)
    if trusted and info["ngsolve"] == ngsolve.__version__:
        assert not caught, [str(w.message) for w in caught]
    assert loaded["u"].space.mesh is loaded["mesh"] and loaded["p"].space is loaded["periodic"]
    got, expected = _ngsolve_versions("ngsolve_structured").measure(loaded), info["numbers"]
    assert set(got) == set(expected)
    wrong = {
        k: (got[k], expected[k])
        for k in expected
        if not math.isclose(got[k], expected[k], rel_tol=STRUCTURED_REL, abs_tol=STRUCTURED_ABS)
    }
    assert not wrong, f"{name} (NGSolve {info['ngsolve']}) under NGSolve {ngsolve.__version__}: {wrong}"


def test_checkpoint_fixture_loads_appends_and_opens_in_vtk(tmp_path: Path) -> None:
    """The committed checkpoint (three steps of an order-2 GridFunction with a VTK view) loads
    under every supported NGSolve with its writer's numbers, VTK's reader lists its steps, and a
    writer of this version appends to it and continues the view."""
    ngsolve = pytest.importorskip("ngsolve")
    pytest.importorskip("vtk")
    name = "checkpoint.format1.h5"
    info = MANIFEST[name]
    path = tmp_path / name
    path.write_bytes((FIXTURES / name).read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the geometry stays out of an untrusted load
        with ngser.Checkpoint(path, mode="r") as ck:
            assert len(ck) == 3 and ck.times == info["times"]
            steps = [ck.load(i) for i in range(3)]
        for n, step in enumerate(steps):
            gfu, mesh = step["u"], step["u"].space.mesh
            assert step["n"] == n and step["label"] == f"step {n}" and mesh is steps[0]["u"].space.mesh
            for key, got in (
                (f"integral_u_{n}", ngsolve.Integrate(gfu, mesh)),
                (f"u_at_point_{n}", gfu(mesh(0.3, 0.6))),
            ):
                assert math.isclose(got, info["numbers"][key], rel_tol=REL, abs_tol=ABS), key

        from vtk_reading import reader_of

        assert reader_of(path).GetNumberOfSteps() == 3
        with ngser.Checkpoint(path, vtk=True) as ck:
            gfu = ck.load(-1)["u"]
            gfu.Set(4 * ngsolve.x * ngsolve.x + ngsolve.y)
            ck.append({"u": gfu, "n": 3, "label": "step 3"}, time=0.75)
        assert reader_of(path).GetNumberOfSteps() == 4
        with ngser.Checkpoint(path, mode="r") as ck:
            assert ck.times == [*info["times"], 0.75] and ck.load(3)["n"] == 3
