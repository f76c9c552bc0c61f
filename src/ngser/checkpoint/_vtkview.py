"""The VTKHDF view of a checkpoint: the ``/VTKHDF`` group ParaView reads, kept up to date by raw writes.

A checkpoint opened with ``vtk=True`` also holds a VTKHDF 2.0 ``UnstructuredGrid`` series (see
``docs/checkpoints.md``). Like the checkpoint's own datasets, every dataset of it is allocated when
the file is made (:func:`create_group`, run by ``create_file``), so a step is added without HDF5
touching its metadata:

- the step's point arrays go to a free *slot* of ``PointData/<name>`` (``slots * n`` rows), written
  with ``pwrite`` before the checkpoint's commit;
- after the commit the listing is *published*: ``Steps/Values`` and ``Steps/PointDataOffsets/<name>``
  rows are written for the kept steps, then two 8-byte fields of HDF5's object headers change in
  place: the ``NSteps`` attribute and the current size of ``Steps/Values`` (a chunked dataset of one
  chunk, whose size VTK requires to be exactly ``NSteps``). :func:`locate` finds those two fields
  when the file is made, by changing each through HDF5 and seeing which bytes changed.

The view is derived from the committed steps: a writer publishes it again whenever it opens the
file, which repairs a listing a killed writer left half written. VTK's reader reads less than
``NSteps`` values safely, but more values than ``NSteps`` overflow its buffer, so ``NSteps`` grows
first (``fsync``) and ``Values`` after, and shrinks in the other order.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from ..errors import FormatError
from ._raw import contiguous, one_chunk, sync

__all__ = ["Grid", "View", "create_group", "locate", "GROUP", "LOCATOR"]

GROUP = "/VTKHDF"
LOCATOR = "/ngser/checkpoint/vtk"  # int64 (7,): offsets of NSteps and of SIZED's sizes, format, crc32
_FORMAT = 1
#: Datasets whose current size is NSteps: VTK reads all of Steps/Values (more rows than NSteps
#: overflow its buffer), and with one step it takes the file for a static one whose parts are
#: the rows of NumberOfPoints/Cells/ConnectivityIds. Each is one chunk of ``slots`` rows.
SIZED = ("Steps/Values", "NumberOfPoints", "NumberOfCells", "NumberOfConnectivityIds")
_LOCATOR_ROWS = 2 + len(SIZED) + 1
_UNLIMITED = b"\xff" * 8
_PER_STEP = ("NumberOfPoints", "NumberOfCells", "NumberOfConnectivityIds")
_ZEROS = ("PartOffsets", "PointOffsets", "CellOffsets", "ConnectivityIdOffsets")


@dataclass(frozen=True)
class Grid:
    """The fixed part of a view: the cells of one mesh and the point arrays' names and row shapes."""

    points: np.ndarray[Any, Any]
    types: np.ndarray[Any, Any]
    connectivity: np.ndarray[Any, Any]
    offsets: np.ndarray[Any, Any]
    arrays: dict[str, tuple[int, ...]]

    @property
    def n(self) -> int:
        return int(self.points.shape[0])

    def same_cells(self, other: Grid) -> bool:
        """Whether ``other`` has these cells: the same types and connectivity, and points equal to
        rounding (a mesh loaded from the file maps its curved elements to within ~1e-15)."""
        pairs = ((self.types, other.types), (self.connectivity, other.connectivity), (self.offsets, other.offsets))
        if self.points.shape != other.points.shape or not all(a.shape == b.shape and np.array_equal(a, b)
                                                              for a, b in pairs):  # fmt: skip
            return False
        scale = float(np.abs(self.points).max(initial=1.0))
        return bool(np.abs(self.points - other.points).max(initial=0.0) <= 1e-12 * scale)


def create_group(file: h5py.File, grid: Grid, slots: int) -> None:
    """Create the view of ``grid`` with room for ``slots`` steps (an empty listing)."""
    root = file.create_group(GROUP)
    root.attrs.create("Version", np.array([2, 0], dtype=np.int64))
    root.attrs.create("Type", np.bytes_(b"UnstructuredGrid"))
    counts = (grid.n, len(grid.types), len(grid.connectivity))
    for key, count in zip(_PER_STEP, counts):
        one_chunk(root, key, slots, "<i8")
        root[key][...] = count
    contiguous(root, "Points", (grid.n, 3), "<f8", grid.points)
    contiguous(root, "Types", (len(grid.types),), "u1", grid.types)
    contiguous(root, "Connectivity", (len(grid.connectivity),), "<i8", grid.connectivity)
    contiguous(root, "Offsets", (len(grid.offsets),), "<i8", grid.offsets)
    data = root.create_group("PointData")
    steps = root.create_group("Steps")
    offsets = steps.create_group("PointDataOffsets")
    for name, shape in grid.arrays.items():
        contiguous(data, name, (slots * grid.n, *shape), "<f8")
        contiguous(offsets, name, (slots,), "<i8")
    steps.attrs.create("NSteps", np.int64(0))
    one_chunk(steps, "Values", slots, "<f8")
    contiguous(steps, "NumberOfParts", (slots,), "<i8", np.ones(slots, dtype=np.int64))
    for key in _ZEROS:
        contiguous(steps, key, (slots,), "<i8", np.zeros(slots, dtype=np.int64))
    rows = _LOCATOR_ROWS
    contiguous(file.require_group("/ngser/checkpoint"), "vtk", (rows,), "<i8", np.zeros(rows, dtype=np.int64))


