"""A collective save: every distributed object becomes its global serial counterpart on rank 0.

Meshes: rank 0 collects every rank's points (by global vertex number) and elements (in global
vertex numbers), keeps the volume elements in :func:`~._numbers.element_order` and each lower-
dimensional element once, and rebuilds the global netgen mesh; a curved mesh's element map is
gathered as a ``VectorH1`` field and applied as its stored curvature. Spaces are rebuilt on the
global mesh from the state their serializer gives. GridFunctions: every rank sends the global keys
of its dofs with their (cumulated) values, and rank 0 puts each value at the global dof of the
same key. Steps run in the order of the walk, the same on every rank; rank 0's own failures are
kept until the end, so that no rank is left alone in a collective step.
"""

from __future__ import annotations

import itertools
from typing import Any

import ngsolve
import ngsolve.comp as comp
import numpy as np
from mpi4py import MPI

from ..errors import StateError
from ..serializers import Registry
from ..serializers.ngsolve._curvature import _measures, apply_curvature
from ..serializers.ngsolve._numbering import _keys
from ..serializers.ngsolve.mesh import dump_netgen_mesh, load_netgen_mesh
from ._channel import RootSteps
from ._numbers import (
    MeshNumbers,
    dof_keys,
    element_order,
    key_rows,
    match_rows,
    node_tables,
    padded,
    sort_key,
    vertex_numbers,
)
from ._objects import curve_order, is_ngsolve, rebuild, space_parts, with_parts

__all__ = ["Globalizer", "coordinates"]

#: Per-element fields of a netgen mesh state, by dimension: keys ``elements{d}d_*``.
_META = ("region_names", "face_descriptors", "edge_descriptors")


def coordinates(mesh: Any, order: int) -> Any:
    """The coordinate field of a curved mesh in ``VectorH1(order)`` (collective)."""
    field = ngsolve.GridFunction(ngsolve.VectorH1(mesh, order=order))
    field.Set(ngsolve.CF((ngsolve.x, ngsolve.y, ngsolve.z)[: int(mesh.dim)]))
    return field


