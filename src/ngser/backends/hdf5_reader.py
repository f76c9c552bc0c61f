"""Reading ngser HDF5 files: the node table at once, arrays at once or lazily.

Used by :class:`~ngser.backends.hdf5_format.HDF5Backend`; the layout is described in
:mod:`.hdf5_paths` and ``docs/format.md``.

>>> with h5py.File("result.h5", "r") as file:
...     graph = read_file(file, "result.h5")              # every array read and checked
>>> file = h5py.File("result.h5", "r")
>>> graph = read_file(file, "result.h5", lazy=True)        # arrays read (and checked) when loaded
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import h5py
import numpy as np

from ..arrays import check_shape, parse_dtype
from ..checksum import crc32, crc32_async
from ..errors import FormatError
from ..graph import ArrayNode, Graph, make_node
from . import hdf5_paths as paths
from .msgpack_format import check_format, unpack_value_document

__all__ = ["read_file", "graph_crc", "why", "PACKED", "NATIVE", "RAW", "LazyDataset"]

#: Array storage kinds in the array table: packed bytes, a dataset of the array's own
#: dtype, a uint8 dataset of the array's raw bytes.
PACKED, NATIVE, RAW = 0, 1, 2


def why(exc: BaseException) -> str:
    """A short reason from an h5py exception (without HDF5's error-stack details)."""
    return str(exc).split("(", 1)[0].strip() or type(exc).__name__


def graph_crc(doc: Any, ids: np.ndarray, types: np.ndarray, versions: np.ndarray, names: list[str]) -> int:
    """CRC32 of the graph document, then the node table columns, then the type names joined by NUL."""
    crc = zlib.crc32(doc)
    for column in (ids, types, versions):
        crc = zlib.crc32(np.ascontiguousarray(column).tobytes(), crc)
    return zlib.crc32("\0".join(names).encode("utf-8", "surrogatepass"), crc)


def read_file(file: h5py.File, source: str, *, lazy: bool = False) -> Graph:
    """The graph stored in the open HDF5 ``file``; with ``lazy=True`` the arrays stay in
    the file (which must stay open) until they are loaded."""
    group = file.get(paths.GROUP)
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{source}: an HDF5 file, but not one written by ngser (it has no {paths.GROUP} group)")
    attrs = group.attrs
    version = attrs.get("format")
    check_format(int(version) if isinstance(version, np.integer) else version, source)
    try:
        doc = _read_all(file, paths.GRAPH, np.uint8)
        ids = _read_all(file, paths.NODE_IDS, np.dtype("<i8"))
        types = _read_all(file, paths.NODE_TYPES, np.dtype("<u4"))
        versions = _read_all(file, paths.NODE_VERSIONS, np.dtype("<i8"))
        names = _read_names(file)
        writers = json.loads(_text(attrs["writers"]))
        ngser_version = _text(attrs.get("ngser", b""))
        stored_crc = int(attrs["crc32"])
    except Exception as exc:  # h5py raises KeyError, OSError, ValueError... on damaged files
        raise FormatError(f"{source}: the node table is damaged or missing ({why(exc)})") from exc
    if graph_crc(doc, ids, types, versions, names) != stored_crc:
        raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
    body = unpack_value_document(doc, source)
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
    entries = [_Entry(entry, source) for entry in table]
    arrays = _lazy_arrays(file, entries, source) if lazy else _read_arrays(file, entries, source)
    meta = {"ngser": ngser_version, "format": int(version)}
    return Graph(body.get("root"), nodes, arrays, writers, meta)


class _Entry:
    """One validated entry of the array table."""

    __slots__ = ("crc", "dtype", "fortran", "id", "kind", "label", "location", "nbytes", "shape", "where")

    def __init__(self, entry: Any, source: str) -> None:
        if not isinstance(entry, list) or len(entry) != 9:
            raise FormatError(f"{source}: an array table entry is damaged")
        nid, descr, shape, fortran, kind, location, nbytes, crc, label = entry
        self.where = where = f"{source}: array node {nid}"
        if type(nid) is not int or type(nbytes) is not int or type(crc) is not int:
            raise FormatError(f"{where}: its table entry is damaged")
        self.id, self.nbytes, self.crc, self.fortran = nid, nbytes, crc, bool(fortran)
        self.dtype = parse_dtype(descr, where)
        self.shape = check_shape(shape, where)
        self.label = label if isinstance(label, str) else None
        if int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize != nbytes:
            raise FormatError(f"{where}: {nbytes} bytes do not hold {self.shape} elements of {self.dtype}")
        if kind == PACKED and type(location) is int and location >= 0:
            pass
        elif kind in (NATIVE, RAW) and isinstance(location, str):
            where += f" ({location})"
        else:
            raise FormatError(f"{where}: unknown storage kind {kind!r}; the file is damaged or newer than ngser")
        self.kind, self.location = kind, location
        self.where = where

    def read(self, file: h5py.File, packed: np.ndarray | None) -> np.ndarray:
        """This array's bytes (uint8), without checking them."""
        if self.kind == PACKED:
            if packed is None or self.location + self.nbytes > packed.size:
                raise FormatError(f"{self.where}: it lies outside {paths.PACKED}; the file is damaged")
            return packed[self.location : self.location + self.nbytes]
        stored = (self.shape[::-1] if self.fortran else self.shape) if self.kind == NATIVE else (self.nbytes,)
        out = np.empty(stored, self.dtype if self.kind == NATIVE else np.uint8)
        try:
            dataset = file[self.location]
            if tuple(dataset.shape) != stored:
                raise FormatError(f"{self.where}: the dataset has shape {dataset.shape}, the array table says {stored}")
            if out.size:
                dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        except FormatError:
            raise
        except Exception as exc:
            raise FormatError(f"{self.where}: the dataset cannot be read ({why(exc)}); the file is damaged") from exc
        flat = out.reshape(-1)
        return flat.view(np.uint8) if flat.size else np.empty(0, np.uint8)

    def array(self, buffer: np.ndarray, crc: int) -> np.ndarray:
        """The array held by ``buffer`` whose CRC32 is ``crc``, after checking it."""
        if crc != self.crc:
            raise FormatError(f"{self.where}: the array data is damaged (checksum mismatch)")
        return buffer.view(self.dtype).reshape(self.shape, order="F" if self.fortran else "C")


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
    dataset = file[paths.TYPES]
    dtype = dataset.dtype
    if dtype.kind != "S" or len(dataset.shape) != 1:
        raise FormatError(f"{paths.TYPES} is not a table of fixed-width strings")
    names = _read_all(file, paths.TYPES, dtype)
    return [name.decode("utf-8", "surrogatepass") for name in names.tolist()]


def _read_all(file: h5py.File, path: str, dtype: Any) -> np.ndarray:
    dataset = file[path]
    out = np.empty(dataset.shape, dtype)
    if out.size:
        dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


def _read_packed(file: h5py.File, source: str) -> np.ndarray:
    try:
        return _read_all(file, paths.PACKED, np.uint8)
    except Exception as exc:
        raise FormatError(f"{source}: the packed small arrays cannot be read ({why(exc)}); damaged file") from exc


def _read_arrays(file: h5py.File, entries: list[_Entry], source: str) -> list[ArrayNode]:
    """Read every array; checksums run on the pool of :mod:`ngser.checksum` while the next array is read."""
    packed = _read_packed(file, source) if any(e.kind == PACKED for e in entries) else None
    buffers = [(entry, buffer, crc32_async(buffer)) for entry, buffer in ((e, e.read(file, packed)) for e in entries)]
    return [ArrayNode(e.id, e.array(b, job.result()), e.label) for e, b, job in buffers]


class LazyDataset:
    """An array still in an open HDF5 file: ``dtype`` and ``shape`` now, data (checked) on indexing."""

    def __init__(self, file: h5py.File, entry: _Entry, packed: list[np.ndarray | None]) -> None:
        self.file, self.entry, self._packed = file, entry, packed
        self.dtype, self.shape = entry.dtype, entry.shape

    def __getitem__(self, index: Any) -> Any:
        entry = self.entry
        packed = self._packed
        if entry.kind == PACKED and packed[0] is None:
            packed[0] = _read_packed(self.file, entry.where.split(": array node")[0])
        buffer = entry.read(self.file, packed[0])
        if entry.kind == PACKED:
            buffer = buffer.copy()
        return entry.array(buffer, crc32(buffer))[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)


def _lazy_arrays(file: h5py.File, entries: list[_Entry], source: str) -> list[ArrayNode]:
    packed: list[np.ndarray | None] = [None]  # shared, read on first use
    return [ArrayNode(e.id, LazyDataset(file, e, packed), e.label) for e in entries]
