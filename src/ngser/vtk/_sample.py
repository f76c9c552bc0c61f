"""Sampling an NGSolve mesh and its fields on the nodes of VTK cells (NGSolve is imported lazily).

Every volume element becomes one VTK cell with nodes of its own (nodes are not shared between
cells, so discontinuous fields are sampled exactly). The nodes are the images of the reference
points of :mod:`._cells` under the element's map, curved or deformed as NGSolve maps it: all
elements of a kind are mapped at once by ``mesh.MapToAllElements`` and every coefficient function
is evaluated on all of them in one call, with no Python loop over the elements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import _cells

__all__ = ["Layout", "sample", "field_order", "evaluate", "point_data"]

# NGSolve's element type names (ngsolve.ET) of each VTK cell kind.
_ET_NAMES = {
    "segment": "SEGM",
    "triangle": "TRIG",
    "quadrilateral": "QUAD",
    "tetrahedron": "TET",
    "hexahedron": "HEX",
    "wedge": "PRISM",
    "pyramid": "PYRAMID",
}
_KINDS_OF_DIMENSION = {d: [k for k, spec in _cells.KINDS.items() if spec[0] == d] for d in (1, 2, 3)}


class Layout:
    """The VTK cells of a mesh: node positions, connectivity, offsets, cell types.

    Made by :func:`sample`; the same layout serves every later step of the mesh's fields.

    :ivar mesh: the ``ngsolve.Mesh`` it samples.
    :ivar order: the cells' order (1: linear cells).
    :ivar points: ``(n, 3)`` float64, the node positions.
    :ivar connectivity: ``(n,)`` int64, the nodes of each cell in VTK's order.
    :ivar offsets: ``(cells + 1,)`` int64, where each cell's nodes start in ``connectivity``.
    :ivar types: ``(cells,)`` uint8, the VTK cell type of each cell.
    :ivar mapped: the mapped integration points (an NGSolve ``MeshPoint`` array, one per node,
        element by element), on which :func:`evaluate` evaluates fields.
    """

    def __init__(
        self,
        mesh: Any,
        order: int,
        points: np.ndarray,
        connectivity: np.ndarray,
        offsets: np.ndarray,
        types: np.ndarray,
        mapped: Any,
    ) -> None:
        self.mesh = mesh
        self.order = order
        self.points = points
        self.connectivity = connectivity
        self.offsets = offsets
        self.types = types
        self.mapped = mapped

    @property
    def number_of_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def number_of_cells(self) -> int:
        return int(self.types.shape[0])

    def __repr__(self) -> str:
        return f"<ngser.vtk.Layout: {self.number_of_cells} cells of order {self.order}, {self.number_of_points} nodes>"


def field_order(field: Any) -> int:
    """The polynomial order of a GridFunction (its space's ``globalorder``), 0 for other coefficients."""
    space = getattr(field, "space", None)
    order = getattr(space, "globalorder", None)
    return int(order) if order is not None else 0


def sample(mesh: Any, fields: Mapping[str, Any] | Iterable[Any] = (), *, order: int | None = None) -> Layout:
    """The VTK cells of ``mesh`` for fields of ``fields``' order.

    ``order`` defaults to the highest of the fields' orders (:func:`field_order`) and the mesh's
    curve order, at least 1. At order 1 the cells are linear (VTK_TRIANGLE, VTK_TETRA, ...), above
    Lagrange cells (VTK_LAGRANGE_TRIANGLE, ...); pyramids are always linear (VTK has no Lagrange
    pyramid). Usage::

        layout = ngser.vtk.sample(mesh, {"u": gfu})
        values = ngser.vtk.evaluate(layout, gfu)        # (layout.number_of_points, 1)
    """
    import ngsolve

    values = fields.values() if isinstance(fields, Mapping) else fields
    if order is None:
        order = max([1, int(mesh.GetCurveOrder()), *(field_order(f) for f in values)])
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"ngser.vtk.sample: order must be an int of at least 1, not {order!r}")
    kinds = _KINDS_OF_DIMENSION[int(mesh.dim)]
    ets = {kind: getattr(ngsolve.ET, _ET_NAMES[kind]) for kind in kinds}
    rules = {
        ets[kind]: ngsolve.IntegrationRule([tuple(p) for p in _cells.reference_points(kind, order)], [0.0] * count)
        for kind in kinds
        for count in [len(_cells.lattice(kind, order))]
    }
    mapped: Any = mesh.MapToAllElements(rules, ngsolve.VOL) if mesh.GetNE(ngsolve.VOL) else np.zeros(0)
    coords = ngsolve.CF((ngsolve.x, ngsolve.y, ngsolve.z))
    points = np.ascontiguousarray(coords(mapped), dtype=np.float64).reshape(-1, 3) if len(mapped) else np.zeros((0, 3))
    # Which kind each element is follows from its number of nodes (distinct within a dimension).
    ne = int(mesh.GetNE(ngsolve.VOL))
    counts = np.bincount(mapped["nr"], minlength=ne) if len(mapped) else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(ne + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    types = np.zeros(ne, dtype=np.uint8)
    connectivity = np.arange(len(points), dtype=np.int64)
    for kind in kinds:
        n = len(_cells.lattice(kind, order))
        (cells,) = np.nonzero(counts == n)
        if not len(cells):
            continue
        types[cells] = _cells.vtk_type(kind, order)
        _orient(kind, order, cells, offsets, points, connectivity, int(mesh.dim))
    if np.any(types == 0):
        raise ValueError("ngser.vtk.sample: an element of the mesh is of a kind VTK cells are not made for")
    return Layout(mesh, order, points, connectivity, offsets, types, mapped)


def _orient(
    kind: str,
    order: int,
    cells: np.ndarray,
    offsets: np.ndarray,
    points: np.ndarray,
    connectivity: np.ndarray,
    dim: int,
) -> None:
    """Reorder the nodes of the negatively oriented ``cells`` (by their vertices) into a mirrored cell."""
    corners = _cells.ORIENTATION_VERTICES.get(kind)
    if corners is None or len(corners) != dim + 1:
        return
    start = offsets[cells]
    base = points[start + corners[0]]
    edges = np.stack([points[start + c] - base for c in corners[1:]], axis=1)[:, :, :dim]
    flipped = cells[np.linalg.det(edges) < 0]
    if not len(flipped):
        return
    perm = np.asarray(_cells.flip_permutation(kind, order), dtype=np.int64)
    first = offsets[flipped]
    connectivity[first[:, None] + np.arange(len(perm))] = first[:, None] + perm


def evaluate(layout: Layout, field: Any) -> np.ndarray:
    """``field`` (a GridFunction or any CoefficientFunction on the layout's mesh) at every node.

    Returns an ``(number_of_points, components)`` array, complex for complex fields; row ``i`` is
    the value at ``layout.points[i]`` in the element of the node's cell.
    """
    import ngsolve

    space = getattr(field, "space", None)
    if space is not None and space.mesh is not layout.mesh:
        raise ValueError("ngser.vtk.evaluate: the GridFunction is on another mesh than the layout")
    cf = field if isinstance(field, ngsolve.CoefficientFunction) else ngsolve.CF(field)
    if not layout.number_of_points:
        return np.zeros((0, int(cf.dim)), dtype=complex if cf.is_complex else float)
    return np.asarray(cf(layout.mapped)).reshape(layout.number_of_points, -1)


def point_data(layout: Layout, fields: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The VTK point arrays of ``fields``: name to a ``(n,)`` or ``(n, components)`` float64 array.

    A scalar is one component; a vector of 2 or 3 components is 3 components (2D padded with 0);
    a 2x2 or 3x3 matrix is 9 components (row by row, 2x2 padded into 3x3); other shapes are
    flattened. A complex field gives two arrays, ``<name>_real`` and ``<name>_imag``. A value that
    is already a numpy array of ``number_of_points`` rows is taken as it is.
    """
    arrays: dict[str, np.ndarray] = {}
    for name, field in fields.items():
        if isinstance(field, np.ndarray):
            if field.shape[:1] != (layout.number_of_points,):
                raise ValueError(
                    f"ngser.vtk: point data {name!r} has {field.shape[:1]} rows, not {layout.number_of_points}"
                )
            values, dims = field, tuple(field.shape[1:])
        else:
            values, dims = evaluate(layout, field), _dims(field)
        values = _shaped(values.reshape(layout.number_of_points, -1), dims)
        if np.iscomplexobj(values):
            arrays[f"{name}_real"] = np.ascontiguousarray(values.real)
            arrays[f"{name}_imag"] = np.ascontiguousarray(values.imag)
        else:
            arrays[name] = np.ascontiguousarray(values, dtype=np.float64)
    return arrays


def _dims(field: Any) -> tuple[int, ...]:
    import ngsolve

    cf = field if isinstance(field, ngsolve.CoefficientFunction) else ngsolve.CF(field)
    return tuple(int(d) for d in cf.dims)


def _shaped(values: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    n, width = values.shape
    if width == 1:
        return values[:, 0]
    if len(dims) == 2 and dims in ((2, 2), (3, 3)):
        out = np.zeros((n, 3, 3), dtype=values.dtype)
        out[:, : dims[0], : dims[1]] = values.reshape(n, *dims)
        return out.reshape(n, 9)
    if width in (2, 3):
        out = np.zeros((n, 3), dtype=values.dtype)
        out[:, :width] = values
        return out
    return values
