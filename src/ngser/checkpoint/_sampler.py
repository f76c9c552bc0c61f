"""What a step adds to a checkpoint's VTK view: its named GridFunctions sampled on the view's cells."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import NgserWarning
from ..serializers import Registry
from ._vtkview import Grid

__all__ = ["Sampler"]


class Sampler:
    """Samples the steps of one checkpoint, keeping the cells of the last mesh seen.

    The first step with GridFunctions fixes the view's mesh and point arrays (and the cells'
    order, from its fields). A later step whose fields lie on another mesh, a moved mesh or have
    other names or shapes is left out of the view, with an :class:`~ngser.NgserWarning`: the view
    holds one mesh; ``ngser export`` writes any step of the checkpoint.
    """

    def __init__(self, registry: Registry, path: str) -> None:
        self.registry = registry
        self.path = path
        self._key: tuple[int, Any] | None = None
        self._layout: Any = None
        self._grid: Grid | None = None
        self._fits: bool | None = None  # whether the sampled cells are those of the file's view

    def step(self, obj: Any, step: int, view: Grid | None) -> tuple[dict[str, np.ndarray] | None, Grid | None]:
        """``(arrays, grid)`` of step ``step``: its point arrays (None: not in the view) and,
        when the file has no view yet (``view`` is None), the grid of a new one."""
        from .. import vtk

        mesh, fields, skipped = vtk.named_fields(obj)
        if skipped:
            self._warn(step, f"the GridFunctions {', '.join(skipped)} are on another mesh than the first one")
        if not fields:
            self._warn(step, "it holds no GridFunction under a name (a dict key)")
            return None, None
        record = self.registry.record_for_type(type(mesh))
        key = (id(mesh), record.fingerprint(mesh) if record is not None and record.fingerprint else None)
        if key != self._key or self._layout is None or self._layout.mesh is not mesh:
            self._layout = vtk.sample(mesh, fields, order=self._layout.order if self._layout is not None else None)
            self._key, self._grid, self._fits = key, None, None
        layout = self._layout
        arrays = vtk.point_data(layout, fields)
        shapes = {name: tuple(int(d) for d in a.shape[1:]) for name, a in arrays.items()}
        if self._grid is None or self._grid.arrays != shapes:
            self._grid = Grid(layout.points, layout.types, layout.connectivity, layout.offsets, shapes)
            self._fits = None
        if view is None:
            return arrays, self._grid
        if self._fits is None:
            self._fits = view.same_cells(self._grid) and view.arrays == shapes
        if not self._fits:
            what = "mesh" if not view.same_cells(self._grid) else f"point arrays {shapes} (the view has {view.arrays})"
            self._warn(step, f"its {what} differs from the view's")
            return None, None
        return arrays, None

    def _warn(self, step: int, why: str) -> None:
        warnings.warn(
            f"{self.path}: step {step} is saved but not in the checkpoint's VTK view: {why}. The view holds one "
            "mesh and the same point arrays at every step; `ngser export` writes any step to a VTKHDF file.",
            NgserWarning,
            stacklevel=4,
        )
