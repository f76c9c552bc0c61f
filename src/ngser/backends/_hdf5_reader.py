"""Reading ngser HDF5 files: the node table at once, arrays at once or lazily.

Used by :class:`~ngser.backends.hdf5_format.HDF5Backend`; the layout is in
:mod:`.hdf5_layout` and ``docs/format.md``.

>>> with h5py.File("result.h5", "r") as file:
...     graph = read_file(file, "result.h5")              # every array read and checked
>>> file = h5py.File("result.h5", "r")
>>> graph = read_file(file, "result.h5", lazy=True)        # arrays read (and checked) when loaded
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from ..errors import FormatError
from ..graph import ArrayNode, Graph, make_node
from . import DEFAULT_LIMITS, Limits
from . import hdf5_layout as layout
from ._arrays import ArrayEntry, LazyArray
from ._checksum import crc32_async
from ._codec import check_format, unpack_value_document

__all__ = ["read_file", "why"]


def why(exc: BaseException) -> str:
    """A short reason from an h5py exception (without HDF5's error-stack details)."""
    return str(exc).split("(", 1)[0].strip() or type(exc).__name__


def read_file(file: h5py.File, source: str, *, lazy: bool = False, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """The graph stored in the open HDF5 ``file``; with ``lazy=True`` the arrays stay in
    the file (which must stay open) until they are loaded. ``limits`` bound what the file may
    ask for beyond its size."""
    group = file.get(layout.GROUP)
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{source}: an HDF5 file, but not one written by ngser (it has no {layout.GROUP} group)")
    attrs = group.attrs
    version = attrs.get("format")
    check_format(int(version) if isinstance(version, np.integer) else version, source)
    try:
        doc = _read_all(file, layout.GRAPH, np.uint8)
        ids = _read_all(file, layout.NODE_IDS, np.dtype("<i8"))
        types = _read_all(file, layout.NODE_TYPES, np.dtype("<u4"))
        versions = _read_all(file, layout.NODE_VERSIONS, np.dtype("<i8"))
        names = _read_names(file)
        writers = json.loads(_text(attrs["writers"]))
        ngser_version = _text(attrs.get("ngser", b""))
        stored_crc = int(attrs["crc32"])
    except Exception as exc:  # h5py raises KeyError, OSError, ValueError... on damaged files
        raise FormatError(f"{source}: the node table is damaged or missing ({why(exc)})") from exc
    if layout.graph_crc(doc, ids, types, versions, names) != stored_crc:
        raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
    body = unpack_value_document(doc.data, source)
    if not isinstance(body, dict) or not isinstance(writers, dict):
        raise FormatError(f"{source}: the graph document is damaged")
    states, table = body.get("states"), body.get("arrays")
    if not isinstance(states, list) or not isinstance(table, list):
        raise FormatError(f"{source}: the graph document is damaged")
    if not len(ids) == len(types) == len(versions) == len(states):
        raise FormatError(f"{source}: the node table is damaged (its columns differ in length)")
    if len(types) and int(types.max()) >= len(names):
        raise FormatError(f"{source}: the node table is damaged (a type index is out of range)")
    type_names = [names[i] for i in types.tolist()]
    nodes = list(map(make_node, zip(ids.tolist(), type_names, versions.tolist(), states)))
    entries = [_entry(row, source) for row in table]
    reader = _Reader(file, source)
    if lazy:
        arrays = [ArrayNode(e.id, LazyArray(e, reader.read_copy), e.label) for e in entries]
    else:  # checksums run on the pool of ngser's checksum module while the next array is read
        read = [(e, buffer, crc32_async(buffer)) for e, buffer in ((e, reader.read(e)) for e in entries)]
        arrays = [ArrayNode(e.id, e.array(b, job.result()), e.label) for e, b, job in read]
    meta = {"ngser": ngser_version, "format": int(version)}
    return Graph(body.get("root"), nodes, arrays, writers, meta)


def _entry(row: Any, source: str) -> ArrayEntry:
    """One row of the array table, checked, with its storage kind and location."""
    entry = ArrayEntry.parse(row, layout.ROW, source)
    kind, location = entry.kind, entry.location
    if kind == layout.KIND_PACKED and type(location) is int and location >= 0:
        pass
    elif kind in (layout.KIND_NATIVE, layout.KIND_RAW) and isinstance(location, str):
        entry.where += f" ({location})"
    else:
        raise FormatError(f"{entry.where}: unknown storage kind {kind!r}; the file is damaged or newer than ngser")
    return entry


class _Reader:
    """Reads the bytes of array entries from one open file; the packed small arrays are read once."""

    def __init__(self, file: h5py.File, source: str) -> None:
        self.file, self.source = file, source
        self._packed: np.ndarray[Any, Any] | None = None

    def packed(self) -> np.ndarray[Any, Any]:
        if self._packed is None:
            try:
                self._packed = _read_all(self.file, layout.PACKED, np.uint8)
            except Exception as exc:
                raise FormatError(
                    f"{self.source}: the packed small arrays cannot be read ({why(exc)}); damaged file"
                ) from exc
        return self._packed

    def read(self, entry: ArrayEntry) -> np.ndarray[Any, Any]:
        """The entry's bytes (uint8), not checked yet; packed arrays are views of the packed block."""
        if entry.kind == layout.KIND_PACKED:
            packed, start = self.packed(), int(entry.location)
            if start + entry.nbytes > packed.size:
                raise FormatError(f"{entry.where}: it lies outside {layout.PACKED}; the file is damaged")
            return packed[start : start + entry.nbytes]
        native = entry.kind == layout.KIND_NATIVE
        stored = (entry.shape[::-1] if entry.fortran else entry.shape) if native else (entry.nbytes,)
        out = np.empty(stored, entry.dtype if native else np.uint8)
        try:
            dataset = self.file[entry.location]
            if tuple(dataset.shape) != stored:
                raise FormatError(
                    f"{entry.where}: the dataset has shape {dataset.shape}, the array table says {stored}"
                )
            if out.size:
                dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        except FormatError:
            raise
        except Exception as exc:
            raise FormatError(f"{entry.where}: the dataset cannot be read ({why(exc)}); the file is damaged") from exc
        flat = out.reshape(-1)
        return flat.view(np.uint8) if flat.size else np.empty(0, np.uint8)

    def read_copy(self, entry: ArrayEntry) -> np.ndarray[Any, Any]:
        """:meth:`read`, in a buffer of the entry's own (for lazy arrays, which outlive the block)."""
        buffer = self.read(entry)
        return buffer.copy() if entry.kind == layout.KIND_PACKED else buffer


def _text(value: Any) -> str:
    """A text attribute (fixed-width bytes as ngser writes them, or str)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise FormatError(f"a text attribute holds {type(value).__name__}")


def _read_names(file: h5py.File) -> list[str]:
    """The type names: fixed-width UTF-8 strings. Variable-length strings are refused
    without being read: they live in HDF5's global heap, and HDF5 can hang reading a
    damaged one (tests/fuzz_regressions/hdf5-dataset-read-hang.bin)."""
    dataset = file[layout.TYPES]
    dtype = dataset.dtype
    if dtype.kind != "S" or len(dataset.shape) != 1:
        raise FormatError(f"{layout.TYPES} is not a table of fixed-width strings")
    names = _read_all(file, layout.TYPES, dtype)
    return [name.decode("utf-8", "surrogatepass") for name in names.tolist()]


def _read_all(file: h5py.File, path: str, dtype: Any) -> np.ndarray:
    dataset = file[path]
    out = np.empty(dataset.shape, dtype)
    if out.size:
        dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out
