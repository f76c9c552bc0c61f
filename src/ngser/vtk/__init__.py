"""VTKHDF output: NGSolve meshes and fields as a VTK ``UnstructuredGrid`` that ParaView opens.

:func:`sample` maps every volume element of a mesh onto a VTK cell (linear at order 1, Lagrange
above) whose nodes are the element's mapped, possibly curved points; :func:`write` stores the
cells and fields' values at the nodes in a ``/VTKHDF`` group of an h5py file, and
:func:`append_step` adds steps of a time series (the mesh stored once). Sampling needs NGSolve,
imported when called; writing needs only h5py. Usage::

    import h5py
    import ngser.vtk

    layout = ngser.vtk.sample(mesh, {"u": gfu})       # cells of gfu's order
    with h5py.File("result.vtkhdf", "w") as f:
        ngser.vtk.write(f, layout, {"u": gfu})

    with h5py.File("series.vtkhdf", "a") as f:         # a time series, one step per call
        ngser.vtk.append_step(f, layout, {"u": gfu}, time=t)
"""

from ._fields import named_fields
from ._hdf import VERSION, append_step, array_shapes, create_series, times, truncate_steps, write
from ._sample import Layout, evaluate, field_order, point_data, sample

__all__ = [
    "Layout",
    "named_fields",
    "sample",
    "evaluate",
    "point_data",
    "field_order",
    "VERSION",
    "write",
    "append_step",
    "create_series",
    "array_shapes",
    "times",
    "truncate_steps",
]
