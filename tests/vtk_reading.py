"""Reading VTKHDF files back with VTK's own reader (``vtkHDFReader``, ParaView's), for the tests.

Import it after ``pytest.importorskip("vtk")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import vtk
from vtk.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline

__all__ = ["reader_of", "read", "times_of", "node_error"]


def reader_of(path: Path) -> Any:
    """A ``vtkHDFReader`` of ``path`` that has read the file's information (steps, arrays)."""
    reader = vtk.vtkHDFReader()
    reader.SetFileName(str(path))
    reader.UpdateInformation()
    return reader


def read(path: Path, step: int | None = None) -> tuple[Any, Any]:
    """The reader and the grid it reads from ``path`` (at ``step`` of a series)."""
    reader = reader_of(path)
    if step is not None:
        reader.SetStep(step)
    reader.Update()
    return reader, reader.GetOutput()


def times_of(reader: Any) -> tuple[float, ...]:
    """The times VTK reports for the reader's steps (none for a file of one step)."""
    return tuple(reader.GetOutputInformation(0).Get(vtkStreamingDemandDrivenPipeline.TIME_STEPS()) or ())


def node_error(grid: Any, name: str, cf: Any, mesh: Any) -> float:
    """Largest difference between the point array ``name`` and ``cf`` at the nodes, found by NGSolve's
    point search (independent of the writer)."""
    pts = vtk_to_numpy(grid.GetPoints().GetData())
    located = mesh(pts[:, 0], pts[:, 1])
    assert np.all(located["nr"] >= 0)
    expected = np.asarray(cf(located)).reshape(len(pts), -1)
    got = vtk_to_numpy(grid.GetPointData().GetArray(name)).reshape(len(pts), -1)[:, : expected.shape[1]]
    return float(np.abs(got - expected).max())
