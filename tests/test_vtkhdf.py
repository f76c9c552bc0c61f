"""ngser.vtk: NGSolve meshes and fields written as VTKHDF, read back with VTK's own reader (vtkHDFReader)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

ngsolve = pytest.importorskip("ngsolve")
vtk = pytest.importorskip("vtk")

import netgen.meshing as nm  # noqa: E402
from netgen.occ import Circle, OCCGeometry, Sphere, unit_square  # noqa: E402
from ngsolve import CF, H1, L2, VOL, GridFunction, Mesh, VectorH1, x, y, z  # noqa: E402
from ngsolve.meshes import MakeStructured2DMesh, MakeStructured3DMesh  # noqa: E402
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

import ngser.vtk as nv  # noqa: E402
from ngser.vtk import _cells  # noqa: E402
from vtk_reading import read, times_of  # noqa: E402

TOL = 1e-12
VTK_CELLS = {
    "segment": vtk.vtkLagrangeCurve,
    "triangle": vtk.vtkLagrangeTriangle,
    "quadrilateral": vtk.vtkLagrangeQuadrilateral,
    "tetrahedron": vtk.vtkLagrangeTetra,
    "hexahedron": vtk.vtkLagrangeHexahedron,
    "wedge": vtk.vtkLagrangeWedge,
}
LINEAR_CELLS = {
    "segment": vtk.vtkLine,
    "triangle": vtk.vtkTriangle,
    "quadrilateral": vtk.vtkQuad,
    "tetrahedron": vtk.vtkTetra,
    "hexahedron": vtk.vtkHexahedron,
    "wedge": vtk.vtkWedge,
}


# --- meshes ------------------------------------------------------------------------------------


def square(h: float = 0.25) -> Any:
    return Mesh(unit_square.GenerateMesh(maxh=h))


def cube(h: float = 0.4) -> Any:
    from netgen.occ import Box, Pnt

    return Mesh(OCCGeometry(Box(Pnt(0, 0, 0), Pnt(1, 1, 1))).GenerateMesh(maxh=h))


def disk(order: int) -> Any:
    geo = OCCGeometry(Circle((0, 0), 1).Face(), dim=2)
    mesh = Mesh(geo.GenerateMesh(maxh=0.5))
    mesh.Curve(order)
    return mesh


def ball(order: int) -> Any:
    mesh = Mesh(OCCGeometry(Sphere((0, 0, 0), 1)).GenerateMesh(maxh=0.6))
    mesh.Curve(order)
    return mesh


def mixed_2d() -> Any:
    """Two quadrilaterals and three triangles."""
    ngm = nm.Mesh(dim=2)
    coords = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (3, 0.5), (0.5, 1.8)]
    p = [ngm.Add(nm.MeshPoint(nm.Pnt(a, b, 0))) for a, b in coords]
    ngm.Add(nm.FaceDescriptor(surfnr=1, domin=1, bc=1))
    for nodes in ([0, 1, 4, 3], [1, 2, 5, 4], [2, 6, 5], [3, 4, 7]):
        ngm.Add(nm.Element2D(1, [p[i] for i in nodes]))
    return Mesh(ngm)


def mixed_3d() -> Any:
    """A hexahedron, two prisms beside it, a pyramid on it and a tetrahedron beside the pyramid."""
    ngm = nm.Mesh(dim=3)
    coords = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]
    coords += [(2, 0, 0), (2, 0, 1), (2, 1, 0), (2, 1, 1), (0.5, 0.5, 1.6), (0.5, -0.6, 1.5)]
    p = [ngm.Add(nm.MeshPoint(nm.Pnt(*c))) for c in coords]
    ngm.Add(nm.FaceDescriptor(surfnr=1, domin=1, bc=1))
    cells = ([0, 1, 2, 3, 4, 5, 6, 7], [1, 8, 2, 5, 9, 6], [8, 10, 2, 9, 11, 6], [4, 5, 6, 7, 12], [4, 5, 12, 13])
    for nodes in cells:
        ngm.Add(nm.Element3D(1, [p[i] for i in nodes]))
    return Mesh(ngm)


# --- reading with VTK --------------------------------------------------------------------------


def array(grid: Any, name: str) -> np.ndarray:
    data = grid.GetPointData().GetArray(name)
    assert data is not None, f"no point array {name}"
    return vtk_to_numpy(data)


def points(grid: Any) -> np.ndarray:
    return vtk_to_numpy(grid.GetPoints().GetData())


def at(mesh: Any, cf: Any, pts: np.ndarray) -> np.ndarray:
    """``cf`` at physical points, found by NGSolve's point search (independent of the writer)."""
    located = mesh(*(pts[:, i] for i in range(mesh.dim)))
    assert np.all(located["nr"] >= 0), "a point is outside the mesh"
    return np.asarray(cf(located)).reshape(len(pts), -1)


