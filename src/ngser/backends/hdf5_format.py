"""The HDF5 format: the user's names for groups and datasets, a packed node table under ``/ngser``.

A file is readable with h5py or ``h5ls -r`` alone, by the names the data was saved under:
``ngser.save({"mesh": mesh, "u": gfu}, "result.h5")`` puts the GridFunction's values at
``/u/values`` and the mesh's points at ``/mesh/ngmesh/points`` (also reachable as
``/u/space/mesh/ngmesh/points``: a hard link). The graph (root value, node states, array
table) is one msgpack document, ``/ngser/graph``, encoded as in the msgpack format; see
:mod:`.hdf5_layout` and ``docs/format.md`` for every group, dataset and attribute.

>>> ngser.save({"mesh": mesh, "u": gfu}, "result.h5")
>>> ngser.save(big, "big.h5", compression="gzip")          # or "lzf"; chunked datasets
>>> data = ngser.dumps(obj, format="hdf5")                 # an in-memory HDF5 file image

Uncompressed arrays are contiguous datasets. Saving to a file allocates them through
HDF5 and then writes their bytes at the offsets HDF5 reports (``H5Dget_offset``), which
is about twice as fast as HDF5's own write path; reading goes through HDF5 straight
into the arrays' memory. Checksums run on the shared pool of :mod:`ngser.checksum`
while the next array is written or read.
"""

from __future__ import annotations

import io
import json
import os
import uuid
import zlib
from collections.abc import Callable
from typing import IO, Any

import h5py
import numpy as np

from ..errors import ArgumentError, FormatError, NgserError
from ..graph import ArrayNode, Graph, format_of
from . import DEFAULT_LIMITS, Backend, Limits, PathLike
from . import hdf5_layout as layout
from ._arrays import ArrayEntry, describe_dtype
from ._checksum import CrcJob, crc32_async
from ._codec import pack_value_document
from ._columns import pack_root, pack_tables
from ._hdf5_reader import read_file, why
from ._writeback import WriteBehind

__all__ = ["HDF5Backend", "INLINE_LIMIT", "SMALL_DATASETS"]

#: Arrays of this many bytes or more always get a dataset of their own ...
INLINE_LIMIT = 4096
#: ... smaller ones until this many of them have one (HDF5 takes about 60 microseconds and 400
#: bytes per dataset); the rest are packed into ``/ngser/packed``.
SMALL_DATASETS = 10_000
_COMPRESSIONS = (None, "gzip", "lzf")


def _native(dtype: np.dtype[Any]) -> bool:
    """Whether HDF5 stores ``dtype`` as itself (so h5py users read the values, not bytes)."""
    try:
        return bool(h5py.h5t.py_create(dtype, logical=True).dtype == dtype)
    except (TypeError, ValueError):
        return False


