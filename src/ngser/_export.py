"""VTKHDF files that ParaView opens, made from saved objects: ``ngser export`` and ``save(..., vtk=True)``.

>>> ngser.export("result.h5", "result.vtkhdf")          # any saved file (msgpack, pickle, HDF5)
>>> ngser.export("heat.h5", "heat.vtkhdf")              # a checkpoint: a series, the mesh once
>>> ngser.save({"u": gfu}, "result.vtkhdf", vtk=True)   # an ngser HDF5 file with a /VTKHDF group

Every GridFunction found under a name (a dict key, see :func:`ngser.vtk.named_fields`) becomes
point data of that name on VTK cells of the fields' order (``docs/vtk.md``). Sampling needs
NGSolve; loading is safe (``trusted=False``) unless asked otherwise. The file is written
atomically: a failed export or save leaves the previous file as it was.

This is a front-end: the backends know no class, so the ``/VTKHDF`` group of ``save(vtk=True)``
is added here, to the temporary file, before it is renamed over the target.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .api import Format, PathLike, load, sniff_file
from .atomic import atomic_write
from .backends import DEFAULT_LIMITS, Limits, format_for_path
from .errors import ArgumentError, NgserError, NgserWarning, shown

__all__ = ["export", "command", "vtk_writer", "vtk_format", "VTK_SUFFIXES"]

#: The names ParaView opens with its VTKHDF reader; ``save(vtk=True)`` saves them as HDF5.
VTK_SUFFIXES = (".vtkhdf", ".hdf")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


# -- save(..., vtk=True) ------------------------------------------------------------------
def vtk_format(vtk: Any, target: str | None, format: str | None) -> Format:
    """The format of a ``save(..., vtk=...)``: HDF5, or an :class:`ArgumentError` saying what to do."""
    if vtk is not True:
        raise ArgumentError(f"vtk= must be True or False, not {shown(vtk)}")
    if target is None:
        raise ArgumentError("vtk=True writes into an HDF5 file on disk: save to a path, not a file object")
    if format is None:
        suffix = os.path.splitext(target)[1].lower()
        format = "hdf5" if suffix in VTK_SUFFIXES else format_for_path(target)
    if format != "hdf5":
        raise ArgumentError(
            f"vtk=True adds a /VTKHDF group to an HDF5 file, so it needs format='hdf5' (not {format!r}); "
            f"or save as {format} and run `ngser export FILE OUT.vtkhdf`"
        )
    return "hdf5"


def vtk_writer(obj: Any, target: str | None) -> Callable[[str], None]:
    """What ``save(obj, path, vtk=True)`` runs on the written (closed) temporary HDF5 file: adds the
    ``/VTKHDF`` group of ``obj``'s named GridFunctions. The fields are sampled now, before the file
    is written, so an object that has none fails before anything is written."""
    layout, arrays = _sampled(obj, f"{target} (save with vtk=True)", None)

    def write(temp: str) -> None:
        import h5py

        from . import vtk

        with h5py.File(temp, "a") as file:
            vtk.write(file, layout, arrays)

    return write


# -- export ----------------------------------------------------------------------------------
def export(
    src: PathLike,
    dst: PathLike,
    *,
    order: int | None = None,
    step: int | None = None,
    trusted: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> None:
    """Write the GridFunctions of the file ``src`` as the VTKHDF file ``dst`` (name it ``.vtkhdf``).

    A saved object gives a grid without steps. A checkpoint (:class:`ngser.Checkpoint`) gives a
    series with one step per kept step, at the step's time, the mesh stored once; ``step=k``
    exports its step ``k`` alone, without steps. Every step must have the same mesh (the same cells
    and node positions) and the same fields: a series whose mesh changes (refined, moved) is an
    :class:`ArgumentError` that says to export single steps. ``order`` sets the cells' Lagrange
    order (default: the fields' and the mesh's curve order). Fields on another mesh than the
    first field's are left out with a warning. Needs NGSolve.

    >>> ngser.export("heat.h5", "heat.vtkhdf")
    >>> ngser.export("heat.h5", "last.vtkhdf", step=-1, order=2)
    """
    source, target = os.fspath(src), os.fspath(dst)
    if order is not None and (type(order) is not int or order < 1):
        raise ArgumentError(f"order must be a positive int or None, not {shown(order)}")
    if step is not None and type(step) is not int:
        raise ArgumentError(f"step must be an int or None, not {shown(step)}")
    if os.path.exists(target) and os.path.exists(source) and os.path.samefile(source, target):
        raise ArgumentError(f"{target}: is the source file; give another name to export to")
    _require_ngsolve("ngser export")
    from .checkpoint._describe import is_checkpoint

    sniff_file(source)  # a missing or foreign file: a clear error before anything else
    if is_checkpoint(source):
        _export_checkpoint(source, target, order, step, trusted, limits)
        return
    if step is not None:
        raise ArgumentError(f"{source}: step= is for checkpoints; this file holds one saved object")
    layout, arrays = _sampled(load(source, trusted=trusted, limits=limits), source, order)
    atomic_write(target, lambda temp: _write_static(temp, layout, arrays))


def command(args: Any) -> int:
    """``ngser export SRC DST [--order N] [--step K] [--trusted]`` (registered by :mod:`ngser.cli`)."""
    export(args.src, args.dst, order=args.order, step=args.step, trusted=args.trusted)
    return 0


def _write_static(temp: str, layout: Any, arrays: dict[str, np.ndarray]) -> None:
    import h5py

    from . import vtk

    with h5py.File(temp, "w") as file:
        vtk.write(file, layout, arrays)


def _export_checkpoint(
    source: str, target: str, order: int | None, step: int | None, trusted: bool, limits: Limits
) -> None:
    from .checkpoint import Checkpoint

    with Checkpoint(source, mode="r", trusted=trusted, limits=limits) as ck:
        if step is not None:
            layout, arrays = _sampled(ck.load(step), f"{source} (step {step})", order)
            atomic_write(target, lambda temp: _write_static(temp, layout, arrays))
            return
        if not len(ck):
            raise ArgumentError(f"{source}: the checkpoint has no steps; there is nothing to export")
        atomic_write(target, lambda temp: _write_series(temp, ck, source, order))


def _write_series(temp: str, ck: Any, source: str, order: int | None) -> None:
    """Every kept step of ``ck`` as one step of a series: the first step's mesh, sampled once."""
    import h5py

    from . import vtk

    left_out = _LeftOut()
    first: Any = None  # the layout the series' mesh was written from
    current: Any = None  # the layout of the last step's mesh (steps loaded from ck share meshes)
    with h5py.File(temp, "w") as file:
        for index, time in enumerate(ck.times):
            what = f"{source} (step {index})"
            mesh, fields = _fields(ck.load(index), what, left_out, index)
            if current is None or mesh is not current.mesh:
                current = _sample(mesh, what, fields, order if first is None else first.order)
                if first is None:
                    first = current
                elif not _same_cells(first, current):
                    raise ArgumentError(
                        f"{what}: the mesh differs from step 0's ({current.number_of_cells} cells and "
                        f"{current.number_of_points} nodes, step 0: {first.number_of_cells} and "
                        f"{first.number_of_points}, or moved nodes); a series holds one mesh: export single "
                        "steps (step=K, `ngser export --step K`)"
                    )
            arrays = _point_data(current, fields, what, left_out, index)
            try:
                vtk.append_step(file, first, arrays, time)
            except ValueError as exc:
                raise ArgumentError(f"{what}: {exc}") from None
    left_out.warn(source, steps=True)


