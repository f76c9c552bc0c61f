"""Global numbers of a distributed mesh's vertices and elements, and global keys of its dofs.

netgen numbers the vertices of a distributed mesh globally (the numbering of the serial mesh it
was distributed from) but exposes the numbers only through ``GridFunction.Save(parallel=True)``,
which writes a vector in global vertex order. :func:`vertex_numbers` saves an order-1 ``H1``
function whose value at each vertex names its rank and local number, so that rank 0 learns the
global points, and finds every rank's vertices among them by their coordinates (a load knows the
global points already). The global numbers grow with the local ones on every rank (checked), so
edges and faces, whose shape functions NGSolve orients by vertex numbers, are oriented the same
locally and globally.

Elements are numbered by rank 0: the volume elements of all ranks sorted by their global vertex
numbers (:func:`element_order`), an order no partition changes.

:func:`dof_keys` gives each local dof the key of :mod:`ngser.serializers.ngsolve._numbering` in
global numbers: the same key the dof has in the global space, by which values are matched.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any

import ngsolve
import numpy as np
from mpi4py import MPI

from ..errors import StateError, UnsupportedTypeError
from ..serializers.ngsolve._numbering import (
    _CELL,
    _EDGE,
    _FACE,
    _GLOBAL,
    _VERTEX,
    _edge_vertices,
    _face_vertices,
    _keys,
    _node_dofs,
)

__all__ = [
    "MAX_RANKS",
    "MeshNumbers",
    "SHIFT",
    "dof_keys",
    "node_tables",
    "padded",
    "element_order",
    "key_rows",
    "match_rows",
    "sort_key",
    "vertex_numbers",
]

#: Rank and local vertex number are coded as ``rank * SHIFT + number`` (exact in float64).
SHIFT = 2**31
#: The most ranks that coding leaves room for.
MAX_RANKS = 2**21


def vertex_numbers(mesh: Any, comm: MPI.Comm, points: np.ndarray | None = None, *, known: bool = False) -> np.ndarray:
    """The global number of each of this rank's vertices (collective). ``known`` (the same on
    every rank): rank 0 has the global vertex coordinates, ``points`` (a load); otherwise they come from netgen's
    parallel ``Save`` (rank 0 writes and removes a scratch file in its temporary directory).
    Each rank's vertices are then found among them by their coordinates, which ``Distribute``
    copies exactly."""
    nv = int(mesh.nv)
    coords = np.ascontiguousarray(np.asarray(mesh.ngmesh.Coordinates(), dtype=np.float64).reshape(nv, -1 if nv else 3))
    owners = None if known else _saved_owners(mesh, comm)
    parts = comm.gather(coords, root=0)
    answers: list[Any] | None = None
    if comm.rank == 0:
        try:
            answers = _numbers_by_point(parts or [], owners, points)
        except Exception as exc:  # every rank raises it: none is left waiting
            answers = [str(exc)] * comm.size
    found = comm.scatter(answers, root=0)
    if isinstance(found, str):
        raise StateError(found)
    return found  # type: ignore[no-any-return]


def _saved_owners(mesh: Any, comm: MPI.Comm) -> np.ndarray | None:
    """Rank 0: ``(nv_global, 2)`` owning rank and its local number of every global vertex."""
    nv = int(mesh.nv)  # below SHIFT: checked by _objects.check before any collective step
    space = ngsolve.H1(mesh, order=1)
    dofs = _node_dofs(space, _VERTEX, nv)
    field = ngsolve.GridFunction(space)
    values = field.vec.FV().NumPy()
    values[:] = -1.0
    values[dofs[dofs >= 0]] = comm.rank * float(SHIFT) + np.flatnonzero(dofs >= 0)
    scratch = os.path.join(tempfile.gettempdir(), f"ngser-mpi-{uuid.uuid4().hex}.tmp")
    name = comm.bcast(scratch if comm.rank == 0 else None, root=0)
    try:
        field.Save(name, parallel=True)
        comm.Barrier()
        if comm.rank != 0:
            return None
        coded = np.fromfile(name, dtype="<f8")
    finally:
        comm.Barrier()
        if comm.rank == 0 and os.path.exists(name):
            os.unlink(name)
    rank = np.floor_divide(coded, float(SHIFT)).astype(np.int64)
    return np.stack((rank, (coded - rank * float(SHIFT)).astype(np.int64)), axis=1)


def _numbers_by_point(
    parts: list[np.ndarray], owners: np.ndarray | None, points: np.ndarray | None
) -> list[np.ndarray]:
    """Rank 0: every rank's global vertex numbers, its vertices found among the global points."""
    if points is None:
        assert owners is not None
        rank, local = owners[:, 0], owners[:, 1]
        sizes = np.array([len(p) for p in parts])
        if (rank < 0).any() or (rank >= len(parts)).any() or (local < 0).any() or (local >= sizes[rank]).any():
            raise StateError("netgen's parallel Save of the vertex numbers gave values no rank wrote")
        width = max((p.shape[1] for p in parts if len(p)), default=3)
        points = np.zeros((len(owners), width))
        for r, part in enumerate(parts):
            mine = rank == r
            if mine.any():
                points[mine] = part[local[mine]]
    table = _void(points.view(np.int64)) if len(points) else np.zeros(0, "V8")
    if len(np.unique(table)) != len(table):
        raise StateError("the distributed mesh has two vertices at the same point; they cannot be told apart")
    out = []
    for part in parts:
        if not len(part):
            out.append(np.zeros(0, dtype=np.int64))
            continue
        found = match_rows(table, _void(part.view(np.int64)), "the ranks' vertices")
        if (np.diff(found) <= 0).any():
            raise StateError("netgen's global vertex numbers of the distributed mesh do not grow with the local ones")
        out.append(found.astype(np.int64))
    return out