class Globalizer(RootSteps):
    """Turn the distributed objects of a walk into global ones on rank 0 (collective)."""

    def __init__(self, comm: MPI.Comm, registry: Registry) -> None:
        super().__init__(comm)
        self.registry = registry
        # Meshes and spaces are gathered once and kept (a checkpoint appends many steps of them);
        # GridFunctions once per call. Each dict holds its objects, so their ids stay theirs.
        self._meshes: dict[int, tuple[Any, MeshNumbers]] = {}
        self._spaces: dict[int, tuple[Any, Any]] = {}
        self._functions: dict[int, tuple[Any, Any]] = {}
        #: local space id -> (space, its dofs in key order, rank 0: where each global dof's value is)
        self._plans: dict[int, tuple[Any, np.ndarray, Any]] = {}

    def structure(self, obj: Any) -> Any:
        """``obj`` with its distributed leaves replaced by global objects (rank 0)."""
        self._functions, self.failure = {}, None
        try:
            return rebuild(obj, self.leaf)
        finally:
            self._functions = {}

    def leaf(self, item: Any) -> Any:
        if isinstance(item, ngsolve.Mesh):
            return self.mesh(item).mesh
        if isinstance(item, comp.GridFunction):
            return _once(self._functions, item, self._gridfunction)
        if isinstance(item, comp.FESpace):
            return _once(self._spaces, item, self._space)
        return None if is_ngsolve(item) else item

    def mesh(self, mesh: Any) -> MeshNumbers:
        return _once(self._meshes, mesh, self._gather_mesh)  # type: ignore[no-any-return]

    def _gather_mesh(self, mesh: Any) -> MeshNumbers:
        comm = self.comm
        vertices = vertex_numbers(mesh, comm)
        state = dump_netgen_mesh(mesh.ngmesh, curvature=False)
        for key, value in state.items():
            if key.startswith("elements") and key.endswith("_vertices"):
                state[key] = np.where(value > 0, vertices[np.maximum(value, 1) - 1] + 1, 0)
        state["vertex_numbers"] = vertices
        parts = comm.gather(state, root=0)
        merged = self.on_root(_merge, parts)
        elements = comm.scatter(merged[1] if merged is not None else [np.zeros(0, np.int64)] * comm.size, root=0)
        global_mesh = None if merged is None else self.on_root(lambda: ngsolve.Mesh(load_netgen_mesh(merged[0])))
        numbers = MeshNumbers(vertices, elements, global_mesh, node_tables(mesh))
        order = comm.allreduce(curve_order(mesh), op=MPI.MAX)
        if order > 1:
            local = coordinates(mesh, order)
            measures = _measures(mesh)
            space = self.on_root(lambda: ngsolve.VectorH1(global_mesh, order=order))
            values = self._gather_values(local.space, space, [local.vec.FV().NumPy()], numbers, "the curved mesh")
            self.on_root(_curve, global_mesh, order, values, measures)
        return numbers

    def _space(self, space: Any) -> Any:
        serializer, state = space_parts(space, self.registry)
        replaced = with_parts(
            state,
            lambda part: (
                self.mesh(part).mesh if isinstance(part, ngsolve.Mesh) else _once(self._spaces, part, self._space)
            ),
        )
        return self.on_root(serializer.load, replaced)

    def _gridfunction(self, gf: Any) -> Any:
        space = _once(self._spaces, gf.space, self._space)
        for vec in gf.vecs:
            vec.Cumulate()
        what = f"the GridFunction {gf.name!r}"
        values = self._gather_values(
            gf.space, space, [vec.FV().NumPy() for vec in gf.vecs], self.mesh(gf.space.mesh), what
        )
        return self.on_root(_global_gridfunction, gf, space, values)

    def _gather_values(
        self, local: Any, space: Any, vectors: list[np.ndarray], numbers: MeshNumbers, what: str
    ) -> list[np.ndarray] | None:
        """Rank 0: the vectors of ``local`` (distributed) as vectors of the global ``space``."""
        plan = self._plans.get(id(local))
        if plan is None:
            # rank 0 holds no elements: it numbers the global space while the others number theirs
            found = self.on_root(_keys, space)
            dofs, keys = dof_keys(local, numbers, what)
            wanted = self.comm.gather(keys, root=0)
            plan = (local, dofs, self.on_root(_sources, wanted, found, what))
            if id(local) in self._spaces:  # kept: a checkpoint's later steps send values only
                self._plans[id(local)] = plan
        _, dofs, sources = plan
        ndof = int(local.ndof)
        blocks = [v.reshape(ndof, -1)[dofs] for v in vectors] if ndof else []
        parts = self.comm.gather(blocks, root=0)
        return self.on_root(_place, parts, space, sources, len(vectors))


def _once(memo: dict[int, tuple[Any, Any]], item: Any, make: Any) -> Any:
    """``make(item)``, once per ``item`` in ``memo`` (which keeps ``item`` alive)."""
    if id(item) not in memo:
        memo[id(item)] = (item, make(item))
    return memo[id(item)][1]