# -- fields and sampling ---------------------------------------------------------------------
def _require_ngsolve(what: str) -> None:
    """Import NGSolve, or say how to install it."""
    try:
        import ngsolve  # noqa: F401
    except ImportError as exc:
        raise NgserError(
            f"{what} samples the fields with NGSolve, which is not installed ({exc}); run pip install 'ngser[ngsolve]'"
        ) from exc


class _LeftOut:
    """The named GridFunctions left out of a VTK grid, why, and in which steps; warned about once."""

    def __init__(self) -> None:
        self.reasons: dict[str, tuple[str, list[int]]] = {}

    def add(self, name: str, why: str, step: int) -> None:
        self.reasons.setdefault(name, (why, []))[1].append(step)

    def warn(self, what: str, *, steps: bool = False) -> None:
        if not self.reasons:
            return
        listed = "; ".join(
            f"{name!r} ({why}{f', steps {_ranges(at)}' if steps else ''})" for name, (why, at) in self.reasons.items()
        )
        level, frame = 2, sys._getframe(1)  # attributed to the caller's line that called into ngser
        while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
            level, frame = level + 1, frame.f_back  # type: ignore[assignment]
        warnings.warn(f"{what}: left out of the VTK grid: {listed}", NgserWarning, stacklevel=level)


