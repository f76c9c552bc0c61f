"""A collective load: the global objects rank 0 loaded, distributed over the ranks.

Rank 0 makes a plan (:meth:`Distributor.plan`): the shape of the loaded objects with every mesh,
space and GridFunction replaced by a slot, the steps that build the slots in dependency order
(mesh, then its spaces, then their GridFunctions) and the plain leaves. Every rank then runs the
steps in order (:meth:`Distributor.build`): a mesh is distributed with netgen's ``Distribute``
(straight; a curved mesh gets its element map back as a deformation, the coordinate field of the
global mesh sent in pieces), a space is rebuilt from its serializer's state on the local mesh, and
a GridFunction gets the global values of the keys of its local dofs, which rank 0 looks up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import netgen.meshing as nm
import ngsolve
import ngsolve.comp as comp
import numpy as np
from mpi4py import MPI

from ..errors import StateError, UnsupportedTypeError
from ..serializers import Registry
from ..serializers.ngsolve._curvature import CURVATURE_NAME, _close, _measures
from ..serializers.ngsolve._numbering import _keys
from ..serializers.ngsolve.mesh import dump_netgen_mesh, load_netgen_mesh
from ._channel import RootSteps
from ._gather import coordinates
from ._numbers import MeshNumbers, dof_keys, key_rows, match_rows, node_tables, padded, sort_key, vertex_numbers
from ._objects import curve_order, is_ngsolve, rebuild, space_parts, with_parts

__all__ = ["Distributor"]


@dataclass(frozen=True)
class _Slot:
    """A place in the shape of the loaded objects: step ``step``'s object, or plain leaf ``plain``."""

    step: int = -1
    plain: int = -1


