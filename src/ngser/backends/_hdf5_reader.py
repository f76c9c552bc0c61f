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

from ..errors import FormatError, shown
from ..graph import ArrayNode, Graph, make_node
from . import DEFAULT_LIMITS, Limits
from . import hdf5_layout as layout
from ._arrays import ArrayEntry, LazyArray, check_disjoint
from ._checksum import crc32_async
from ._codec import check_format, unpack_value_document
from ._columns import unpack_tables
from ._hdf5_checks import Inspector

__all__ = ["read_file", "why"]


def why(exc: BaseException) -> str:
    """A short reason from an h5py exception (without HDF5's error-stack details)."""
    return str(exc).split("(", 1)[0].strip() or type(exc).__name__


def read_file(file: h5py.File, source: str, *, lazy: bool = False, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """The graph stored in the open HDF5 ``file``; with ``lazy=True`` the arrays stay in
    the file (which must stay open) until they are loaded. ``limits`` bound what the file may
    ask for beyond its size. Every object the reader uses is checked from its metadata
    (:mod:`._hdf5_checks`) before any data is read."""
    inspector = Inspector(file, source, limits)
    if not inspector.has_link(layout.GROUP):
        raise FormatError(f"{source}: an HDF5 file, but not one written by ngser (it has no {layout.GROUP} group)")
    group = inspector.group(layout.GROUP, f"{source}: {layout.GROUP}")

    def attr(name: str) -> Any:
        return inspector.attribute(group, layout.GROUP, name)

    if attr("kind") in (b"checkpoint", "checkpoint"):
        raise FormatError(
            f"{source}: an ngser checkpoint (a time series), not a single saved object: open it with "
            "ngser.Checkpoint(path, mode='r') and load a step with .load(i)"
        )
    version = attr("format")
    check_format(int(version) if isinstance(version, np.integer) else version, source)
    writers_text, version_text = _text(attr("writers"), "writers", source), _text(attr("ngser"), "ngser", source)
    try:
        doc = _read(inspector, layout.GRAPH, np.dtype(np.uint8))
        ids = _read(inspector, layout.NODE_IDS, np.dtype("<i8"))
        types = _read(inspector, layout.NODE_TYPES, np.dtype("<u4"))
        versions = _read(inspector, layout.NODE_VERSIONS, np.dtype("<i8"))
        names = _read_names(inspector)
        stored_crc = _number(attr("crc32"), "crc32", source)
    except FormatError:
        raise
    except Exception as exc:  # h5py raises KeyError, OSError, ValueError... on damaged files
        raise FormatError(f"{source}: the node table is damaged or missing ({why(exc)})") from exc
    if layout.graph_crc(doc, ids, types, versions, names) != stored_crc:
        raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
    header_crc = attr("header_crc32")  # absent in files of ngser 0.1, which still load
    expected = None if header_crc is None else _number(header_crc, "header_crc32", source)
    if expected is not None and layout.header_crc(writers_text, version_text) != expected:
        raise FormatError(
            f"{source}: the header attributes {layout.GROUP}@writers and {layout.GROUP}@ngser are damaged "
            "(checksum mismatch)"
        )
    writers = _writers(writers_text, names, source)
    body = unpack_value_document(doc.data, source)
    if not isinstance(body, dict):
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
    reader = _Reader(inspector, entries)  # checks every dataset before anything is read
    if lazy:
        arrays = [ArrayNode(e.id, LazyArray(e, reader.read_copy), e.label) for e in entries]
    else:  # checksums run on the pool of ngser's checksum module while the next array is read
        read = [(e, buffer, crc32_async(buffer)) for e, buffer in ((e, reader.read(e)) for e in entries)]
        arrays = [ArrayNode(e.id, e.array(b, job.result()), e.label) for e, b, job in read]
    meta = {"ngser": _decoded(version_text, "ngser", source), "format": int(version)}
    graph = Graph(body.get("root"), nodes, arrays, writers, meta)
    graph.tables = unpack_tables(body.get("tables"), source)
    return graph


def _entry(row: Any, source: str) -> ArrayEntry:
    """One row of the array table, checked, with its storage kind and location."""
    entry = ArrayEntry.parse(row, layout.ROW, source)
    kind, location = entry.kind, entry.location
    if kind == layout.KIND_PACKED and type(location) is int and location >= 0:
        pass
    elif kind in (layout.KIND_NATIVE, layout.KIND_RAW) and isinstance(location, str):
        entry.where += f" ({location})"
        parts = location.split("/")
        if (
            parts[0]
            or not all(parts[1:])
            or parts[1] == layout.GROUP.lstrip("/")
            or len(parts) > layout.MAX_NAME_DEPTH + 2
        ):
            raise FormatError(
                f"{entry.where}: ngser stores array datasets at absolute paths outside {layout.GROUP}, at most "
                f"{layout.MAX_NAME_DEPTH + 1} names deep; the file is damaged"
            )
    else:
        raise FormatError(f"{entry.where}: unknown storage kind {kind!r}; the file is damaged or newer than ngser")
    return entry


def _writers(text: bytes, names: list[str], source: str) -> dict[str, int]:
    """The ``writers`` header, checked against the node table: it lists every type name the
    table uses, each with an integer version."""
    where = f"{source}: {layout.GROUP}@writers is damaged"
    try:
        writers = json.loads(text)
    except ValueError as exc:
        raise FormatError(f"{where}: it is not JSON ({why(exc)})") from exc
    if not isinstance(writers, dict):
        raise FormatError(f"{where}: it holds no JSON object of type names and versions")
    for name, version in writers.items():
        if type(version) is not int:
            raise FormatError(f"{where}: the version of {shown(name)} is not an integer ({shown(version)})")
    for name in names:
        if name not in writers:
            raise FormatError(
                f"{source}: the header is damaged: the node table names the type {shown(name)}, which "
                f"{layout.GROUP}@writers does not list"
            )
    return writers


class _Reader:
    """Reads the bytes of array entries from one open file, every dataset checked when the
    reader is made (and closed again: each is reopened through its checked hard link when it is
    read, since thousands of open datasets slow HDF5 down); the packed small arrays are read once."""

    def __init__(self, inspector: Inspector, entries: list[ArrayEntry]) -> None:
        self.source = source = inspector.source
        self._inspector = inspector
        self._packed: np.ndarray[Any, Any] | None = None
        self._packed_id: Any = None
        packed = [e for e in entries if e.kind == layout.KIND_PACKED]
        if packed:
            self._packed_id = dsid = inspector.dataset(
                layout.PACKED, f"{source}: {layout.PACKED}", np.dtype(np.uint8), None, None
            )
            size = dsid.shape[0]
            for entry in packed:
                if int(entry.location) + entry.nbytes > size:
                    raise FormatError(f"{entry.where}: it lies outside {layout.PACKED}; the file is damaged")
            check_disjoint(packed, source, within=layout.PACKED)
        named: dict[str, int] = {}
        for entry in entries:
            if entry.kind == layout.KIND_PACKED:
                continue
            location = str(entry.location)
            if location in named:
                raise FormatError(
                    f"{source}: array nodes {named[location]} and {entry.id} both name the dataset {location}; each "
                    "array has a dataset of its own in files ngser writes, so the file is damaged"
                )
            named[location] = entry.id
            native = entry.kind == layout.KIND_NATIVE
            dtype = entry.dtype if native else np.dtype(np.uint8)
            inspector.dataset(location, entry.where, dtype, _stored(entry), entry.nbytes)
        inspector.finish()

    def packed(self) -> np.ndarray[Any, Any]:
        if self._packed is None:
            try:
                self._packed = _read_dataset(self._packed_id, np.dtype(np.uint8))
            except Exception as exc:
                raise FormatError(
                    f"{self.source}: the packed small arrays cannot be read ({why(exc)}); damaged file"
                ) from exc
        return self._packed

    def read(self, entry: ArrayEntry) -> np.ndarray[Any, Any]:
        """The entry's bytes (uint8), not checked yet; packed arrays are views of the packed block."""
        if entry.kind == layout.KIND_PACKED:
            start = int(entry.location)
            return self.packed()[start : start + entry.nbytes]
        native = entry.kind == layout.KIND_NATIVE
        out = np.empty(_stored(entry), entry.dtype if native else np.uint8)
        if not out.size:
            return np.empty(0, np.uint8)
        dsid = self._inspector.reopen(str(entry.location), entry.where)
        try:
            dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        except Exception as exc:
            raise FormatError(f"{entry.where}: the dataset cannot be read ({why(exc)}); the file is damaged") from exc
        return out.reshape(-1).view(np.uint8)

    def read_copy(self, entry: ArrayEntry) -> np.ndarray[Any, Any]:
        """:meth:`read`, in a buffer of the entry's own (for lazy arrays, which outlive the block)."""
        buffer = self.read(entry)
        return buffer.copy() if entry.kind == layout.KIND_PACKED else buffer


def _stored(entry: ArrayEntry) -> tuple[int, ...]:
    """The shape of the entry's dataset: the array's (reversed if Fortran-ordered), or its byte count."""
    if entry.kind == layout.KIND_NATIVE:
        return entry.shape[::-1] if entry.fortran else entry.shape
    return (entry.nbytes,)


def _text(value: Any, name: str, source: str) -> bytes:
    """The bytes of a text attribute (fixed-width, as ngser writes them); ``b""`` if absent."""
    if value is None and name == "ngser":
        return b""
    if not isinstance(value, bytes):
        raise FormatError(f"{source}: the node table is damaged or missing ({layout.GROUP}@{name} holds no text)")
    return bytes(value)


def _number(value: Any, name: str, source: str) -> int:
    """An integer attribute (a checksum)."""
    if not isinstance(value, np.integer):
        raise FormatError(f"{source}: the node table is damaged or missing ({layout.GROUP}@{name} holds no integer)")
    return int(value)


def _decoded(text: bytes, name: str, source: str) -> str:
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{source}: {layout.GROUP}@{name} is not UTF-8 text; the file is damaged") from exc


def _read_names(inspector: Inspector) -> list[str]:
    """The type names: fixed-width UTF-8 strings. Variable-length strings are refused
    without being read: they live in HDF5's global heap, and HDF5 can hang reading a
    damaged one (tests/fuzz_regressions/hdf5-dataset-read-hang.bin)."""
    where = f"{inspector.source}: {layout.TYPES}"
    dsid = inspector.dataset(layout.TYPES, where, "S", None, None)
    names = _read_dataset(dsid, dsid.dtype)
    return [name.decode("utf-8", "surrogatepass") for name in names.tolist()]


def _read(inspector: Inspector, path: str, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """A node-table dataset, checked (a hard link inside ``/ngser``, storage inside the file and in
    proportion to its dataspace) before its buffer is made and filled."""
    return _read_dataset(inspector.dataset(path, f"{inspector.source}: {path}", dtype, None, None), dtype)


def _read_dataset(dsid: Any, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    out = np.empty(dsid.shape, dtype)
    if out.size:
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out
