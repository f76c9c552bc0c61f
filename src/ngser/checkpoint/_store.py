"""The checkpoint file: segments of bytes in one HDF5 file, appended crash-safely.

Layout (``docs/checkpoints.md``)::

    /ngser                        attributes format = 1, kind = "checkpoint", ngser
    /ngser/checkpoint/data        uint8 (capacity,): the segments' bytes
    /ngser/checkpoint/segments    int64 (capacity, 4): offset, length, crc32, first row in deps
    /ngser/checkpoint/deps        int64 (capacity,): the segments each segment refers to
    /ngser/checkpoint/steps       int64 (capacity,): each step's root segment
    /ngser/checkpoint/times       float64 (capacity,): each step's time
    /ngser/checkpoint/commits     int64 (2, 8): two commit slots

Every dataset is contiguous and allocated when the file is made, so an append never changes
HDF5's metadata: it writes bytes at known file offsets (``os.pwrite``) where no kept step points,
``fdatasync``s, then writes one commit slot (sequence number, the counts in use, CRC32) in one
``pwrite`` and ``fdatasync``s again. A reader takes the valid slot with the highest sequence number:
a writer killed at any moment leaves the previous commit whole. When a dataset is full, the
checkpoint is copied into a new file with twice the room and renamed over the old one (the
atomic save of every ngser file): again nothing committed can be lost.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import h5py
import numpy as np

from ..backends.msgpack_format import PlannedFile
from ..errors import FormatError
from ._layout import FORMAT, ROOT, SLOT, TABLES, Capacity, Committed, create_file, layout, slot
from ._raw import sync
from ._vtkview import GROUP, LOCATOR, Grid, View

__all__ = ["Append", "Store"]

_IOV_MAX = 1024  # buffers one pwritev takes (Linux's IOV_MAX)
_GROWTH = 4  # a full data dataset is copied into one this many times larger


class Store:
    """An open checkpoint file: its datasets' offsets, the commit in force, and its tables."""

    def __init__(self, path: str, *, writable: bool) -> None:
        self.path = path
        self.offsets = layout(path)
        self.fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            self.state = self._last_commit()
            self._table = self._rows("segments", self.state.segments).reshape(-1, 4)
            self._deps = self._rows("deps", self.state.deps)
            self._steps = self._rows("steps", self.state.steps)
            self._times = self._rows("times", self.state.steps)
            has_views = "views" in self.offsets
            self._views = self._rows("views", self.state.steps) if has_views else np.full(self.state.steps, -1)
            self.view: View | None = None
            self.grid: Grid | None = None
            if writable and has_views:
                self._open_view()
        except BaseException:
            os.close(self.fd)
            raise

    def _open_view(self) -> None:
        """Open the VTK view, if the file has one, and publish it again (repairs what a killed
        writer left half written)."""
        with h5py.File(self.path, "r", driver="sec2", locking=False) as file:
            if GROUP not in file or LOCATOR not in file:
                return
            self.view = View(self.path, self.fd, file)
            self.grid = self.view.grid(file)
        self.publish()

    def listing(self) -> list[tuple[float, int]]:
        """``(time, slot)`` of the kept steps that are in the VTK view."""
        return [(float(self._times[s]), int(self._views[s])) for s in self.live_steps if self._views[s] >= 0]

    def publish(self) -> None:
        if self.view is not None:
            self.view.publish(self.listing())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def capacity(self) -> Capacity:
        rows = {name: self.offsets[name][1] for name in TABLES if name in self.offsets}
        return Capacity(rows["data"], rows["segments"], rows["deps"], rows["steps"])

    def _rows(self, name: str, count: int) -> np.ndarray[Any, Any]:
        dtype, columns = TABLES[name]
        itemsize = np.dtype(dtype).itemsize * columns
        data = os.pread(self.fd, count * itemsize, self.offsets[name][0])
        if len(data) != count * itemsize:
            raise FormatError(f"{self.path}: {ROOT}/{name} is cut short; the file is damaged")
        rows: np.ndarray[Any, Any] = np.frombuffer(data, dtype=dtype).copy()
        return rows

    def _last_commit(self) -> Committed:
        slots = self._rows("commits", 2).reshape(2, SLOT)
        best: Committed | None = None
        cap = self.capacity()
        for row in slots:
            if zlib.crc32(row[:7].tobytes()) != row[7] or row[6] != FORMAT:
                continue
            seq, segments, deps, steps, first_live, data_end = (int(v) for v in row[:6])
            fits = (
                0 <= segments <= cap.segments
                and 0 <= deps <= cap.deps
                and 0 <= steps <= cap.steps
                and 0 <= first_live <= steps
                and 0 <= data_end <= cap.data
            )
            if fits and (best is None or seq > best.seq):
                best = Committed(seq, segments, deps, steps, first_live, data_end)
        if best is None:
            raise FormatError(f"{self.path}: no valid commit record in the checkpoint; the file is damaged")
        return best

    # -- reading -------------------------------------------------------------------------
    @property
    def live_steps(self) -> range:
        return range(self.state.first_live, self.state.steps)

    def step_segment(self, step: int) -> int:
        return int(self._steps[step])

    def step_time(self, step: int) -> float:
        return float(self._times[step])

    def times_of_live(self) -> list[float]:
        return [float(t) for t in self._times[self.state.first_live : self.state.steps]]

    def segment_size(self, segment: int) -> int:
        return int(self._table[segment, 1])

    def segment_bytes(self, segment: int) -> bytes:
        """The bytes of ``segment``, checked against its CRC."""
        if not 0 <= segment < self.state.segments:
            raise FormatError(f"{self.path}: segment {segment} does not exist; the file is damaged")
        offset, length, crc, _ = (int(v) for v in self._table[segment])
        if offset < 0 or length < 0 or offset + length > self.state.data_end:
            raise FormatError(f"{self.path}: segment {segment} lies outside the data; the file is damaged")
        data = os.pread(self.fd, length, self.offsets["data"][0] + offset)
        if len(data) != length or zlib.crc32(data) != crc:
            raise FormatError(f"{self.path}: segment {segment} fails its CRC32; the file is damaged")
        return data

    def segment_deps(self, segment: int) -> np.ndarray[Any, Any]:
        start = int(self._table[segment, 3])
        end = int(self._table[segment + 1, 3]) if segment + 1 < self.state.segments else self.state.deps
        if not 0 <= start <= end <= self.state.deps:
            raise FormatError(f"{self.path}: the references of segment {segment} are damaged")
        deps = self._deps[start:end]
        if ((deps < 0) | (deps >= segment)).any():
            raise FormatError(f"{self.path}: segment {segment} refers to a segment not before it; the file is damaged")
        return deps

    def live_segments(self) -> set[int]:
        """The segments the kept steps reach."""
        todo = [self.step_segment(s) for s in self.live_steps]
        seen: set[int] = set()
        while todo:
            segment = todo.pop()
            if segment in seen:
                continue
            if not 0 <= segment < self.state.segments:
                raise FormatError(f"{self.path}: a step refers to segment {segment}, which does not exist")
            seen.add(segment)
            todo.extend(int(d) for d in self.segment_deps(segment))
        return seen

    def free_ranges(self, live: set[int]) -> list[tuple[int, int]]:
        """``(offset, length)`` of the byte ranges below the data end that no live segment uses."""
        used = sorted((int(self._table[s, 0]), int(self._table[s, 1])) for s in live)
        free, at = [], 0
        for offset, length in used:
            if offset > at:
                free.append((at, offset - at))
            at = max(at, offset + length)
        if self.state.data_end > at:
            free.append((at, self.state.data_end - at))
        return free

    # -- writing -------------------------------------------------------------------------
    def write_rows(self, name: str, first: int, rows: np.ndarray[Any, Any]) -> None:
        dtype, columns = TABLES[name]
        data = np.ascontiguousarray(rows, dtype=dtype).tobytes()
        os.pwrite(self.fd, data, self.offsets[name][0] + first * np.dtype(dtype).itemsize * columns)

    def write_data(self, offset: int, pieces: list[Any]) -> None:
        """Write the buffers ``pieces`` one after the other from ``offset`` of the data, with as
        few system calls as the kernel allows (``pwritev``) and no copy."""
        at = self.offsets["data"][0] + offset
        views = [v for v in (memoryview(p).cast("B") for p in pieces) if v.nbytes]
        first = 0
        while first < len(views):
            batch = views[first : first + _IOV_MAX]
            written = os.pwritev(self.fd, batch, at) if hasattr(os, "pwritev") else os.pwrite(self.fd, batch[0], at)
            if written <= 0:
                raise OSError(f"{self.path}: the checkpoint's data could not be written")
            at += written
            while first < len(views) and written >= views[first].nbytes:  # what was written; a partial rest stays
                written -= views[first].nbytes
                first += 1
            if written:
                views[first] = views[first][written:]

    def commit(self, state: Committed) -> None:
        """Make ``state`` the commit in force: the data written before is synced first."""
        sync(self.fd)
        self.write_rows("commits", state.seq % 2, slot(state).reshape(1, SLOT))
        sync(self.fd)
        self.state = state

    def grown(self, need: Capacity, grid: Grid | None = None, slots: int = 0) -> Store:
        """A copy of this checkpoint with room for ``need`` (a multiple of the old room of
        whatever was short), renamed over this file; this store is closed. With ``grid`` the copy
        has a new VTK view of it (the old view's steps are not copied); else the old view, if
        any, is copied with room for ``slots`` steps."""
        old = self.capacity()
        # Whatever is short grows to at least twice what is needed now and _GROWTH times its old
        # room (twice for the tables): every byte of a long series is copied a third of a time on
        # average, and the room not yet used is a hole in the file (no disk) where files can have holes.
        room = Capacity(
            *(
                max(factor * getattr(old, f), 2 * getattr(need, f)) if getattr(need, f) > getattr(old, f)
                else getattr(old, f)
                for f, factor in (("data", _GROWTH), ("segments", 2), ("deps", 2), ("steps", 2))
            )
        )  # fmt: skip
        state, views = self.state, self._views
        old_view = self.view if grid is None else None
        if grid is None and self.view is not None:
            grid, slots = self.grid, max(slots, self.view.slots)

        def fill(fd: int, offsets: dict[str, tuple[int, int]], view: View | None) -> None:
            tables = {"segments": state.segments, "deps": state.deps, "steps": state.steps, "times": state.steps}
            for name, count in tables.items():
                itemsize = np.dtype(TABLES[name][0]).itemsize * TABLES[name][1]
                _copy(self.fd, self.offsets[name][0], fd, offsets[name][0], count * itemsize)
            _copy(self.fd, self.offsets["data"][0], fd, offsets["data"][0], state.data_end)
            kept = views if old_view is not None else np.full(state.steps, -1)
            os.pwrite(fd, np.ascontiguousarray(kept, dtype="<i8").tobytes(), offsets["views"][0])
            if old_view is not None and view is not None:
                for step in self.live_steps:
                    if views[step] >= 0:
                        for name in view.arrays:
                            size = view.slot_bytes(name)
                            at = int(views[step]) * size
                            _copy(self.fd, old_view.data_at[name] + at, fd, view.data_at[name] + at, size)
                view.publish(self.listing())  # listed before the copy replaces this file
            os.pwrite(fd, slot(state).tobytes(), offsets["commits"][0] + (state.seq % 2) * SLOT * 8)

        create_file(self.path, room, fill, grid, slots)
        self.close()
        return Store(self.path, writable=True)