def write(tmp_path: Path, mesh: Any, fields: dict[str, Any], **options: Any) -> tuple[Any, Path]:
    layout = nv.sample(mesh, fields, **options)
    path = tmp_path / "out.vtkhdf"
    with h5py.File(path, "w") as f:
        nv.write(f, layout, fields)
    return layout, path


VERTICES = {3: 2, 68: 2, 5: 3, 69: 3, 9: 4, 70: 4, 10: 4, 71: 4, 12: 8, 72: 8, 13: 6, 73: 6, 14: 5}


def random_params(cell: Any, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random points inside a VTK cell's parametric domain (convex combinations of its vertices)."""
    pc = cell.GetParametricCoords()
    corners = VERTICES[cell.GetCellType()]
    vertices = np.array([pc[i] for i in range(3 * corners)]).reshape(corners, 3)
    return np.asarray(rng.dirichlet(np.ones(corners), size=count) @ vertices)


def interpolated(grid: Any, name: str, per_cell: int = 3, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Points inside every cell and the point array ``name`` there, interpolated by VTK's cell functions."""
    rng = np.random.default_rng(seed)
    values = array(grid, name)
    xs, vs = [], []
    for c in range(grid.GetNumberOfCells()):
        cell = grid.GetCell(c)
        ids = np.array([cell.GetPointId(i) for i in range(cell.GetNumberOfPoints())])
        weights = [0.0] * len(ids)
        for pcoords in random_params(cell, per_cell, rng):
            point = [0.0, 0.0, 0.0]
            cell.EvaluateLocation(vtk.reference(0), list(pcoords), point, weights)
            xs.append(point)
            vs.append(np.asarray(weights) @ values[ids])
    return np.array(xs), np.array(vs)


# --- the node tables ---------------------------------------------------------------------------


def vtk_parametric(cls: Callable[[], Any], n: int) -> np.ndarray:
    cell = cls()
    cell.GetPointIds().SetNumberOfIds(n)
    cell.GetPoints().SetNumberOfPoints(n)
    for i in range(n):
        cell.GetPointIds().SetId(i, i)
    if hasattr(cell, "SetUniformOrderFromNumPoints"):
        cell.SetUniformOrderFromNumPoints(n)
    cell.Initialize()
    pc = cell.GetParametricCoords()
    return np.array([pc[i] for i in range(3 * n)]).reshape(n, 3)


@pytest.mark.parametrize("kind", sorted(VTK_CELLS))
@pytest.mark.parametrize("order", range(1, 8))
def test_node_tables_are_vtks(kind: str, order: int) -> None:
    table = np.array(_cells.lattice(kind, order), dtype=float)
    cls = LINEAR_CELLS[kind] if order == 1 else VTK_CELLS[kind]
    expected = vtk_parametric(cls, len(table))[:, : table.shape[1]] * order
    np.testing.assert_allclose(table, expected, atol=1e-12)
    flipped = table[list(_cells.flip_permutation(kind, order))]
    if kind != "segment":
        np.testing.assert_array_equal(flipped, table[:, [1, 0, *range(2, table.shape[1])]])


def test_importing_ngser_vtk_does_not_import_ngsolve() -> None:
    code = "import sys, ngser, ngser.vtk; sys.exit('ngsolve' in sys.modules or 'vtk' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- static files ------------------------------------------------------------------------------


def check_nodes(grid: Any, mesh: Any, name: str, cf: Any, tol: float = TOL) -> None:
    pts = points(grid)
    expected = at(mesh, cf, pts)
    got = array(grid, name).reshape(len(pts), -1)[:, : expected.shape[1]]
    assert np.abs(got - expected).max() <= tol * max(1.0, np.abs(expected).max())


def check_cells(grid: Any, layout: Any, mesh: Any) -> None:
    """Counts and types as written; every cell's vertices are its element's, positively oriented."""
    assert grid.GetNumberOfPoints() == layout.number_of_points
    assert grid.GetNumberOfCells() == mesh.GetNE(VOL) == layout.number_of_cells
    types = np.array([grid.GetCellType(c) for c in range(grid.GetNumberOfCells())])
    np.testing.assert_array_equal(types, layout.types)
    pts = points(grid)
    for c, el in enumerate(mesh.Elements(VOL)):
        cell = grid.GetCell(c)
        corners = np.array([mesh[v].point for v in el.vertices])
        ids = [cell.GetPointId(i) for i in range(len(corners))]
        vertices = pts[ids][:, : mesh.dim]
        # (NGSolve maps a pyramid's apex to within 1e-10: its map is singular there)
        order = np.lexsort(vertices.T), np.lexsort(corners.T)
        np.testing.assert_allclose(vertices[order[0]], corners[order[1]], atol=1e-12 if len(corners) != 5 else 1e-9)
        kind = {3: "triangle", 4: "quadrilateral"} if mesh.dim == 2 else {}
        spans = _cells.ORIENTATION_VERTICES.get(kind.get(len(corners), ""), None)
        if mesh.dim == 3:
            spans = {4: (0, 1, 2, 3), 8: (0, 1, 3, 4), 6: (0, 1, 2, 3), 5: (0, 1, 3, 4)}[len(corners)]
        if spans is not None:
            assert np.linalg.det(vertices[list(spans[1:])] - vertices[spans[0]]) > 0


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("dim", [2, 3])
def test_h1_fields_at_the_nodes_and_inside(tmp_path: Path, dim: int, order: int) -> None:
    mesh = square() if dim == 2 else cube()
    u = GridFunction(H1(mesh, order=order))
    u.Set(x * x * y - 2 * y + (z * x if dim == 3 else 0) + x**3)
    layout, path = write(tmp_path, mesh, {"u": u})
    assert layout.order == order
    reader, grid = read(path)
    assert reader.GetNumberOfSteps() == 1
    check_cells(grid, layout, mesh)
    expected_type = {2: (5, 69), 3: (10, 71)}[dim][order > 1]
    assert set(layout.types) == {expected_type}
    assert array(grid, "u").shape == (layout.number_of_points,)
    check_nodes(grid, mesh, "u", u)
    # VTK's interpolation inside the cells is the GridFunction (a polynomial of the cells' order).
    xs, vs = interpolated(grid, "u")
    np.testing.assert_allclose(vs, at(mesh, u, xs)[:, 0], atol=1e-11)


@pytest.mark.parametrize("dim", [2, 3])
def test_vector_complex_matrix_and_l2_fields(tmp_path: Path, dim: int) -> None:
    mesh = square(0.4) if dim == 2 else cube(0.6)
    v = GridFunction(VectorH1(mesh, order=2))
    v.Set(CF((x * y, y * y, x)[:dim]))
    c = GridFunction(H1(mesh, order=3, complex=True))
    c.Set(x * x + 1j * (y - x * y * y))
    d = GridFunction(L2(mesh, order=2))
    d.Set(x * x - y)
    matrix = CF((x, y, 2 * x, 1, 0, 3, x * y, 1, 1)[: dim * dim], dims=(dim, dim))
    fields = {"v": v, "c": c, "d": d, "m": matrix}
    layout, path = write(tmp_path, mesh, fields)
    assert layout.order == 3
    _, grid = read(path)
    names = {grid.GetPointData().GetArrayName(i) for i in range(grid.GetPointData().GetNumberOfArrays())}
    assert names == {"v", "c_real", "c_imag", "d", "m"}
    assert array(grid, "v").shape == (layout.number_of_points, 3)
    if dim == 2:
        assert np.all(array(grid, "v")[:, 2] == 0)
    check_nodes(grid, mesh, "v", v)
    check_nodes(grid, mesh, "c_real", c.real)
    check_nodes(grid, mesh, "c_imag", c.imag)
    m = array(grid, "m").reshape(-1, 3, 3)
    expected = at(mesh, matrix, points(grid)).reshape(-1, dim, dim)
    np.testing.assert_allclose(m[:, :dim, :dim], expected, atol=TOL)
    assert np.all(m[:, dim:, :] == 0) and np.all(m[:, :, dim:] == 0)
    # The discontinuous field inside the cells (its values at the nodes belong to the node's cell).
    xs, vs = interpolated(grid, "d")
    np.testing.assert_allclose(vs, at(mesh, d, xs)[:, 0], atol=1e-11)
    np.testing.assert_allclose(nv.evaluate(layout, d)[:, 0], array(grid, "d"), atol=0)


def read_layout(tmp_path: Path, mesh: Any, order: int) -> Any:
    path = tmp_path / "layout.vtkhdf"
    with h5py.File(path, "w") as f:
        nv.write(f, nv.sample(mesh, order=order), {})
    return read(path)[1]


def boundary_edge_gaps(grid: Any, mesh: Any, order: int) -> np.ndarray:
    """``1 - |p|`` at the nodes inside the cells' edges on the mesh's boundary (the unit circle/sphere)."""
    pts = points(grid)
    radius = np.linalg.norm(pts, axis=1)
    key = lambda i: tuple(np.round(pts[i], 9))  # noqa: E731
    boundary = set()
    for el in mesh.Elements(ngsolve.BND):
        corners = [tuple(np.round(np.array([*mesh[v].point, 0, 0])[:3], 9)) for v in el.vertices]
        boundary |= {frozenset((p, q)) for p in corners for q in corners if p != q}
    edges = {3: ((0, 1), (1, 2), (2, 0)), 4: ((0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3))}
    gaps = []
    for c in range(grid.GetNumberOfCells()):
        cell = grid.GetCell(c)
        ids = [cell.GetPointId(i) for i in range(cell.GetNumberOfPoints())]
        corners = 3 if grid.GetCellType(c) in (5, 69) else 4
        for e, (a, b) in enumerate(edges[corners]):
            if frozenset((key(ids[a]), key(ids[b]))) in boundary:
                inside = ids[corners + e * (order - 1) : corners + (e + 1) * (order - 1)]
                gaps.extend(1 - radius[inside])
    assert gaps
    return np.abs(np.array(gaps))


@pytest.mark.parametrize(("make", "order"), [(disk, 2), (disk, 3), (ball, 2)])
def test_curved_meshes_use_the_curved_nodes(tmp_path: Path, make: Callable[[int], Any], order: int) -> None:
    mesh = make(order)
    u = GridFunction(H1(mesh, order=order))
    u.Set(x * x - y * x + z)
    layout, path = write(tmp_path, mesh, {"u": u})
    assert layout.order == order
    _, grid = read(path)
    check_cells(grid, layout, mesh)
    assert np.linalg.norm(points(grid), axis=1).max() <= 1 + 1e-3
    # The nodes inside boundary edges lie on the circle/sphere (to the curving's error), not on the chords.
    straight = make(1)
    curved = boundary_edge_gaps(grid, mesh, order)
    flat = boundary_edge_gaps(read_layout(tmp_path, straight, order), straight, order)
    assert np.quantile(curved, 0.9) <= 1e-3 < np.quantile(flat, 0.1)
    check_nodes(grid, mesh, "u", u, tol=1e-9)
    # VTK's curved cells are NGSolve's: the field VTK interpolates is the GridFunction at the point VTK maps.
    xs, vs = interpolated(grid, "u", per_cell=2)
    np.testing.assert_allclose(vs, at(mesh, u, xs)[:, 0], atol=1e-8)


def test_curve_order_sets_the_cell_order(tmp_path: Path) -> None:
    mesh = disk(3)
    u = GridFunction(H1(mesh, order=1))
    u.Set(x)
    assert nv.sample(mesh, {"u": u}).order == 3
    assert nv.sample(mesh, {"u": u}, order=1).order == 1
    with pytest.raises(ValueError, match="order"):
        nv.sample(mesh, order=0)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_mixed_elements(tmp_path: Path, order: int) -> None:
    for mesh, kinds in (
        (mixed_2d(), {"triangle", "quadrilateral"}),
        (mixed_3d(), {"hexahedron", "wedge", "pyramid", "tetrahedron"}),
    ):
        u = GridFunction(L2(mesh, order=order))
        u.Set(x * x + y - x * z)
        layout, path = write(tmp_path, mesh, {"u": u})
        _, grid = read(path)
        check_cells(grid, layout, mesh)
        assert set(layout.types) == {_cells.vtk_type(k, order) for k in kinds}
        np.testing.assert_allclose(array(grid, "u"), nv.evaluate(layout, u)[:, 0], atol=0)
        # Inside the cells other than pyramids (linear in VTK), VTK interpolates the field exactly.
        pyramid = _cells.vtk_type("pyramid", order)
        keep = vtk.vtkIdList()
        for c in range(grid.GetNumberOfCells()):
            if grid.GetCellType(c) != pyramid:
                keep.InsertNextId(c)
        selection = vtk.vtkExtractCells()
        selection.SetInputData(grid)
        selection.SetCellList(keep)
        selection.Update()
        xs, vs = interpolated(selection.GetOutput(), "u")
        np.testing.assert_allclose(vs, at(mesh, u, xs)[:, 0], atol=1e-11)


@pytest.mark.parametrize("prism", [False, True])
def test_structured_hexahedra_and_prisms(tmp_path: Path, prism: bool) -> None:
    mesh = MakeStructured3DMesh(hexes=not prism, prism=prism, nx=3, ny=2, nz=2)
    u = GridFunction(H1(mesh, order=2))
    u.Set(x * y + z * z)
    layout, path = write(tmp_path, mesh, {"u": u})
    _, grid = read(path)
    check_cells(grid, layout, mesh)
    assert set(layout.types) == {73 if prism else 72}
    check_nodes(grid, mesh, "u", u)
    xs, vs = interpolated(grid, "u")
    np.testing.assert_allclose(vs, at(mesh, u, xs)[:, 0], atol=1e-11)


def test_quadrilaterals_and_deformed_meshes(tmp_path: Path) -> None:
    mesh = MakeStructured2DMesh(quads=True, nx=3, ny=3)
    deformation = GridFunction(VectorH1(mesh, order=2))
    deformation.Set(CF((0.1 * y * y, 0.05 * x)))
    undeformed = nv.sample(mesh, order=2).points
    mesh.SetDeformation(deformation)
    u = GridFunction(H1(mesh, order=2))
    u.Set(x)
    layout, path = write(tmp_path, mesh, {"u": u})
    _, grid = read(path)
    assert set(layout.types) == {70}
    moved = undeformed[:, :2] + np.column_stack([0.1 * undeformed[:, 1] ** 2, 0.05 * undeformed[:, 0]])
    np.testing.assert_allclose(points(grid)[:, :2], moved, atol=TOL)
    mesh.UnsetDeformation()


def test_vertex_sampling_loses_what_lagrange_cells_keep(tmp_path: Path) -> None:
    """An order-2 field through VTK's own interpolation (vtkProbeFilter at random points)."""
    mesh = square(0.3)
    u = GridFunction(H1(mesh, order=2))
    u.Set(ngsolve.sin(3 * x) * ngsolve.cos(2 * y))
    rng = np.random.default_rng(3)
    probe_points = np.column_stack([rng.uniform(0.01, 0.99, (4000, 2)), np.zeros(4000)])
    exact = at(mesh, u, probe_points)[:, 0]
    norms = {}
    for order in (1, 2):
        layout = nv.sample(mesh, {"u": u}, order=order)
        path = tmp_path / f"order{order}.vtkhdf"
        with h5py.File(path, "w") as f:
            nv.write(f, layout, {"u": u})
        _, grid = read(path)
        source = vtk.vtkPolyData()
        pts = vtk.vtkPoints()
        for p in probe_points:
            pts.InsertNextPoint(*p)
        source.SetPoints(pts)
        probe = vtk.vtkProbeFilter()
        probe.SetInputData(source)
        probe.SetSourceData(grid)
        probe.Update()
        out = probe.GetOutput()
        assert np.all(vtk_to_numpy(out.GetPointData().GetArray("vtkValidPointMask")) == 1)
        values = vtk_to_numpy(out.GetPointData().GetArray("u"))
        norms[order] = np.sqrt(np.mean(values**2))
        norms[-order] = np.sqrt(np.mean((values - exact) ** 2))
    reference = np.sqrt(np.mean(exact**2))
    # VTK finds the parametric point of a probe only to about 1e-6 in Lagrange cells (the cell functions
    # themselves are exact: see test_h1_fields_at_the_nodes_and_inside); vertex values alone lose 7%.
    assert abs(norms[2] - reference) <= 1e-6 * reference
    assert norms[-2] <= 1e-4 * reference
    assert abs(norms[1] - reference) >= 0.03 * reference
    assert norms[-1] >= 0.03 * reference


# --- time series -------------------------------------------------------------------------------


def test_a_time_series_stores_the_mesh_once(tmp_path: Path) -> None:
    mesh = cube(0.6)
    u = GridFunction(H1(mesh, order=2))
    v = GridFunction(VectorH1(mesh, order=2))
    layout = nv.sample(mesh, {"u": u, "v": v})
    path = tmp_path / "series.vtkhdf"
    steps = [0.0, 0.25, 0.5, 1.0, 2.0]
    for n, t in enumerate(steps):
        u.Set((n + 1) * x * y)
        v.Set(CF((x, n * y, z * z)))
        with h5py.File(path, "a") as f:  # reopened for every step: appending to an existing file
            assert nv.append_step(f, layout, {"u": u, "v": v}, time=t) == n + 1
    with h5py.File(path, "r") as f:
        root = f["VTKHDF"]
        assert root["Points"].shape == (layout.number_of_points, 3)
        assert root["PointData/u"].shape == (len(steps) * layout.number_of_points,)
        assert root["PointData/u"].maxshape == (None,)
        assert root["PointData/u"].chunks == (layout.number_of_points,)  # a step's block a chunk
        assert root["PointData/v"].chunks == (layout.number_of_points, 3)
        np.testing.assert_array_equal(nv.times(f), steps)
    reader, _ = read(path)
    assert reader.GetNumberOfSteps() == len(steps)
    assert times_of(reader) == tuple(steps)
    for n in range(len(steps)):
        _, grid = read(path, step=n)
        assert grid.GetNumberOfCells() == layout.number_of_cells
        pts = points(grid)
        np.testing.assert_allclose(array(grid, "u"), (n + 1) * pts[:, 0] * pts[:, 1], atol=TOL)
        np.testing.assert_allclose(
            array(grid, "v"), np.column_stack([pts[:, 0], n * pts[:, 1], pts[:, 2] ** 2]), atol=TOL
        )


def test_keep_reuses_the_rows_of_dropped_steps(tmp_path: Path) -> None:
    mesh = square(0.4)
    u = GridFunction(H1(mesh, order=2))
    layout = nv.sample(mesh, {"u": u})
    path = tmp_path / "rolling.vtkhdf"
    with h5py.File(path, "w") as f:
        for n in range(7):
            u.Set(n + x)
            assert nv.append_step(f, layout, {"u": u}, time=float(n), keep=3) == min(n + 1, 3)
        assert f["VTKHDF/PointData/u"].shape == (3 * layout.number_of_points,)
        np.testing.assert_array_equal(nv.times(f), [4.0, 5.0, 6.0])
    reader, _ = read(path)
    assert times_of(reader) == (4.0, 5.0, 6.0)
    for step, n in enumerate((4, 5, 6)):
        _, grid = read(path, step=step)
        np.testing.assert_allclose(array(grid, "u"), n + points(grid)[:, 0], atol=TOL)
    with h5py.File(path, "a") as f:
        nv.truncate_steps(f, 2)
        np.testing.assert_array_equal(nv.times(f), [4.0, 5.0])
        u.Set(10 + x)
        assert nv.append_step(f, layout, {"u": u}, time=7.0) == 3
    _, grid = read(path, step=2)
    np.testing.assert_allclose(array(grid, "u"), 10 + points(grid)[:, 0], atol=TOL)
    _, grid = read(path, step=1)
    np.testing.assert_allclose(array(grid, "u"), 5 + points(grid)[:, 0], atol=TOL)


def test_series_created_up_front_and_a_single_step(tmp_path: Path) -> None:
    mesh = square(0.4)
    c = GridFunction(H1(mesh, order=2, complex=True))
    c.Set(x + 1j * y)
    layout = nv.sample(mesh, {"c": c})
    shapes = nv.array_shapes(layout, {"c": c})
    assert shapes == {"c_real": (), "c_imag": ()}
    path = tmp_path / "upfront.vtkhdf"
    with h5py.File(path, "w") as f:
        nv.create_series(f, layout, shapes)
        assert f["VTKHDF/PointData/c_real"].shape == (0,)
        assert nv.times(f).size == 0
        nv.append_step(f, layout, {"c": c}, time=0.5)
    reader, grid = read(path)
    assert reader.GetNumberOfSteps() == 1  # VTK reports no time for a series of one step
    check_nodes(grid, mesh, "c_imag", c.imag)
    single = tmp_path / "single.vtkhdf"
    with h5py.File(single, "w") as f:
        nv.write(f, layout, {"c": c}, time=2.0)
        assert "Steps" in f["VTKHDF"]
        np.testing.assert_array_equal(nv.times(f), [2.0])
    reader, grid = read(single)
    assert reader.GetNumberOfSteps() == 1
    check_nodes(grid, mesh, "c_real", c.real)


def test_a_series_refuses_other_arrays_meshes_and_static_groups(tmp_path: Path) -> None:
    mesh = square(0.4)
    u = GridFunction(H1(mesh, order=2))
    layout = nv.sample(mesh, {"u": u})
    with h5py.File(tmp_path / "a.vtkhdf", "w") as f:
        nv.append_step(f, layout, {"u": u}, time=0.0)
        with pytest.raises(ValueError, match="point arrays"):
            nv.append_step(f, layout, {"u": u, "w": u}, time=1.0)
        with pytest.raises(ValueError, match="one mesh"):
            nv.append_step(f, nv.sample(square(0.2), order=2), {}, time=1.0)
        with pytest.raises(ValueError, match="keep"):
            nv.append_step(f, layout, {"u": u}, time=1.0, keep=0)
        with pytest.raises(ValueError, match="exists"):
            nv.write(f, layout, {"u": u})
        assert int(f["VTKHDF/Steps"].attrs["NSteps"]) == 1
        nv.write(f, layout, {"u": u}, name="Static")
        with pytest.raises(ValueError, match="without steps"):
            nv.append_step(f, layout, {"u": u}, time=1.0, name="Static")
    other = GridFunction(H1(square(0.3), order=1))
    with pytest.raises(ValueError, match="another mesh"):
        nv.evaluate(layout, other)


def test_attributes_are_what_vtk_expects(tmp_path: Path) -> None:
    mesh = square(0.5)
    _, path = write(tmp_path, mesh, {})
    with h5py.File(path, "r") as f:
        root = f["VTKHDF"]
        assert list(root.attrs["Version"]) == [2, 0] and root.attrs["Version"].dtype == np.int64
        assert root.attrs["Type"] == b"UnstructuredGrid"
        assert root["Offsets"][-1] == root["Connectivity"].shape[0] == root["NumberOfConnectivityIds"][0]
    _, grid = read(path)
    assert grid.GetNumberOfCells() == mesh.ne
