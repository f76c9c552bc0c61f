"""VTK cell node tables: which reference points a cell of each kind and order has, in VTK's order.

Pure numpy (no NGSolve, no vtk). A cell of order ``k`` has its nodes on the lattice ``{0..k}^d``
of VTK's parametric cell; :func:`lattice` lists them in VTK's node order (the order of
``vtkLagrangeTriangle/Quadrilateral/Tetra/Hexahedron/Wedge`` and ``vtkLagrangeCurve``):
vertices, then the nodes inside each edge (from the edge's first vertex to its second), then
inside each face, then inside the cell. :func:`reference_points` maps them to the reference
element of NGSolve so that VTK vertex ``a`` is the NGSolve element's vertex ``a``.
``tests/test_vtkhdf.py`` checks the tables against ``GetParametricCoords()`` of vtk's cells.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

__all__ = ["CellKind", "KINDS", "lattice", "reference_points", "flip_permutation", "vtk_type"]

Point = tuple[int, ...]

# name: (dimension, linear VTK type, Lagrange VTK type or None, number of vertices)
CellKind = tuple[int, int, "int | None", int]
KINDS: dict[str, CellKind] = {
    "segment": (1, 3, 68, 2),
    "triangle": (2, 5, 69, 3),
    "quadrilateral": (2, 9, 70, 4),
    "tetrahedron": (3, 10, 71, 4),
    "hexahedron": (3, 12, 72, 8),
    "wedge": (3, 13, 73, 6),
    # VTK has no Lagrange pyramid cell class to read type 74: pyramids stay linear.
    "pyramid": (3, 14, None, 5),
}


def _along(a: Point, b: Point, k: int) -> list[Point]:
    """The lattice points strictly inside the edge from ``a`` to ``b``, from ``a`` on."""
    return [tuple(ai + (bi - ai) * t // k for ai, bi in zip(a, b)) for t in range(1, k)]


def _triangle(k: int) -> list[Point]:
    """VTK's triangle order: vertices, edges 0-1, 1-2, 2-0, then the interior, recursively."""
    if k == 0:
        return [(0, 0)]
    v = [(0, 0), (k, 0), (0, k)]
    nodes = v + _along(v[0], v[1], k) + _along(v[1], v[2], k) + _along(v[2], v[0], k)
    if k >= 3:
        nodes += [(i + 1, j + 1) for i, j in _triangle(k - 3)]
    return nodes


def _in_triangle(a: Point, b: Point, c: Point, k: int) -> list[Point]:
    """The nodes inside the face ``a, b, c`` of order ``k``, in the face's triangle order."""
    if k < 3:
        return []
    return [
        tuple(ai + ((bi - ai) * (i + 1) + (ci - ai) * (j + 1)) // k for ai, bi, ci in zip(a, b, c))
        for i, j in _triangle(k - 3)
    ]


def _tetrahedron(k: int) -> list[Point]:
    if k == 0:
        return [(0, 0, 0)]
    v: list[Point] = [(0, 0, 0), (k, 0, 0), (0, k, 0), (0, 0, k)]
    nodes = list(v)
    for a, b in ((0, 1), (1, 2), (2, 0), (0, 3), (1, 3), (2, 3)):
        nodes += _along(v[a], v[b], k)
    for a, b, c in ((0, 1, 3), (2, 3, 1), (0, 3, 2), (0, 2, 1)):
        nodes += _in_triangle(v[a], v[b], v[c], k)
    if k >= 4:
        nodes += [(i + 1, j + 1, m + 1) for i, j, m in _tetrahedron(k - 4)]
    return nodes


def _quadrilateral(k: int) -> list[Point]:
    inner = range(1, k)
    nodes: list[Point] = [(0, 0), (k, 0), (k, k), (0, k)]
    nodes += [(t, 0) for t in inner] + [(k, t) for t in inner] + [(t, k) for t in inner] + [(0, t) for t in inner]
    return nodes + [(i, j) for j in inner for i in inner]


def _hexahedron(k: int) -> list[Point]:
    inner = range(1, k)
    nodes: list[Point] = [(i, j, m) for m in (0, k) for i, j in ((0, 0), (k, 0), (k, k), (0, k))]
    for m in (0, k):
        nodes += [(t, 0, m) for t in inner] + [(k, t, m) for t in inner]
        nodes += [(t, k, m) for t in inner] + [(0, t, m) for t in inner]
    for i, j in ((0, 0), (k, 0), (k, k), (0, k)):
        nodes += [(i, j, t) for t in inner]
    for i in (0, k):
        nodes += [(i, j, m) for m in inner for j in inner]
    for j in (0, k):
        nodes += [(i, j, m) for m in inner for i in inner]
    for m in (0, k):
        nodes += [(i, j, m) for j in inner for i in inner]
    return nodes + [(i, j, m) for m in inner for j in inner for i in inner]


def _wedge(k: int) -> list[Point]:
    inner = range(1, k)
    tri = _triangle(k)
    nodes: list[Point] = [(i, j, m) for m in (0, k) for i, j in tri[:3]]
    edges = tri[3 : 3 * k]
    for m in (0, k):
        nodes += [(i, j, m) for i, j in edges]
    for i, j in tri[:3]:
        nodes += [(i, j, t) for t in inner]
    face = [(i, j) for j in inner for i in range(1, k - j)]  # in rows, unlike a triangle cell
    for m in (0, k):
        nodes += [(i, j, m) for i, j in face]
    nodes += [(t, 0, m) for m in inner for t in inner]
    nodes += [(k - t, t, m) for m in inner for t in inner]
    nodes += [(0, k - t, m) for m in inner for t in inner]
    return nodes + [(i, j, m) for m in inner for i, j in face]


def _segment(k: int) -> list[Point]:
    nodes: list[Point] = [(0,), (k,)]
    return nodes + [(t,) for t in range(1, k)]


def _pyramid(k: int) -> list[Point]:
    return [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1)]