class HDF5Backend(Backend):
    """The ``"hdf5"`` format (``.h5``, ``.hdf5``); option ``compression="gzip"|"lzf"``
    (and ``compression_level`` 0-9 for gzip, default 4)."""

    name = "hdf5"
    extensions = (".h5", ".hdf5")
    magic = b"\x89HDF\r\n\x1a\n"
    options = ("compression", "compression_level")

    # -- writing --------------------------------------------------------------------
    def write_path(self, graph: Graph, path: PathLike, **options: Any) -> None:
        self.check_options(options)
        filters = _filters(options)
        try:
            with h5py.File(path, "w") as file:
                # direct writes open the file a second time while HDF5 holds it: POSIX only
                _write(file, graph, filters, direct=os.fspath(path) if os.name == "posix" else None)
        except RuntimeError as exc:  # HDF5 reports some I/O failures (EFBIG at close) this way
            raise OSError(f"writing the HDF5 file failed: {exc}") from exc

    def write_bytes(self, graph: Graph, **options: Any) -> bytes:
        self.check_options(options)
        filters = _filters(options)
        name = f"ngser-{uuid.uuid4().hex}.h5"
        with h5py.File(name, "w", driver="core", backing_store=False) as file:
            _write(file, graph, filters)
            file.flush()
            return bytes(file.id.get_file_image())

    def write_stream(self, graph: Graph, stream: IO[bytes], **options: Any) -> None:
        """Write to a binary file object: the file is built in memory first (HDF5 must seek and
        read back while it writes), so for large data save to a path."""
        stream.write(self.write_bytes(graph, **options))

    # -- reading --------------------------------------------------------------------
    def read_path(self, path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        source = os.fspath(path)
        with _open(source, source) as file:
            return _guarded(source, read_file, file, source, limits=limits)

    def read_stream(self, stream: IO[bytes], source: str, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        with _open(stream, source) as file:
            return _guarded(source, read_file, file, source, limits=limits)

    def open_lazy(self, path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Graph, Callable[[], None]]:
        source = os.fspath(path)
        file = _open(source, source)
        try:
            return _guarded(source, read_file, file, source, lazy=True, limits=limits), file.close
        except BaseException:
            file.close()
            raise

    def read_bytes(self, data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        with _open(bytes(data), "<bytes>") as file:
            return _guarded("<bytes>", read_file, file, "<bytes>", limits=limits)


def _open(target: str | bytes | IO[bytes], source: str) -> h5py.File:
    """Open a file (by path), a file image (bytes) or a binary file object for reading.

    Paths are opened with HDF5's ``sec2`` driver whatever ``HDF5_DRIVER`` says, so a file never
    makes HDF5 open others (the family, multi and split drivers open several files); images and
    file objects use the core and file-object drivers, which open none. Links, external storage
    and virtual datasets are refused before they are followed (:mod:`._hdf5_checks`)."""
    try:
        if isinstance(target, bytes):
            return h5py.File(h5py.h5f.open_file_image(target), "r")
        if isinstance(target, io.IOBase) or hasattr(target, "read"):
            return h5py.File(target, "r")
        return h5py.File(target, "r", driver="sec2")
    except Exception as exc:
        raise FormatError(f"{source}: not a readable HDF5 file, or truncated ({why(exc)})") from exc


def _guarded(source: str, function: Callable[..., Graph], *args: Any, **kwargs: Any) -> Graph:
    """Call ``function``; whatever h5py raises on a damaged structure becomes a FormatError."""
    try:
        return function(*args, **kwargs)
    except NgserError:
        raise
    except Exception as exc:
        raise FormatError(f"{source}: the HDF5 structure is damaged ({type(exc).__name__}: {why(exc)})") from exc


def _filters(options: dict[str, Any]) -> dict[str, Any]:
    compression = options.get("compression")
    if compression not in _COMPRESSIONS:
        raise ArgumentError(f"compression={compression!r} is not supported; use None, 'gzip' or 'lzf'")
    level = options.get("compression_level")
    if level is not None and (compression != "gzip" or type(level) is not int or not 0 <= level <= 9):
        raise ArgumentError("compression_level= must be an integer from 0 to 9, and needs compression='gzip'")
    if compression is None:
        return {}
    filters: dict[str, Any] = {"compression": compression, "shuffle": True}
    if compression == "gzip":
        filters["compression_opts"] = 4 if level is None else level
    return filters


def _write(file: h5py.File, graph: Graph, filters: dict[str, Any], direct: str | None = None) -> None:
    """Write ``graph`` into the open ``file``. With ``direct`` (the file's path, for a file on
    disk), uncompressed arrays go straight to their datasets' allocated space with
    ``pwrite`` while the checksums run on the pool, which is much faster than HDF5's own
    write path."""
    entries: list[ArrayEntry] = []
    packed: list[tuple[int, memoryview]] = []
    packed_size = 0
    stored = _with_datasets(graph)
    names = layout.Names(graph, stored)
    groups = _make_groups(file, names.groups)
    pending: list[tuple[ArrayEntry, CrcJob]] = []  # checksums, running while the next array is written
    deferred: list[tuple[int, memoryview]] = []
    for array in graph.arrays:
        data = array.load()
        entry, view = ArrayEntry.of(array.id, data, array.label)
        entries.append(entry)
        if array.id not in stored:
            align = max(data.dtype.alignment, 1)
            packed_size = -(-packed_size // align) * align
            entry.kind, entry.location, entry.crc = layout.KIND_PACKED, packed_size, zlib.crc32(view)
            packed.append((packed_size, view))
            packed_size += view.nbytes
            continue
        pending.append((entry, crc32_async(view)))
        path = names.path(array.id)
        parent, _, name = path.rpartition("/")
        entry.kind, offset = _write_dataset(
            groups[parent or "/"], name, path, array, data, view, entry.fortran, filters, direct is not None
        )
        entry.location = path
        if offset is not None:
            deferred.append((offset, view))
    for link, target in names.links:  # a shared object's or array's other names
        file.id.links.create_hard(link.encode(), file.id, target.encode())
    if deferred and direct is not None:
        _pwrite_all(direct, deferred)
    for entry, job in pending:
        entry.crc = job.result()
    buffer = np.zeros(packed_size, np.uint8)
    for offset, view in packed:
        buffer[offset : offset + view.nbytes] = np.frombuffer(view, np.uint8)
    if packed:
        file.create_dataset(layout.PACKED, data=buffer, track_times=False)
    _write_nodes(file, graph, [entry.row(layout.ROW) for entry in entries])


def _with_datasets(graph: Graph) -> set[int]:
    """The ids of the arrays that get datasets: every array of :data:`INLINE_LIMIT` bytes or
    more, and smaller ones until :data:`SMALL_DATASETS` of them have one."""
    stored: set[int] = set()
    small = 0
    for array in graph.arrays:
        if array.nbytes >= INLINE_LIMIT:
            stored.add(array.id)
        elif small < SMALL_DATASETS:
            stored.add(array.id)
            small += 1
    return stored


def _make_groups(file: h5py.File, groups: list[tuple[str, dict[str, Any]]]) -> dict[str, h5py.Group]:
    """Create the name tree's groups (parents first, without modification times) with their
    attributes: the type name and version of the object each stands for, and its name.
    Returns them by path, for the datasets to be made in."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    made: dict[str, h5py.Group] = {"/": file["/"]}
    for path, attrs in groups:
        if path not in made:
            parent, _, name = path.rpartition("/")
            made[path] = h5py.Group(h5py.h5g.create(made[parent or "/"].id, name.encode(), gcpl=gcpl))
        for key, value in attrs.items():
            made[path].attrs[key] = value if isinstance(value, str) else np.int64(value)
    return made


def _pwrite_all(path: str, writes: list[tuple[int, memoryview]]) -> None:
    """Write each buffer at its file offset (the space HDF5 allocated for its dataset)."""
    with open(path, "r+b", buffering=0) as stream, WriteBehind(stream.fileno()) as behind:
        for offset, view in writes:
            view = view.cast("B") if view.ndim != 1 or view.itemsize != 1 else view
            done = 0
            while done < view.nbytes:
                stream.seek(offset + done)
                written = stream.write(view[done:])
                if not written:
                    raise OSError(f"could not write to {path}")
                done += written
            behind.wrote(view.nbytes)


def _write_dataset(
    group: h5py.Group,
    name: str,
    path: str,
    array: ArrayNode,
    data: np.ndarray,
    view: memoryview,
    fortran: bool,
    filters: dict[str, Any],
    direct: bool,
) -> tuple[int, int | None]:
    """Make one array's dataset ``name`` in ``group`` (at ``path``): native when HDF5 has its
    dtype, else as raw bytes. Returns the storage kind, the file offset where the caller must
    write the bytes when ``direct`` allows and the dataset's bytes are exactly the array's
    (else ``None``: the data is written here). Its checksum, id and label are in the array table
    only (an attribute costs HDF5 about 35 microseconds, a second copy invites disagreement)."""
    if _native(data.dtype):
        kind = layout.KIND_NATIVE
        source = np.frombuffer(view, np.uint8).view(data.dtype) if view.nbytes else np.empty(0, data.dtype)
        shape = data.shape[::-1] if fortran else data.shape
        source = source.reshape(shape)
        dtype = data.dtype
    else:
        kind, source, dtype, shape = layout.KIND_RAW, np.frombuffer(view, np.uint8), np.dtype(np.uint8), (view.nbytes,)
    options: dict[str, Any] = dict(filters) if filters and view.nbytes and shape else {}
    if options:
        options["chunks"] = True  # h5py's guess: chunks of up to about 1 MiB
    direct = direct and not options and view.nbytes > 0 and dtype.fields is None and dtype.kind in "biufc"
    if direct:  # contiguous storage allocated now, never filled: the caller writes the bytes
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        options = {"dcpl": dcpl, "fill_time": "never"}
    offset = None
    try:
        dataset = group.create_dataset(name, shape=shape, dtype=dtype, track_times=False, **options)
        if direct:
            offset = dataset.id.get_offset()
            if offset is None or dataset.id.get_type().get_size() != dtype.itemsize:
                offset = None
        if view.nbytes and offset is None:
            dataset.id.write(h5py.h5s.ALL, h5py.h5s.ALL, source)
    except (ValueError, TypeError) as exc:  # OSError (disk full) passes: save() reports it as FileAccessError
        raise FormatError(f"cannot write array node {array.id} to the HDF5 dataset {path}: {exc}") from exc
    if kind == layout.KIND_RAW:
        dataset.attrs["dtype"] = json.dumps(describe_dtype(data.dtype))
        dataset.attrs["shape"] = json.dumps(list(data.shape))
    if fortran:
        dataset.attrs["fortran"] = True
    return kind, offset


def _write_nodes(file: h5py.File, graph: Graph, table: list[list[Any]]) -> None:
    flat = graph.flat_nodes
    count = len(flat) // 4
    type_names = flat[1::4]
    names = list(dict.fromkeys(type_names))  # in order of first appearance
    type_index = {name: index for index, name in enumerate(names)}
    ids = np.fromiter(flat[0::4], "<i8", count)
    types = np.fromiter(map(type_index.__getitem__, type_names), "<u4", count)
    versions = np.fromiter(flat[2::4], "<i8", count)
    body = {"root": pack_root(graph), "states": flat[3::4], "arrays": table}
    if graph.tables:
        body["tables"] = pack_tables(graph.tables)
    doc = pack_value_document(body)
    crc = layout.graph_crc(doc, ids, types, versions, names)
    # made in their groups' handles: h5py's create_dataset of a path looks up every group on it
    group, nodes = file.require_group(layout.GROUP), file.require_group(layout.NODES)
    group.create_dataset(_leaf(layout.GRAPH), data=np.frombuffer(doc, np.uint8), track_times=False)
    for path, column in ((layout.NODE_IDS, ids), (layout.NODE_TYPES, types), (layout.NODE_VERSIONS, versions)):
        nodes.create_dataset(_leaf(path), data=column, track_times=False)
    encoded = [name.encode("utf-8", "surrogatepass") for name in names]
    width = max(map(len, encoded), default=1) or 1
    # fixed-width UTF-8 strings: variable-length ones live in HDF5's global heap, whose
    # damaged copies can hang HDF5's reader (tests/fuzz_regressions/hdf5-dataset-read-hang.bin)
    group.create_dataset(_leaf(layout.TYPES), data=np.array(encoded, f"S{width}"), track_times=False)
    group.attrs["format"] = format_of(graph)
    # fixed-width (np.bytes_) text attributes: no global heap (see the type names above)
    version = np.bytes_(str(graph.meta.get("ngser", "")).encode())
    # readers refuse a header that omits a type of the node table: a graph made by hand (not by
    # the encoder) may lack some, so they are added with the version of their first node
    listed = dict(graph.writers)
    for name, node_version in zip(type_names, flat[2::4]):
        listed.setdefault(name, node_version)
    for t in graph.tables:
        listed.setdefault(t.name, t.version)
    writers = np.bytes_(json.dumps(listed).encode())
    group.attrs["ngser"] = version
    group.attrs["writers"] = writers
    group.attrs["crc32"] = np.uint32(crc)
    group.attrs["header_crc32"] = np.uint32(layout.header_crc(bytes(writers), bytes(version)))


def _leaf(path: str) -> str:
    """The last name of an absolute ``path``: ``"/ngser/nodes/id"`` -> ``"id"``."""
    return path.rpartition("/")[2]