class Append:
    """One append in progress: new segments and a step, written beyond the commit in force."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.live = store.live_segments()
        self.free = store.free_ranges(self.live)
        self.data_end = store.state.data_end
        self.rows: list[np.ndarray[Any, Any]] = []
        self.deps: list[int] = []
        self.placed: list[tuple[int, list[Any] | PlannedFile]] = []

    def _place(self, length: int) -> int:
        for i, (offset, size) in enumerate(self.free):
            if size >= length:
                self.free[i] = (offset + length, size - length)
                return offset
        offset = self.data_end
        self.data_end += length
        return offset

    def find_segment(self, data: bytes, crc: int) -> int | None:
        """A live segment holding exactly ``data`` (of CRC32 ``crc``; compared byte for byte), or None."""
        store = self.store
        for segment in sorted(self.live):
            same = store.segment_size(segment) == len(data) and int(store._table[segment, 2]) == crc
            if same and store.segment_bytes(segment) == data:
                return segment
        return None

    def add_segment(self, pieces: list[Any], length: int, crc: int, deps: list[int]) -> int:
        """Place one segment of ``length`` bytes in ``pieces`` (buffers, written at
        :meth:`commit`; they must not change until then) of CRC32 ``crc``; its number."""
        state = self.store.state
        offset = self._place(length)
        number = state.segments + len(self.rows)
        self.rows.append(np.array([offset, length, crc, state.deps + len(self.deps)], dtype="<i8"))
        self.deps.extend(deps)
        self.placed.append((offset, pieces))
        return number

    def add_planned(self, plan: PlannedFile, deps: list[int]) -> int:
        """Place one segment laid out by ``plan``: its arrays are written at :meth:`commit` while
        their CRC32s are computed, then its head; its number."""
        number = self.add_segment([], plan.length, 0, deps)
        self.placed[-1] = (self.placed[-1][0], plan)
        return number

    def commit(
        self,
        root_segment: int,
        time: float,
        keep: int | None,
        arrays: dict[str, np.ndarray[Any, Any]] | None = None,
        grid: Grid | None = None,
    ) -> Store:
        """Write the segments, the step (with ``arrays`` in the VTK view; ``grid``: in a new view
        of that grid) and the commit slot; the store to use from now on (a grown copy when the
        file was full)."""
        store = self.store
        state = store.state
        need = Capacity(self.data_end, state.segments + len(self.rows), state.deps + len(self.deps), state.steps + 1)
        have = store.capacity()
        full = any(getattr(need, f) > getattr(have, f) for f in ("data", "segments", "deps", "steps"))
        slot_of_step = -1
        if arrays is not None:
            slot_of_step, slots = self._free_slot(keep)
            if grid is not None or slot_of_step < 0 or "views" not in store.offsets:
                store = store.grown(need, grid, slots)  # a new view of grid, or the old one with more slots
                slot_of_step = 0 if grid is not None else self._free_slot(keep, store)[0]
                full = False  # grown with room for need
        if full:
            store = store.grown(need)  # committed state copied; this append is written into the copy
        if arrays is not None and store.view is not None:
            store.view.write_slot(slot_of_step, arrays)
        for index, (offset, pieces) in enumerate(self.placed):
            row = self.rows[index]
            if isinstance(pieces, PlannedFile):
                store.write_data(offset + pieces.data_at, pieces.data)  # while the pool checksums them
                done = pieces.finish()
                if done is None:  # no head fits the plan: the plain layout, never longer
                    flat, row[1], row[2] = pieces.sequential()
                    store.write_data(offset, flat)
                else:
                    store.write_data(offset, [done[0]])
                    row[2] = done[1]
            else:
                store.write_data(offset, pieces)
        if self.rows:
            store.write_rows("segments", state.segments, np.stack(self.rows))
        if self.deps:
            store.write_rows("deps", state.deps, np.array(self.deps, dtype="<i8"))
        store.write_rows("steps", state.steps, np.array([root_segment], dtype="<i8"))
        store.write_rows("times", state.steps, np.array([time], dtype="<f8"))
        if "views" in store.offsets:
            store.write_rows("views", state.steps, np.array([slot_of_step], dtype="<i8"))
        steps = state.steps + 1
        first_live = state.first_live if keep is None else max(state.first_live, steps - keep)
        new = Committed(state.seq + 1, need.segments, need.deps, steps, first_live, self.data_end)
        store.commit(new)
        if self.rows:
            store._table = np.concatenate([store._table, np.stack(self.rows)])
        store._deps = np.concatenate([store._deps, np.array(self.deps, dtype="<i8")])
        store._steps = np.append(store._steps, root_segment)
        store._times = np.append(store._times, time)
        store._views = np.append(store._views, slot_of_step)
        store.publish()
        return store

    def _free_slot(self, keep: int | None, store: Store | None = None) -> tuple[int, int]:
        """A VTK slot no kept step uses (-1: none), and the slots a grown view should have."""
        store = store if store is not None else self.store
        used = {int(store._views[s]) for s in store.live_steps if store._views[s] >= 0}
        have = store.view.slots if store.view is not None else 0
        free = next((k for k in range(have) if k not in used), -1)
        wanted = (keep + 1) if keep is not None else max(4, 2 * have)
        return free, max(wanted, len(used) + 1)


def _copy(src: int, src_at: int, dst: int, dst_at: int, length: int) -> None:
    """Copy ``length`` bytes between two files, in the kernel where it can (``copy_file_range``)."""
    done = 0
    copy_range = getattr(os, "copy_file_range", None)
    while done < length and copy_range is not None:
        try:
            n = copy_range(src, dst, length - done, src_at + done, dst_at + done)
        except OSError:
            break  # not supported between these files: copy through memory
        if n <= 0:
            break
        done += n
    block = 1 << 24
    while done < length:
        n = min(block, length - done)
        data = os.pread(src, n, src_at + done)
        if not data:
            raise OSError(f"the checkpoint ended {length - done} bytes early while it was copied")
        os.pwrite(dst, data, dst_at + done)
        done += len(data)