_LATTICES: dict[str, Callable[[int], list[Point]]] = {
    "segment": _segment,
    "triangle": _triangle,
    "quadrilateral": _quadrilateral,
    "tetrahedron": _tetrahedron,
    "hexahedron": _hexahedron,
    "wedge": _wedge,
    "pyramid": _pyramid,
}


def _effective_order(kind: str, order: int) -> int:
    return 1 if KINDS[kind][2] is None else order


@functools.cache
def lattice(kind: str, order: int) -> tuple[Point, ...]:
    """The integer lattice points (VTK parametric coordinates times ``order``) in VTK's node order.

    >>> lattice("triangle", 2)
    ((0, 0), (2, 0), (0, 2), (1, 0), (1, 1), (0, 1))
    """
    if order < 1:
        raise ValueError(f"a cell's order must be at least 1, not {order}")
    return tuple(_LATTICES[kind](_effective_order(kind, order)))


def vtk_type(kind: str, order: int) -> int:
    """The VTK cell type of a cell of this kind and order: linear for order 1, Lagrange above."""
    _, linear, lagrange, _ = KINDS[kind]
    return linear if order == 1 or lagrange is None else lagrange


def reference_points(kind: str, order: int) -> np.ndarray:
    """The nodes as points of NGSolve's reference element, shape ``(n, dim)``.

    NGSolve's reference vertices are (1,0), (0,1), (0,0) for a triangle, (1,0,0), (0,1,0),
    (0,0,1), (0,0,0) for a tetrahedron, the triangle's times (0, 1) for a prism and the unit
    square/cube/pyramid otherwise; VTK's are (0,0), (1,0), (0,1) etc.
    """
    k = _effective_order(kind, order)
    p = np.array(lattice(kind, order), dtype=float) / k
    if kind == "segment":
        return 1.0 - p
    if kind == "triangle":
        return np.stack([1.0 - p[:, 0] - p[:, 1], p[:, 0]], axis=1)
    if kind == "tetrahedron":
        return np.stack([1.0 - p.sum(axis=1), p[:, 0], p[:, 1]], axis=1)
    if kind == "wedge":
        return np.stack([1.0 - p[:, 0] - p[:, 1], p[:, 0], p[:, 2]], axis=1)
    return p


@functools.cache
def flip_permutation(kind: str, order: int) -> tuple[int, ...]:
    """The node permutation that mirrors the cell (parameters r and s swapped).

    A cell whose mapped vertices are negatively oriented is written with its nodes in this order,
    which VTK reads as a positively oriented cell with the same nodes.
    """
    nodes = lattice(kind, order)
    if kind == "segment":
        return tuple(range(len(nodes)))
    where = {p: n for n, p in enumerate(nodes)}
    mirrored = [(p[1], p[0], *p[2:]) for p in nodes]
    return tuple(where[m] for m in mirrored)


# The vertices spanning the orientation: sign of det[p_b - p_a, p_c - p_a(, p_d - p_a)].
ORIENTATION_VERTICES: dict[str, tuple[int, ...]] = {
    "triangle": (0, 1, 2),
    "quadrilateral": (0, 1, 3),
    "tetrahedron": (0, 1, 2, 3),
    "hexahedron": (0, 1, 3, 4),
    "wedge": (0, 1, 2, 3),
    "pyramid": (0, 1, 3, 4),
}