def _fields(obj: Any, what: str, left_out: _LeftOut, step: int = 0) -> tuple[Any, dict[str, Any]]:
    """The mesh and named fields of ``obj``, or an :class:`ArgumentError`; fields on other meshes
    go to ``left_out``."""
    from . import vtk

    mesh, fields, skipped = vtk.named_fields(obj)
    if mesh is None or not fields:
        raise ArgumentError(
            f"{what}: found no GridFunction under a name (a dict key, e.g. {{'u': gfu}}), so there is no "
            "VTK point data to write; save the GridFunctions in a dict, or save without vtk=True"
        )
    for name in skipped:
        left_out.add(name, "on another mesh than the first field's: a VTK grid holds one mesh", step)
    return mesh, fields


def _sampled(obj: Any, what: str, order: int | None) -> tuple[Any, dict[str, np.ndarray]]:
    """The layout of ``obj``'s named fields and their point arrays; warns about fields left out."""
    left_out = _LeftOut()
    mesh, fields = _fields(obj, what, left_out)
    layout = _sample(mesh, what, fields, order)
    arrays = _point_data(layout, fields, what, left_out)
    left_out.warn(what)
    return layout, arrays


def _sample(mesh: Any, what: str, fields: dict[str, Any], order: int | None) -> Any:
    from . import vtk

    try:
        layout = vtk.sample(mesh, fields, order=order)
    except NgserError:
        raise
    except Exception as exc:  # ValueError of ngser.vtk, NgException of NGSolve
        raise ArgumentError(f"{what}: its mesh cannot be sampled on VTK cells ({type(exc).__name__}: {exc})") from exc
    if not layout.number_of_cells:
        raise ArgumentError(
            f"{what}: the fields' mesh has no volume elements (a surface or empty mesh?); VTK output covers "
            "volume elements only"
        )
    return layout


def _point_data(
    layout: Any, fields: dict[str, Any], what: str, left_out: _LeftOut, step: int = 0
) -> dict[str, np.ndarray]:
    """The point arrays of the fields NGSolve evaluates in volume elements; the others (facet
    spaces) go to ``left_out``, and none at all is an :class:`ArgumentError`."""
    from . import vtk

    arrays: dict[str, np.ndarray] = {}
    failed: list[str] = []
    for name, field in fields.items():
        try:
            arrays.update(vtk.point_data(layout, {name: field}))
        except NgserError:
            raise
        except Exception as exc:  # a space NGSolve cannot evaluate in volume elements (facet spaces)
            left_out.add(name, f"NGSolve cannot evaluate it in the elements: {type(exc).__name__}: {exc}", step)
            failed.append(name)
    if not arrays:
        raise ArgumentError(
            f"{what}: none of the GridFunctions {', '.join(failed)} can be evaluated in the mesh's volume elements "
            "(facet or surface spaces?), so there is no VTK point data to write"
        )
    return arrays


def _same_cells(a: Any, b: Any) -> bool:
    pairs = ((a.points, b.points), (a.types, b.types), (a.connectivity, b.connectivity), (a.offsets, b.offsets))
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in pairs)


def _ranges(steps: list[int]) -> str:
    """``0-3, 7`` for ``[0, 1, 2, 3, 7]``."""
    parts: list[str] = []
    start = prev = steps[0]
    for s in [*steps[1:], None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(parts)
