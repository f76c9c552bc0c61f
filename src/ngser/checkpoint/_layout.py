"""The checkpoint file's HDF5 layout: making a new file, and checking an existing one's
datasets before any of them is read (``docs/checkpoints.md``)."""

from __future__ import annotations

import itertools
import os
import zlib
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from .._version import __version__
from ..atomic import atomic_write
from ..backends import DEFAULT_LIMITS
from ..backends._hdf5_checks import Inspector
from ..errors import FormatError, NgserError
from ._raw import contiguous
from ._vtkview import LOCATOR, Grid, View, create_group, locate

__all__ = [
    "Capacity",
    "Committed",
    "CHECKPOINT_KIND",
    "FORMAT",
    "ROOT",
    "TABLES",
    "OPTIONAL",
    "SLOT",
    "create_file",
    "layout",
    "is_checkpoint_file",
    "slot",
]

CHECKPOINT_KIND = "checkpoint"
FORMAT = 1
ROOT = "/ngser/checkpoint"
SLOT = 8  # seq, segments, deps, steps, first_live, data_end, format, crc
#: name -> (dtype, columns)
TABLES: dict[str, tuple[str, int]] = {
    "data": ("<u1", 1),
    "segments": ("<i8", 4),
    "deps": ("<i8", 1),
    "steps": ("<i8", 1),
    "times": ("<f8", 1),
    "views": ("<i8", 1),
    "commits": ("<i8", SLOT),
}
#: Tables a checkpoint written by an earlier ngser may lack (``views``: ngser 0.x before VTK views;
#: a missing table reads as all -1, "no step in a view").
OPTIONAL = frozenset({"views"})


@dataclass(frozen=True)
class Committed:
    """What the commit in force counts."""

    seq: int
    segments: int
    deps: int
    steps: int
    first_live: int
    data_end: int


@dataclass(frozen=True)
class Capacity:
    """Rows (bytes for ``data``) each dataset has room for."""

    data: int = 1 << 20
    segments: int = 1024
    deps: int = 4096
    steps: int = 1024

    def rows(self, name: str) -> int:
        return 2 if name == "commits" else int(getattr(self, "steps" if name in ("times", "views") else name))


def slot(c: Committed) -> np.ndarray[Any, Any]:
    row = np.array([c.seq, c.segments, c.deps, c.steps, c.first_live, c.data_end, FORMAT, 0], dtype="<i8")
    row[7] = zlib.crc32(row[:7].tobytes())
    return row


def create_file(path: str, capacity: Capacity, fill: Any = None, grid: Grid | None = None, slots: int = 0) -> None:
    """Write a new checkpoint file at ``path`` (atomically): empty, or filled by
    ``fill(file_descriptor, offsets, view)`` before its first commit slot is written. With a
    ``grid`` the file has a VTK view of it with room for ``slots`` steps (``view`` is its
    :class:`View`, else None)."""

    def write(temp: str) -> None:
        with h5py.File(temp, "w") as file:
            group = file.require_group("/ngser")
            group.attrs["format"] = np.int64(FORMAT)
            group.attrs["kind"] = np.bytes_(CHECKPOINT_KIND)  # fixed-width strings, as every ngser attribute
            group.attrs["ngser"] = np.bytes_(__version__)
            root = file.require_group(ROOT)
            for name, (dtype, columns) in TABLES.items():
                shape = (capacity.rows(name),) if columns == 1 else (capacity.rows(name), columns)
                contiguous(root, name, shape, dtype)
            if grid is not None:
                create_group(file, grid, slots)
        locator = locate(temp) if grid is not None else None
        offsets = layout(temp)
        fd = os.open(temp, os.O_RDWR)
        try:
            os.pwrite(fd, b"\0" * (2 * SLOT * 8), offsets["commits"][0])  # no valid slot yet
            view = None
            if locator is not None:
                with h5py.File(temp, "r", driver="sec2", locking=False) as file:
                    os.pwrite(fd, locator.tobytes(), file[LOCATOR].id.get_offset())
                    view = View(temp, fd, file)
            if fill is not None:
                fill(fd, offsets, view)
            os.pwrite(fd, slot(Committed(1, 0, 0, 0, 0, 0)).tobytes() if fill is None else b"", offsets["commits"][0])
            os.fsync(fd)
        finally:
            os.close(fd)

    atomic_write(path, write)