def locate(path: str) -> np.ndarray[Any, Any]:
    """Find the file offsets of ``NSteps`` and of the current size of each :data:`SIZED` dataset
    in the new file ``path``: change each through HDF5 and compare the metadata bytes
    (everything outside the datasets' data) before and after. Leaves ``NSteps = 0`` and the
    sizes 0; returns the locator row to write at :data:`LOCATOR`."""
    with h5py.File(path, "r", locking=False) as file:
        slots = int(file[GROUP]["Steps/Values"].shape[0])
        metadata = _metadata_ranges(file, os.path.getsize(path))
    found: list[int] = []
    before = _read_ranges(path, metadata)
    for what in ("NSteps", *SIZED):
        with h5py.File(path, "r+", locking=False) as file:
            if what == "NSteps":
                file[GROUP]["Steps"].attrs.modify("NSteps", np.int64(-1))  # every byte of 0 changes
            else:
                file[GROUP][what].resize((slots - 1,))  # the lowest byte changes
        after = _read_ranges(path, metadata)
        found.append(_changed(before, after, 8 if what == "NSteps" else 1, what))
        before = after
    with open(path, "r+b") as raw:
        for offset in found:
            raw.seek(offset)
            raw.write(np.int64(0).tobytes())
    with h5py.File(path, "r", locking=False) as file:
        root = file[GROUP]
        if int(root["Steps"].attrs["NSteps"]) != 0 or any(root[name].shape != (0,) for name in SIZED):
            raise FormatError(f"{path}: could not locate the VTK view's step count; please report this")
    row = np.array([*found, _FORMAT, 0], dtype="<i8")
    row[-1] = zlib.crc32(row[:-1].tobytes())
    return row


def _metadata_ranges(file: h5py.File, size: int) -> list[tuple[int, int]]:
    """The byte ranges of the file outside every dataset's data."""
    data: list[tuple[int, int]] = []

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            offset = obj.id.get_offset()
            if offset is None:  # chunked: one chunk
                info = obj.id.get_chunk_info(0)
                offset, length = info.byte_offset, info.size
            else:
                length = obj.id.get_storage_size()
            data.append((int(offset), int(offset) + int(length)))

    file.visititems(visit)
    ranges, at = [], 0
    for start, end in sorted(data):
        if start > at:
            ranges.append((at, start))
        at = max(at, end)
    if size > at:
        ranges.append((at, size))
    return ranges


