"""Writing a :class:`~ngser.vtk.Layout` and its point data as a VTKHDF ``UnstructuredGrid`` (h5py only).

The group (``/VTKHDF`` of the file: ParaView reads only that one) holds::

    attributes  Version = [2, 0] (int64), Type = "UnstructuredGrid" (fixed-length ASCII)
    NumberOfPoints, NumberOfCells, NumberOfConnectivityIds   int64, one entry per step (1 if static)
    Points (n, 3) float64, Types (cells,) uint8, Connectivity (n,) int64, Offsets (cells + 1,) int64
    PointData/<name>      float64, (n,) or (n, components); a series stacks one block of n rows a step
    Steps                 only for a series: attribute NSteps; Values (times), PartOffsets, NumberOfParts,
                          PointOffsets, CellOffsets, ConnectivityIdOffsets (int64, one entry a step);
                          PointDataOffsets/<name> (int64: the first row of the step's block)

The mesh (points and cells) is stored once: every step's point and cell offsets are 0. Every dataset
that grows with the steps is chunked with an unlimited first dimension, so that appending a step
resizes it and writes one block; nothing already written moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._sample import Layout, point_data

__all__ = ["VERSION", "write", "append_step", "create_series", "array_shapes", "times", "truncate_steps"]

#: The VTKHDF version written: 2.0 has everything used here (transient unstructured grids).
VERSION = (2, 0)
_PER_STEP = ("NumberOfPoints", "NumberOfCells", "NumberOfConnectivityIds")
_STEP_TABLES = ("PartOffsets", "NumberOfParts", "PointOffsets", "CellOffsets", "ConnectivityIdOffsets")
_CHUNK_BYTES = 1 << 20
_TABLE_ROWS = 1024  # rows of a chunk of the per-step tables


def _growing(
    group: Any, name: str, shape: tuple[int, ...], dtype: Any, data: Any = None, *, rows: int = _TABLE_ROWS
) -> Any:
    """A chunked dataset with an unlimited first dimension (``maxshape=(None, ...)``).

    A chunk holds ``rows`` rows (a step's block for point data), at most about 1 MiB.
    """
    row = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    rows = max(1, min(rows, _CHUNK_BYTES // max(row, 1)))
    return group.create_dataset(
        name, shape=shape, maxshape=(None, *shape[1:]), chunks=(rows, *shape[1:]), dtype=dtype, data=data
    )


def _mesh(parent: Any, layout: Layout, name: str, steps: int) -> Any:
    """Create the group with the layout's points and cells and its per-step counts for ``steps`` steps."""
    if name in parent:
        raise ValueError(f"ngser.vtk: {parent.name.rstrip('/')}/{name} exists already")
    root = parent.create_group(name)
    root.attrs.create("Version", np.array(VERSION, dtype=np.int64))
    root.attrs.create("Type", np.bytes_(b"UnstructuredGrid"))
    counts = (layout.number_of_points, layout.number_of_cells, len(layout.connectivity))
    for key, count in zip(_PER_STEP, counts):
        _growing(root, key, (max(steps, 1),), np.int64, np.full(max(steps, 1), count, dtype=np.int64))
    root.create_dataset("Points", data=layout.points, dtype=np.float64)
    root.create_dataset("Types", data=layout.types, dtype=np.uint8)
    root.create_dataset("Connectivity", data=layout.connectivity, dtype=np.int64)
    root.create_dataset("Offsets", data=layout.offsets, dtype=np.int64)
    root.create_group("PointData")
    return root


def array_shapes(layout: Layout, fields: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The row shape of each point array :func:`~ngser.vtk.point_data` makes of ``fields`` (``()``: scalar).

    Evaluates the fields on the first cell only.
    """
    if not layout.number_of_points:
        return {name: () for name in point_data(layout, fields)}
    first = int(layout.offsets[1])
    head = Layout(layout.mesh, layout.order, layout.points[:first], layout.connectivity[:first],
                  layout.offsets[:2], layout.types[:1], layout.mapped[:first])  # fmt: skip
    heads = {k: v[:first] if isinstance(v, np.ndarray) else v for k, v in fields.items()}
    return {name: tuple(a.shape[1:]) for name, a in point_data(head, heads).items()}


def create_series(parent: Any, layout: Layout, shapes: Mapping[str, tuple[int, ...]], *, name: str = "VTKHDF") -> Any:
    """Create an empty time series (0 steps) of point arrays of these row shapes; returns its group.

    ``shapes`` maps each point array's name to its row shape, ``()`` for a scalar (see
    :func:`array_shapes`). Every dataset that a step extends exists afterwards, so that
    :func:`append_step` only resizes and writes.
    """
    root = _mesh(parent, layout, name, 0)
    for key in _PER_STEP:
        root[key].resize((0,))
    steps = root.create_group("Steps")
    steps.attrs.create("NSteps", np.int64(0))
    _growing(steps, "Values", (0,), np.float64)
    for key in _STEP_TABLES:
        _growing(steps, key, (0,), np.int64)
    offsets = steps.create_group("PointDataOffsets")
    for array, shape in shapes.items():
        _growing(root["PointData"], array, (0, *shape), np.float64, rows=max(layout.number_of_points, 1))
        _growing(offsets, array, (0,), np.int64)
    return root


def write(parent: Any, layout: Layout, fields: Mapping[str, Any], *, time: float | None = None,
          name: str = "VTKHDF") -> Any:  # fmt: skip
    """Write the mesh and ``fields`` (name to GridFunction, CoefficientFunction or point array).

    Without ``time`` the group has no ``Steps``; with it, it is a series of one step that
    :func:`append_step` can extend. ``parent`` is an open ``h5py.File`` (ParaView reads only the
    root's ``VTKHDF`` group); returns the new group. Usage::

        layout = ngser.vtk.sample(mesh, {"u": gfu})
        with h5py.File("result.vtkhdf", "w") as f:
            ngser.vtk.write(f, layout, {"u": gfu})
    """
    arrays = point_data(layout, fields)
    if time is not None:
        create_series(parent, layout, {k: tuple(a.shape[1:]) for k, a in arrays.items()}, name=name)
        append_step(parent, layout, arrays, time, name=name)
        return parent[name]
    root = _mesh(parent, layout, name, 1)
    for array, values in arrays.items():
        _growing(root["PointData"], array, values.shape, np.float64, values, rows=max(len(values), 1))
    return root


def append_step(parent: Any, layout: Layout, fields: Mapping[str, Any], time: float, *,
                keep: int | None = None, name: str = "VTKHDF") -> int:  # fmt: skip
    """Add a step at ``time`` with ``fields``' point data; returns the number of steps.

    Creates the series (:func:`create_series`) if ``parent`` has no group ``name`` yet. The point
    arrays (names and shapes) must be those of the series; the layout must have its numbers of
    points and cells. With ``keep`` the series keeps only the last ``keep`` steps: the new step
    reuses the rows of the step it drops (unlisted before they are overwritten), so the file stops
    growing. The point data is written into rows no listed step uses, and the step tables and
    ``Steps/NSteps`` change after it (HDF5 itself is not crash-safe: that is the caller's). Usage::

        layout = ngser.vtk.sample(mesh, {"u": gfu})
        with h5py.File("heat.vtkhdf", "a") as f:
            for n in range(steps):
                ...
                ngser.vtk.append_step(f, layout, {"u": gfu}, time=n * dt)
    """
    if keep is not None and (not isinstance(keep, int) or keep < 1):
        raise ValueError(f"ngser.vtk.append_step: keep must be a positive int or None, not {keep!r}")
    arrays = point_data(layout, fields)
    if name not in parent:
        create_series(parent, layout, {k: tuple(a.shape[1:]) for k, a in arrays.items()}, name=name)
    root = parent[name]
    steps = _series(root, layout, arrays)
    count = int(steps.attrs["NSteps"])
    n = layout.number_of_points
    drop = 0 if keep is None else max(0, count + 1 - keep)
    offsets = {array: steps["PointDataOffsets"][array][:count] for array in arrays}
    values = steps["Values"][:count]
    freed = {array: int(rows[drop - 1]) for array, rows in offsets.items()} if drop else {}
    if drop:  # first unlist the dropped steps, so that their rows belong to no listed step when rewritten
        offsets = {array: rows[drop:] for array, rows in offsets.items()}
        values = values[drop:]
        _set_steps(root, layout, offsets, values)
        count -= drop
    for array, block in arrays.items():
        data = root["PointData"][array]
        start = freed.get(array, int(offsets[array].max()) + n if count else 0)
        if start + n > data.shape[0]:
            data.resize((start + n, *data.shape[1:]))
        data[start : start + n] = block
        offsets[array] = np.append(offsets[array], start)
    _set_steps(root, layout, offsets, np.append(values, float(time)))
    return count + 1


def _set_steps(root: Any, layout: Layout, offsets: Mapping[str, np.ndarray], values: np.ndarray) -> None:
    """Write the step tables of ``len(values)`` steps, then ``NSteps``."""
    steps = root["Steps"]
    total = len(values)
    for array, rows in offsets.items():
        _set_table(steps["PointDataOffsets"][array], np.asarray(rows, dtype=np.int64))
    _set_table(steps["Values"], np.asarray(values, dtype=np.float64))
    zeros = np.zeros(total, dtype=np.int64)
    # One part, the same for every step: all offsets 0 (a part's Offsets has cells + 1 entries, and the
    # reader reads them from PartOffsets + CellOffsets on).
    _set_table(steps["NumberOfParts"], zeros + 1)
    for key in ("PartOffsets", "PointOffsets", "CellOffsets", "ConnectivityIdOffsets"):
        _set_table(steps[key], zeros)
    for key in _PER_STEP:
        _set_table(root[key], np.full(total, _count(layout, key), dtype=np.int64))
    steps.attrs["NSteps"] = np.int64(total)


def _count(layout: Layout, key: str) -> int:
    return {"NumberOfPoints": layout.number_of_points, "NumberOfCells": layout.number_of_cells,
            "NumberOfConnectivityIds": len(layout.connectivity)}[key]  # fmt: skip


def _set_table(dataset: Any, values: np.ndarray) -> None:
    dataset.resize((len(values),))
    dataset[:] = values


def _series(root: Any, layout: Layout, arrays: Mapping[str, np.ndarray]) -> Any:
    """The ``Steps`` group of ``root``, after checking that ``layout`` and ``arrays`` fit it."""
    if "Steps" not in root:
        raise ValueError(f"ngser.vtk.append_step: {root.name} was written without steps (write(..., time=None))")
    if root["Points"].shape[0] != layout.number_of_points or root["Types"].shape[0] != layout.number_of_cells:
        raise ValueError(
            f"ngser.vtk.append_step: {root.name} has {root['Points'].shape[0]} points and {root['Types'].shape[0]} "
            f"cells, the layout {layout.number_of_points} and {layout.number_of_cells}: a series has one mesh"
        )
    stored = {k: tuple(v.shape[1:]) for k, v in root["PointData"].items()}
    given = {k: tuple(v.shape[1:]) for k, v in arrays.items()}
    if stored != given:
        raise ValueError(
            f"ngser.vtk.append_step: the step's point arrays {given} differ from the series' {stored}; "
            "every step has the same arrays (VTK reads each array's offset at every step)"
        )
    return root["Steps"]


def times(parent: Any, *, name: str = "VTKHDF") -> np.ndarray:
    """The times of the steps of the series ``parent[name]`` (empty for a group without steps)."""
    root = parent[name]
    if "Steps" not in root:
        return np.zeros(0)
    return np.asarray(root["Steps"]["Values"][: int(root["Steps"].attrs["NSteps"])], dtype=np.float64)


def truncate_steps(parent: Any, count: int, *, name: str = "VTKHDF") -> None:
    """Keep only the first ``count`` steps of the series (undo appends, e.g. after a crash)."""
    steps = parent[name]["Steps"]
    if not 0 <= count <= int(steps.attrs["NSteps"]):
        raise ValueError(f"ngser.vtk.truncate_steps: the series has {int(steps.attrs['NSteps'])} steps, not {count}")
    steps.attrs["NSteps"] = np.int64(count)
    for key in ("Values", *_STEP_TABLES):
        steps[key].resize((count,))
    for key in _PER_STEP:
        parent[name][key].resize((max(count, 0),))
    for offsets in steps["PointDataOffsets"].values():
        offsets.resize((count,))
