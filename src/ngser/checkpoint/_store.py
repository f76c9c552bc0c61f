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
``fsync``s, then writes one commit slot (sequence number, the counts in use, CRC32) in one
``pwrite`` and ``fsync``s again. A reader takes the valid slot with the highest sequence number:
a writer killed at any moment leaves the previous commit whole. When a dataset is full, the
checkpoint is copied into a new file with twice the room and renamed over the old one (the
atomic save of every ngser file): again nothing committed can be lost.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np

from ..errors import FormatError
from ._layout import FORMAT, ROOT, SLOT, TABLES, Capacity, Committed, create_file, layout, slot

__all__ = ["Append", "Store"]


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
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def capacity(self) -> Capacity:
        rows = {name: self.offsets[name][1] for name in TABLES}
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

    def write_data(self, offset: int, data: bytes | memoryview) -> None:
        os.pwrite(self.fd, data, self.offsets["data"][0] + offset)

    def commit(self, state: Committed) -> None:
        """Make ``state`` the commit in force: the data written before is synced first."""
        os.fsync(self.fd)
        self.write_rows("commits", state.seq % 2, slot(state).reshape(1, SLOT))
        os.fsync(self.fd)
        self.state = state

    def grown(self, need: Capacity) -> Store:
        """A copy of this checkpoint with room for ``need`` (at least twice the old room of
        whatever was short), renamed over this file; this store is closed."""
        old = self.capacity()
        # Twice the old room, and at least twice what is needed now: a series of big steps copies
        # its data a few times at the start, then rarely.
        room = Capacity(
            *(
                max(getattr(old, f), 2 * getattr(old, f), 2 * getattr(need, f))
                if getattr(need, f) > getattr(old, f)
                else getattr(old, f)
                for f in ("data", "segments", "deps", "steps")
            )
        )
        state = self.state

        def fill(fd: int, offsets: dict[str, tuple[int, int]]) -> None:
            tables = {"segments": state.segments, "deps": state.deps, "steps": state.steps, "times": state.steps}
            for name, count in tables.items():
                itemsize = np.dtype(TABLES[name][0]).itemsize * TABLES[name][1]
                _copy(self.fd, self.offsets[name][0], fd, offsets[name][0], count * itemsize)
            _copy(self.fd, self.offsets["data"][0], fd, offsets["data"][0], state.data_end)
            os.pwrite(fd, slot(state).tobytes(), offsets["commits"][0] + (state.seq % 2) * SLOT * 8)

        create_file(self.path, room, fill)
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
        self.placed: list[tuple[int, bytes]] = []

    def _place(self, length: int) -> int:
        for i, (offset, size) in enumerate(self.free):
            if size >= length:
                self.free[i] = (offset + length, size - length)
                return offset
        offset = self.data_end
        self.data_end += length
        return offset

    def find_segment(self, data: bytes) -> int | None:
        """A live segment holding exactly ``data`` (compared byte for byte), or None."""
        store, crc = self.store, zlib.crc32(data)
        for segment in sorted(self.live):
            same = store.segment_size(segment) == len(data) and int(store._table[segment, 2]) == crc
            if same and store.segment_bytes(segment) == data:
                return segment
        return None

    def add_segment(self, data: bytes, deps: list[int]) -> int:
        """Place one segment (written at :meth:`commit`); its number."""
        state = self.store.state
        offset = self._place(len(data))
        number = state.segments + len(self.rows)
        self.rows.append(np.array([offset, len(data), zlib.crc32(data), state.deps + len(self.deps)], dtype="<i8"))
        self.deps.extend(deps)
        self.placed.append((offset, data))
        return number

    def commit(self, root_segment: int, time: float, keep: int | None) -> Store:
        """Write the segments, the step and the commit slot; the store to use from now on (a grown
        copy when the file was full)."""
        store = self.store
        state = store.state
        need = Capacity(self.data_end, state.segments + len(self.rows), state.deps + len(self.deps), state.steps + 1)
        have = store.capacity()
        if any(getattr(need, f) > getattr(have, f) for f in ("data", "segments", "deps", "steps")):
            store = store.grown(need)  # committed state copied; this append is written into the copy
        for offset, data in self.placed:
            store.write_data(offset, data)
        if self.rows:
            store.write_rows("segments", state.segments, np.stack(self.rows))
        if self.deps:
            store.write_rows("deps", state.deps, np.array(self.deps, dtype="<i8"))
        store.write_rows("steps", state.steps, np.array([root_segment], dtype="<i8"))
        store.write_rows("times", state.steps, np.array([time], dtype="<f8"))
        steps = state.steps + 1
        first_live = state.first_live if keep is None else max(state.first_live, steps - keep)
        new = Committed(state.seq + 1, need.segments, need.deps, steps, first_live, self.data_end)
        store.commit(new)
        if self.rows:
            store._table = np.concatenate([store._table, np.stack(self.rows)])
        store._deps = np.concatenate([store._deps, np.array(self.deps, dtype="<i8")])
        store._steps = np.append(store._steps, root_segment)
        store._times = np.append(store._times, time)
        return store


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