def _read_ranges(path: str, ranges: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    with open(path, "rb") as raw:
        out = []
        for start, end in ranges:
            raw.seek(start)
            out.append((start, raw.read(end - start)))
    return out


def _changed(old: list[tuple[int, bytes]], new: list[tuple[int, bytes]], least: int, what: str) -> int:
    found: list[int] = []
    for (start, a), (_, b) in zip(old, new):
        if a != b:
            diff = np.flatnonzero(np.frombuffer(a, np.uint8) != np.frombuffer(b, np.uint8))
            found.extend(start + int(i) for i in diff)
    if not least <= len(found) <= 8 or found[-1] - found[0] >= 8:
        raise FormatError(f"HDF5 stored {what} in an unexpected way ({len(found)} bytes changed); please report this")
    return found[0]


class View:
    """The view of an open checkpoint: where its parts lie, checked, and the writes that update it."""

    def __init__(self, path: str, fd: int, file: h5py.File) -> None:
        self.path = path
        self.fd = fd
        root = file[GROUP]
        steps = root["Steps"]
        self.slots = int(root["Steps/Values"].chunks[0]) if root["Steps/Values"].chunks else 0
        self.n = int(root["Points"].shape[0])
        self.arrays = {name: tuple(d.shape[1:]) for name, d in root["PointData"].items()}
        self.data_at = {name: _offset(d, self.slots * self.n, "<f8", path) for name, d in root["PointData"].items()}
        offsets = steps["PointDataOffsets"]
        self.offsets_at = {name: _offset(offsets[name], self.slots, "<i8", path) for name in self.arrays}
        for name in SIZED:
            dataset = root[name]
            if dataset.chunks != (self.slots,) or dataset.id.get_create_plist().get_nfilters() != 0:
                raise FormatError(f"{path}: {GROUP}/{name} is not laid out as ngser writes it; the file is damaged")
        self.values_at = int(steps["Values"].id.get_chunk_info(0).byte_offset)
        row = np.asarray(file[LOCATOR][...], dtype="<i8")
        if row.shape != (_LOCATOR_ROWS,) or zlib.crc32(row[:-1].tobytes()) != row[-1] or row[-2] != _FORMAT:
            raise FormatError(f"{path}: {LOCATOR} is damaged")
        self.nsteps_at, self.sizes_at = int(row[0]), [int(v) for v in row[1 : 1 + len(SIZED)]]
        listed = int(steps.attrs["NSteps"])
        fields = [(self.nsteps_at, np.int64(listed).tobytes())]
        fields += [(at, np.int64(root[name].shape[0]).tobytes() + _UNLIMITED) for at, name in zip(self.sizes_at, SIZED)]
        if any(os.pread(fd, len(value), at) != value for at, value in fields):
            raise FormatError(f"{path}: {LOCATOR} does not point at the VTK view's step count; the file is damaged")
        self.listed = listed

    def grid(self, file: h5py.File) -> Grid:
        root = file[GROUP]
        return Grid(root["Points"][...], root["Types"][...], root["Connectivity"][...], root["Offsets"][...],
                    dict(self.arrays))  # fmt: skip

    def slot_bytes(self, name: str) -> int:
        return self.n * int(np.prod(self.arrays[name], dtype=np.int64)) * 8

    def write_slot(self, slot: int, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
        """Write one step's point arrays into ``slot`` (not listed: the caller's)."""
        for name, block in arrays.items():
            data = np.ascontiguousarray(block, dtype="<f8")
            os.pwrite(self.fd, data.data.cast("B"), self.data_at[name] + slot * self.slot_bytes(name))

    def publish(self, listing: list[tuple[float, int]]) -> None:
        """List ``(time, slot)`` of the steps VTK shows, oldest first.

        A step's time and its data offset are two writes: rows VTK already lists are rewritten
        only while the listing is hidden (``NSteps`` 0), so a writer killed between the two
        leaves no step listed with another step's values (a rolling ``keep=`` view shifts its
        rows at every step; a growing one only adds rows beyond ``NSteps``)."""
        count = len(listing)
        times = np.array([t for t, _ in listing], dtype="<f8")
        rows = np.array([s for _, s in listing], dtype="<i8") * self.n
        shown = min(self.listed, count)
        if shown and self._rows_differ(times[:shown], rows[:shown]):
            self._resize(0)
        if count:
            os.pwrite(self.fd, times.tobytes(), self.values_at)
            for name in self.arrays:
                os.pwrite(self.fd, rows.tobytes(), self.offsets_at[name])
        self._resize(count)

    def _rows_differ(self, times: np.ndarray[Any, Any], rows: np.ndarray[Any, Any]) -> bool:
        old_times = np.frombuffer(os.pread(self.fd, times.nbytes, self.values_at), dtype="<f8")
        if not np.array_equal(old_times, times):
            return True
        return any(
            not np.array_equal(np.frombuffer(os.pread(self.fd, rows.nbytes, self.offsets_at[name]), dtype="<i8"), rows)
            for name in self.arrays
        )

    def _resize(self, count: int) -> None:
        """Show ``count`` listed steps. Growing: the per-step counts first (VTK reads more rows
        than NSteps safely), then NSteps, then Values (fewer rows than NSteps are safe);
        shrinking in the other order."""
        if count == self.listed:
            return
        value = np.int64(count).tobytes()
        order = [self.sizes_at[1:], [self.nsteps_at], self.sizes_at[:1]]
        for group in order if count > self.listed else order[::-1]:
            for at in group:
                os.pwrite(self.fd, value, at)
            sync(self.fd)
        self.listed = count


def _offset(dataset: Any, rows: int, dtype: str, path: str) -> int:
    offset = dataset.id.get_offset()
    plist = dataset.id.get_create_plist()
    if offset is None or dataset.shape[:1] != (rows,) or dataset.dtype != np.dtype(dtype):
        raise FormatError(f"{path}: {dataset.name} is not laid out as ngser writes it; the file is damaged")
    if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_nfilters() or plist.get_external_count():
        raise FormatError(f"{path}: {dataset.name} is not laid out as ngser writes it; the file is damaged")
    if offset + dataset.id.get_storage_size() > os.path.getsize(path):
        raise FormatError(f"{path}: {dataset.name} lies outside the file; the file is damaged")
    return int(offset)