class Distributor(RootSteps):
    """Distribute the global objects rank 0 loaded (collective)."""

    def __init__(self, comm: MPI.Comm, registry: Registry) -> None:
        super().__init__(comm)
        self.registry = registry
        # Kept from call to call (a checkpoint loads many steps): meshes and spaces are built once.
        self._globals: dict[int, Any] = {}  # rank 0: the global object of each step, by step id
        self._index: dict[int, int] = {}  # rank 0: id of a global mesh or space -> its step id
        self._built: dict[int, Any] = {}  # every rank: the local object of each step
        self._numbers: dict[int, MeshNumbers] = {}  # by id of the local mesh (alive in _built)
        self._count = 0
        #: local space id -> (space, its dofs in key order, rank 0: each rank's global dofs)
        self._lookups: dict[int, tuple[Any, np.ndarray, Any]] = {}
        self._steps: list[tuple[Any, ...]] = []
        self._plain: list[Any] = []

    # -- rank 0: the plan ------------------------------------------------------------------------

    def plan(self, loaded: Any) -> tuple[Any, list[tuple[Any, ...]], list[Any]]:
        """Rank 0: ``(shape, steps, plain leaves)`` of the loaded objects (picklable); steps
        only for objects no earlier call built."""
        self._steps, self._plain = [], []
        shape = rebuild(loaded, self._slot)
        return shape, self._steps, self._plain

    def _slot(self, item: Any) -> _Slot:
        if isinstance(item, (ngsolve.Mesh, comp.GridFunction, comp.FESpace)):
            return _Slot(step=self._step(item))
        if is_ngsolve(item):
            raise UnsupportedTypeError(
                f"a {type(item).__name__} cannot be loaded collectively (it would refer to the global mesh); "
                "load the file serially"
            )
        self._plain.append(item)
        return _Slot(plain=len(self._plain) - 1)

    def _step(self, item: Any) -> int:
        key = id(item)  # alive in self._globals
        if key in self._index:
            return self._index[key]
        keep = not isinstance(item, comp.GridFunction)  # a GridFunction's values are new each call
        if isinstance(item, ngsolve.Mesh):
            step: tuple[Any, ...] = ("mesh", curve_order(item))
        elif isinstance(item, comp.ComponentGridFunction):
            raise UnsupportedTypeError("a component GridFunction cannot be loaded collectively: load its parent")
        elif isinstance(item, comp.GridFunction):
            multidim = len(item.vecs) if len(item.vecs) > 1 else 0
            step = ("gridfunction", self._step(item.space), item.name, multidim)
        else:
            serializer, state = space_parts(item, self.registry)
            step = ("space", serializer.name, with_parts(state, lambda part: _Slot(step=self._step(part))))
        nr, self._count = self._count, self._count + 1
        self._steps.append((nr, *step))
        self._globals[nr] = item
        if keep:
            self._index[key] = nr
        return nr

    # -- every rank: the build -------------------------------------------------------------------

    def build(self, plan: tuple[Any, list[tuple[Any, ...]], list[Any]]) -> Any:
        shape, steps, plain = plan
        self.failure = None
        built = self._built
        fresh: list[int] = []  # this call's GridFunctions, not kept
        for nr, kind, *rest in steps:
            if kind == "mesh":
                made = self._mesh(nr, rest[0])
                self._numbers[id(made.mesh)] = made
                built[nr] = made.mesh
            elif kind == "space":
                serializer = self.registry.for_name(rest[0])
                assert serializer is not None  # named by rank 0's own registry
                state = rebuild(rest[1], lambda v: built[v.step] if isinstance(v, _Slot) else v)
                built[nr] = serializer.load(state)
            else:
                built[nr] = self._gridfunction(nr, rest, built)
                fresh.append(nr)

        def leaf(slot: Any) -> Any:
            return built[slot.step] if slot.step >= 0 else plain[slot.plain]

        result = rebuild(shape, leaf)
        for nr in fresh:
            del built[nr]
            self._globals.pop(nr, None)
        return result

    def _mesh(self, nr: int, order: int) -> MeshNumbers:
        comm = self.comm
        state: dict[str, Any] = {}
        if self.root:
            state = dump_netgen_mesh(self._globals[nr].ngmesh, curvature=False)
            state["curve_order"] = 1
            ngmesh = load_netgen_mesh(state)  # a straight copy: the curvature comes as a deformation
            ngmesh.Distribute(comm)
        else:
            ngmesh = nm.Mesh.Receive(comm)
        mesh = ngsolve.Mesh(ngmesh)
        dim = int(mesh.dim)
        vertices = vertex_numbers(mesh, comm, state.get("points"), known=True)
        cells = ngmesh.Elements3D() if dim == 3 else ngmesh.Elements2D()
        verts = np.asarray(cells.NumPy()["nodes"], dtype=np.int64)
        verts = np.where(verts > 0, vertices[np.maximum(verts, 1) - 1] + 1, 0)
        parts = comm.gather(verts, root=0)
        found = self.on_root(_element_numbers, state.get(f"elements{dim}d_vertices"), parts)
        elements = comm.scatter(found or [np.zeros(0, np.int64)] * comm.size, root=0)
        numbers = MeshNumbers(vertices, elements, mesh, node_tables(mesh))
        if order > 1:
            self._curve(nr, numbers, order)
        return numbers

    def _curve(self, nr: int, numbers: MeshNumbers, order: int) -> None:
        mesh = numbers.mesh
        field = ngsolve.GridFunction(ngsolve.VectorH1(mesh, order=order), name=CURVATURE_NAME)
        source = None
        if self.root:
            global_field = self.on_root(coordinates, self._globals[nr], order)
            source = None if global_field is None else (global_field.space, [global_field.vec.FV().NumPy()])
        self._scatter_values(field.space, [field.vec], source, numbers, "the curved mesh")
        nv = int(mesh.nv)
        for component in field.components:
            component.vec.FV().NumPy()[:nv] = 0.0  # the vertices are the points: only the rest moves
        mesh.SetDeformation(field)
        expected = self.comm.bcast(self.on_root(lambda: _measures(self._globals[nr])), root=0)
        got = _measures(mesh)
        if expected is not None and not _close(expected, got):
            raise StateError(f"the distributed curved mesh has the measures {got}, the loaded one {expected}")

    def _gridfunction(self, nr: int, step: list[Any], built: dict[int, Any]) -> Any:
        space_step, name, multidim = step
        space = built[space_step]
        gf = ngsolve.GridFunction(space, name=name, **({"multidim": multidim} if multidim else {}))
        source = None
        if self.root:
            original = self._globals[nr]
            source = (original.space, [vec.FV().NumPy() for vec in original.vecs])
        self._scatter_values(space, list(gf.vecs), source, self._numbers[id(space.mesh)], f"the GridFunction {name!r}")
        return gf

    def _scatter_values(
        self,
        local: Any,
        vectors: list[Any],
        source: tuple[Any, list[np.ndarray]] | None,
        numbers: MeshNumbers,
        what: str,
    ) -> None:
        """Fill the local ``vectors`` from rank 0's global ``source`` (space, vectors) by dof keys."""
        plan = self._lookups.get(id(local))
        if plan is None:
            found = self.on_root(_keys, source[0]) if source is not None else None
            dofs, keys = dof_keys(local, numbers, what)
            wanted = self.comm.gather(keys, root=0)
            plan = (local, dofs, self.on_root(_look_up, found, wanted, what) if found is not None else None)
            if any(local is built for built in self._built.values()):  # kept: later steps send values only
                self._lookups[id(local)] = plan
        _, dofs, at = plan
        answers = None
        if at is not None and source is not None:
            ndof = int(source[0].ndof)
            blocks = [v.reshape(ndof, -1) if ndof else v.reshape(0, 1) for v in source[1]]
            answers = [[np.ascontiguousarray(b[where]) for b in blocks] for where in at]
        mine = self.comm.scatter(answers or [[] for _ in range(self.comm.size)], root=0)
        ndof = int(local.ndof)
        for vec, values in zip(vectors, mine):
            target = vec.FV().NumPy()
            blocks = target.reshape(ndof, -1) if ndof else target.reshape(0, 1)
            blocks[:] = 0.0
            if len(dofs):
                blocks[dofs] = values.reshape(len(dofs), -1)
            vec.SetParallelStatus(ngsolve.la.PARALLEL_STATUS.CUMULATED)


def _element_numbers(table: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
    """Rank 0: each rank's volume elements' numbers in the global mesh (whose element ``table``,
    1-based and 0-padded, is given), found by their vertices."""
    width = max([table.shape[1], *(p.shape[1] for p in parts if p.ndim == 2)])
    rows = sort_key(padded(table, width))
    return [match_rows(rows, sort_key(padded(p, width)), "the distributed mesh's elements") for p in parts]


def _look_up(found: tuple[np.ndarray, np.ndarray], wanted: list[np.ndarray], what: str) -> list[np.ndarray]:
    """Rank 0: for each rank's dof keys, the global dofs of the same keys (``found``: the global
    space's dofs and keys)."""
    dofs, keys = found
    rows = key_rows(keys)
    return [dofs[match_rows(rows, key_rows(their), what)] for their in wanted]