def sort_key(vertices: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Rows to sort or match elements by: their vertex numbers sorted (0 padding first), then
    the region index; one void item per element, so that numpy sorts and searches them."""
    rows = np.sort(np.asarray(vertices, dtype=np.int64), axis=1)
    if index is not None:
        rows = np.concatenate((rows, np.asarray(index, dtype=np.int64).reshape(-1, 1)), axis=1)
    return _void(rows)


def _void(rows: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rows, dtype=">i8")  # big-endian: bytewise order is numeric order (non-negative)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * max(rows.shape[1], 1)))).ravel()


def padded(vertices: np.ndarray, width: int) -> np.ndarray:
    """Element vertex rows (0-padded) widened with zeros to ``width`` columns, as int64."""
    out = np.zeros((len(vertices), width), dtype=np.int64)
    if vertices.ndim == 2:
        out[:, : vertices.shape[1]] = vertices
    return out


def element_order(vertices: np.ndarray) -> np.ndarray:
    """The order (a permutation) that sorts elements by their sorted global vertex numbers."""
    return np.argsort(sort_key(vertices), kind="stable")


def match_rows(table: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """For each void row of ``wanted``, its position in ``table`` (rows unique); StateError when
    one is missing."""
    order = np.argsort(table, kind="stable")
    place = np.searchsorted(table[order], wanted)
    place = np.minimum(place, max(len(table) - 1, 0))
    found = order[place] if len(table) else np.zeros(len(wanted), np.int64)
    if len(wanted) and (not len(table) or not np.array_equal(table[found], wanted)):
        missing = int(np.count_nonzero(table[found] != wanted)) if len(table) else len(wanted)
        raise StateError(f"{what}: {missing} of {len(wanted)} entries have no counterpart")
    return found


@dataclass
class MeshNumbers:
    """A distributed mesh's global numbers and node tables; ``mesh``: its counterpart (the global
    mesh on rank 0 of a save, else None; the local mesh of a load)."""

    vertices: np.ndarray
    elements: np.ndarray
    mesh: Any
    nodes: tuple[np.ndarray, np.ndarray]


def node_tables(mesh: Any) -> tuple[np.ndarray, np.ndarray]:
    """The local edges' and faces' vertices (collective: builds helper spaces on the mesh)."""
    edges = _edge_vertices(mesh)
    faces = _face_vertices(mesh) if int(mesh.dim) == 3 else np.zeros((0, 4), dtype=np.int64)
    return edges, faces


def dof_keys(space: Any, numbers: MeshNumbers, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(dofs, keys)`` of a space on a distributed mesh, keys in global numbers (local work:
    the collective part is :func:`node_tables`, done once per mesh)."""
    dofs, keys = _keys(space, nodes=numbers.nodes)
    kind = keys[:, 0]
    if (kind == _GLOBAL).any():
        raise UnsupportedTypeError(f"{what}: a space with dofs on no mesh node (NumberSpace) cannot be distributed")
    keys = keys.copy()
    nodes = (kind == _VERTEX) | (kind == _EDGE) | (kind == _FACE)
    cols = keys[nodes, 1:5]
    mapped = np.where(cols >= 0, numbers.vertices[np.maximum(cols, 0)], np.iinfo(np.int64).max)
    mapped.sort(axis=1)
    keys[nodes, 1:5] = np.where(mapped == np.iinfo(np.int64).max, -1, mapped)
    cells = kind == _CELL
    keys[cells, 1] = numbers.elements[keys[cells, 1]]
    return dofs, keys


def key_rows(keys: np.ndarray) -> np.ndarray:
    """Dof keys as void rows (shifted to be non-negative) for :func:`match_rows`."""
    return _void(keys + 1)
