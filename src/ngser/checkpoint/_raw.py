"""What every part of a checkpoint file shares: datasets whose bytes are allocated when the file
is made (so that appends write them with ``pwrite`` and HDF5 never changes its metadata), and the
sync that orders those writes."""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

__all__ = ["contiguous", "one_chunk", "sync"]


def contiguous(group: Any, name: str, shape: tuple[int, ...], dtype: Any, data: Any = None) -> None:
    """Create the dataset ``group[name]``: contiguous, allocated now, never filled by HDF5, without
    a modification time (so that HDF5 rewrites none of its header later); ``data`` written if given."""
    _allocated(group, name, shape, dtype, data, chunked=False)


def one_chunk(group: Any, name: str, rows: int, dtype: Any) -> None:
    """Create ``group[name]`` as :func:`contiguous` does, but as one chunk of ``rows`` rows with an
    unlimited size: a dataset whose current size can be set (in place: 8 bytes of its header)
    without HDF5 allocating anything."""
    _allocated(group, name, (rows,), dtype, None, chunked=True)


def _allocated(group: Any, name: str, shape: tuple[int, ...], dtype: Any, data: Any, *, chunked: bool) -> None:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if chunked:
        dcpl.set_chunk(shape)
    else:
        dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # the room exists from the start
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    dcpl.set_obj_track_times(False)  # no modification time: a size change changes its 8 bytes only
    space = h5py.h5s.create_simple(shape, (h5py.h5s.UNLIMITED,) * len(shape) if chunked else None)
    h5py.h5d.create(group.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)
    if data is not None and data.size:
        group[name][...] = data


def sync(fd: int) -> None:
    """Make what was written to ``fd`` durable: ``fdatasync`` where there is one (the data and what
    is needed to read it back, such as newly allocated blocks, but not the modification time,
    which spares a journal commit), else ``fsync``. Used for every ordering point of an append."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)