def layout(path: str) -> dict[str, tuple[int, int]]:
    """``name -> (file offset, rows)`` of every dataset, each checked to be what ngser writes."""
    try:
        file = h5py.File(path, "r", driver="sec2", locking=False)  # sec2: a file never opens others
    except OSError as exc:
        raise FormatError(f"{path}: not an HDF5 file ngser can read ({exc})") from exc
    try:
        with file:
            return _checked_layout(file, path)
    except NgserError:
        raise
    except Exception as exc:  # whatever h5py raises on a damaged structure
        raise FormatError(f"{path}: the checkpoint's HDF5 structure is damaged ({type(exc).__name__}: {exc})") from exc


def is_checkpoint_file(path: str) -> bool:
    """Whether the HDF5 file ``path`` says it is a checkpoint (``/ngser@kind``); its layout is
    checked when it is opened."""
    try:
        with h5py.File(path, "r", driver="sec2", locking=False) as file:
            return _says_checkpoint(file, path)
    except NgserError:
        return False
    except Exception:
        return False


def _says_checkpoint(file: h5py.File, path: str) -> bool:
    inspector = Inspector(file, path, DEFAULT_LIMITS)
    if not inspector.has_link("/ngser"):
        return False
    group = inspector.group("/ngser", f"{path}: /ngser")
    return inspector.attribute(group, "/ngser", "kind") in (CHECKPOINT_KIND, CHECKPOINT_KIND.encode())


def _checked_layout(file: h5py.File, path: str) -> dict[str, tuple[int, int]]:
    if not _says_checkpoint(file, path):
        raise FormatError(f"{path}: not an ngser checkpoint; open it with ngser.load")
    size = os.path.getsize(path)
    found: dict[str, tuple[int, int]] = {}
    root = file["/ngser"].get("checkpoint", getlink=True)
    if not isinstance(root, h5py.HardLink):
        raise FormatError(f"{path}: {ROOT} is missing or a link; the file is damaged")
    root = file[ROOT]
    for name, (dtype, columns) in TABLES.items():
        link = root.get(name, getlink=True)
        if link is None and name in OPTIONAL:
            continue
        if not isinstance(link, h5py.HardLink) or not isinstance(root[name], h5py.Dataset):
            raise FormatError(f"{path}: {ROOT}/{name} is missing or not a dataset; the file is damaged")
        dset = root[name]
        plist = dset.id.get_create_plist()
        shape_ok = dset.ndim == (1 if columns == 1 else 2) and (columns == 1 or dset.shape[1] == columns)
        plain = (
            plist.get_layout() == h5py.h5d.CONTIGUOUS and plist.get_external_count() == 0 and plist.get_nfilters() == 0
        )
        offset = dset.id.get_offset()
        if not shape_ok or dset.dtype != np.dtype(dtype) or not plain or offset is None:
            raise FormatError(f"{path}: {ROOT}/{name} is not laid out as ngser writes it; the file is damaged")
        rows = int(dset.shape[0])
        nbytes = rows * np.dtype(dtype).itemsize * columns
        if offset < 0 or offset + nbytes > size:
            raise FormatError(f"{path}: {ROOT}/{name} lies outside the file; the file is damaged")
        found[name] = (int(offset), rows)
    spans = sorted((o, o + r * np.dtype(TABLES[n][0]).itemsize * TABLES[n][1]) for n, (o, r) in found.items())
    if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
        raise FormatError(f"{path}: the checkpoint's datasets overlap; the file is damaged")
    return found