def _merge(parts: list[dict[str, Any]]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Rank 0: the global mesh state from every rank's, and each rank's global element numbers."""
    vertices = [p.pop("vertex_numbers") for p in parts]
    count = max((int(v.max()) + 1 for v in vertices if len(v)), default=0)
    dim = int(parts[0]["dim"])
    width = max((p["points"].shape[1] for p in parts if p["points"].ndim == 2 and len(p["points"])), default=3)
    points = np.zeros((count, width))
    seen = np.zeros(count, dtype=bool)
    for v, p in zip(vertices, parts):
        if len(v):
            points[v], seen[v] = p["points"][: len(v)], True
    if not seen.all():
        raise StateError(f"the ranks hold {int(seen.sum())} of the distributed mesh's {count} vertices")
    richest = max(parts, key=lambda p: (len(p["face_descriptors"]), sum(map(len, p["region_names"]))))
    state = {**parts[0], **{key: richest[key] for key in _META}, "points": points, "curve_order": 1}
    state.pop("curvature", None)
    numbers: list[np.ndarray] = []
    for d in range(dim, -1, -1):
        prefix = f"elements{d}d_"
        fields = sorted({key for p in parts for key in p if key.startswith(prefix)})
        if not fields:
            continue
        width = max(p[prefix + "vertices"].shape[1] for p in parts if prefix + "vertices" in p)
        table = {
            key: np.concatenate([padded(p[key], width) if key.endswith("_vertices") else p[key] for p in parts])
            for key in fields
        }
        verts, index = table[prefix + "vertices"], table[prefix + "index"]
        if d == dim:
            order = element_order(verts)
            position = np.empty(len(order), dtype=np.int64)
            position[order] = np.arange(len(order))
            bounds = np.cumsum([0] + [len(p[prefix + "index"]) for p in parts])
            numbers = [position[a:b] for a, b in itertools.pairwise(bounds)]
        else:  # an element on several ranks' boundaries is stored once
            _, order = np.unique(sort_key(verts, index), return_index=True)
        state.update({key: np.ascontiguousarray(value[order]) for key, value in table.items()})
        state[prefix + "vertices"] = state[prefix + "vertices"].astype(np.int32)
    return state, numbers


def _sources(
    wanted: list[np.ndarray], found: tuple[np.ndarray, np.ndarray], what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Rank 0: ``(global dofs, source rows)``: for each global dof the row of the gathered values
    (every rank's dofs in key order, one after the other) that holds its value."""
    dofs, global_keys = found
    keys = np.concatenate(wanted)
    rows, first = np.unique(key_rows(keys), return_index=True)
    if len(global_keys) != len(rows):
        raise StateError(
            f"{what}: the ranks hold {len(rows)} distinct dofs, the global space has {len(global_keys)}; the "
            "distributed space is not one NGSolve rebuilds on the global mesh"
        )
    return dofs, first[match_rows(rows, key_rows(global_keys), what)]


def _place(
    parts: list[list[np.ndarray]], space: Any, sources: tuple[np.ndarray, np.ndarray], count: int
) -> list[np.ndarray]:
    """Rank 0: the gathered value blocks of every rank as ``count`` vectors of the global space."""
    dofs, source = sources
    ndof = int(space.ndof)
    out = []
    for i in range(count):
        held = [b[i] for b in parts if b]
        width = held[0].shape[1] if held else 1
        block = np.concatenate(held) if held else np.zeros((0, width))
        vector = np.zeros((ndof, width), dtype=block.dtype)
        vector[dofs] = block[source]
        out.append(vector.reshape(-1))
    return out


def _curve(mesh: Any, order: int, values: list[np.ndarray], measures: list[float]) -> None:
    """Rank 0: curve the global mesh by the gathered coordinate field."""
    dim, nv = int(mesh.dim), int(mesh.nv)
    field = values[0].reshape(dim, -1)  # VectorH1: the components' dofs one after the other
    displacement = np.ascontiguousarray(field[:, nv:].T)
    if not apply_curvature(mesh, {"order": order, "displacement": displacement, "measures": measures}):
        raise StateError("the gathered curvature of the distributed mesh does not reproduce its measures")


def _global_gridfunction(gf: Any, space: Any, values: list[np.ndarray]) -> Any:
    # (not gf's reduce state: NGSolve pickles a distributed GridFunction collectively)
    count = len(values)
    result = ngsolve.GridFunction(space, name=gf.name, **({"multidim": count} if count > 1 else {}))
    for vec, row in zip(result.vecs, values):
        vec.FV().NumPy()[:] = row
    return result
