"""The msgpack format: a small prelude, the graph as one msgpack document, then raw arrays.

Layout (all integers little-endian; see ``docs/format.md``)::

    offset 0   8 bytes   magic b"\\x89NGSER\\x1a\\n"
    offset 8   8 bytes   uint64 G: length of the document
    offset 16  4 bytes   uint32 crc32 of the document
    offset 20  4 bytes   uint32 reserved, 0
    offset 24  G bytes   the document (a msgpack map)
    D = 24 + G rounded up to 64: the data section; array i starts at D + offset_i

Array payloads are written straight from the arrays' memory (no msgpack buffer in
between), each 64-byte aligned, and read straight into their own buffers.
"""

from __future__ import annotations

import functools
import os
import struct
import zlib
from collections.abc import Callable
from typing import IO, Any

import msgpack
import numpy as np

from ..arrays import check_shape, describe_dtype, parse_dtype, raw_view, scalar_bytes, scalar_from_bytes
from ..checksum import crc32, crc32_async
from ..errors import FormatError, VersionError
from ..graph import FORMAT_VERSION, ArrayNode, Graph, PairsDict, Ref
from . import StreamBackend

__all__ = ["MsgpackBackend", "MAGIC", "pack_value_document", "unpack_value_document"]

MAGIC = b"\x89NGSER\x1a\n"
_PRELUDE = struct.Struct("<8sQII")
ALIGN = 64

# ext type codes
EXT_REF, EXT_MARK, EXT_COMPLEX, EXT_BIGINT, EXT_SCALAR = 1, 2, 3, 4, 5
# marker kinds: a list whose first element is a marker is a tagged compound
TUPLE, SET, FROZENSET, PAIRS = 1, 2, 3, 4
_U64 = struct.Struct("<Q")
_COMPLEX = struct.Struct("<dd")


class _Marker:
    __slots__ = ("kind",)

    def __init__(self, kind: int) -> None:
        self.kind = kind


_MARKERS = {kind: _Marker(kind) for kind in (TUPLE, SET, FROZENSET, PAIRS)}
_MARK_EXT = {kind: msgpack.ExtType(EXT_MARK, bytes([kind])) for kind in _MARKERS}


_new_ext = functools.partial(tuple.__new__, msgpack.ExtType)  # ExtType((code, data)) at C speed


def _ref_packer() -> Callable[[Any], Any]:
    """A ``default`` hook for one document: each id's extension is made once per document
    (shared objects are referenced many times), and forgotten with the document."""
    exts: dict[int, msgpack.ExtType] = {}

    def default(v: Any) -> Any:
        if type(v) is Ref:
            ext = exts.get(v.id)
            if ext is None:
                ext = exts[v.id] = _new_ext((EXT_REF, _U64.pack(v.id)))
            return ext
        return _default(v)

    return default


def _ref_unpacker() -> Callable[[int, bytes], Any]:
    """An ``ext_hook`` for one document: one :class:`Ref` per id, shared by its references."""
    refs: dict[bytes, Ref] = {}

    def ext_hook(code: int, data: bytes) -> Any:
        if code == EXT_REF:
            ref = refs.get(data)
            if ref is None and len(data) == 8:
                ref = refs[data] = Ref(_U64.unpack(data)[0])
            if ref is not None:
                return ref
        return _ext_hook(code, data)

    return ext_hook


def _default(v: Any) -> Any:
    """Every value but references (see :func:`_ref_packer`)."""
    t = type(v)
    if t is tuple:
        return [_MARK_EXT[TUPLE], *v]
    if t is set:
        return [_MARK_EXT[SET], *v]
    if t is frozenset:
        return [_MARK_EXT[FROZENSET], *v]
    if t is PairsDict:
        flat: list[Any] = [_MARK_EXT[PAIRS]]
        for key, value in v.pairs:
            flat.append(key)
            flat.append(value)
        return flat
    if t is complex:
        return msgpack.ExtType(EXT_COMPLEX, _COMPLEX.pack(v.real, v.imag))
    if t is int:
        return msgpack.ExtType(EXT_BIGINT, v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True))
    if isinstance(v, np.generic):
        return msgpack.ExtType(EXT_SCALAR, msgpack.packb([describe_dtype(v.dtype), scalar_bytes(v)]))
    raise TypeError(f"{t.__name__} is not a graph value")


def _ext_hook(code: int, data: bytes) -> Any:
    """Every extension but references (see :func:`_ref_unpacker`)."""
    if code == EXT_MARK and len(data) == 1 and data[0] in _MARKERS:
        return _MARKERS[data[0]]
    if code == EXT_COMPLEX and len(data) == 16:
        re, im = _COMPLEX.unpack(data)
        return complex(re, im)
    if code == EXT_BIGINT and data:
        return int.from_bytes(data, "little", signed=True)
    if code == EXT_SCALAR:
        descr, raw = msgpack.unpackb(data, strict_map_key=True)
        return scalar_from_bytes(raw, parse_dtype(descr, "numpy scalar"), "numpy scalar")
    raise FormatError(f"unknown msgpack extension type {code} ({len(data)} bytes)")


def _list_hook(items: list[Any]) -> Any:
    if not items or type(items[0]) is not _Marker:
        return items
    kind = items[0].kind
    if kind == TUPLE:
        return tuple(items[1:])
    if kind == PAIRS:
        if len(items) % 2 != 1:
            raise FormatError("a dict's key/value list has an odd length")
        return PairsDict(list(zip(items[1::2], items[2::2])))
    try:
        return (set if kind == SET else frozenset)(items[1:])
    except TypeError as exc:
        raise FormatError(f"a set holds an unhashable element: {exc}") from exc


def _packer() -> msgpack.Packer:
    return msgpack.Packer(default=_ref_packer(), strict_types=True, use_bin_type=True, unicode_errors="surrogatepass")


def pack_value_document(doc: Any) -> bytes:
    """Pack graph values (and plain data) with ngser's msgpack extension types."""
    try:
        return _packer().pack(doc)
    except (TypeError, ValueError, OverflowError, struct.error) as exc:
        raise FormatError(f"cannot encode the graph as msgpack: {exc}") from exc


def unpack_value_document(data: bytes | memoryview, where: str) -> Any:
    """Unpack a document written by :func:`pack_value_document`."""
    try:
        return msgpack.unpackb(
            data,
            ext_hook=_ref_unpacker(),
            list_hook=_list_hook,
            strict_map_key=True,
            unicode_errors="surrogatepass",
            raw=False,
        )
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from exc
    except Exception as exc:
        raise FormatError(f"{where}: the graph is damaged ({type(exc).__name__}: {exc})") from exc


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


class MsgpackBackend(StreamBackend):
    """The ``"msgpack"`` format (``.msgpack``, ``.mpk``)."""

    name = "msgpack"
    extensions = (".msgpack", ".mpk")
    magic = MAGIC

    def write(self, graph: Graph, stream: IO[bytes], **options: Any) -> None:
        self.check_options(options)
        views = []
        table = []
        offset = 0
        jobs = []
        for array in graph.arrays:
            data = array.load()
            view, fortran = raw_view(data)
            jobs.append(crc32_async(view))
            table.append(
                [array.id, describe_dtype(data.dtype), list(data.shape), fortran, offset, view.nbytes, 0, array.label]
            )
            views.append((offset, view))
            offset = _align(offset + view.nbytes)
        for entry, job in zip(table, jobs):
            entry[6] = job.result()
        flat_nodes = graph.flat_nodes
        doc = pack_value_document(
            {
                "format": FORMAT_VERSION,
                "ngser": graph.meta.get("ngser", ""),
                "writers": graph.writers,
                "root": graph.root,
                "nodes": flat_nodes,
                "arrays": table,
            }
        )
        stream.write(_PRELUDE.pack(MAGIC, len(doc), zlib.crc32(doc), 0))
        stream.write(doc)
        start = _align(_PRELUDE.size + len(doc))
        position = _PRELUDE.size + len(doc)
        for array_offset, view in views:
            target = start + array_offset
            if target > position:
                stream.write(bytes(target - position))
            stream.write(view)
            position = target + view.nbytes

    def read(self, stream: IO[bytes], size: int, source: str, *, trusted: bool = False) -> Graph:
        doc, start = _read_document(stream, size, source)
        read = []  # each array's checksum runs on the pool while the next one is read
        for entry in _array_entries(doc, size - start, source):
            buffer = np.empty(entry.nbytes, np.uint8)
            stream.seek(start + entry.offset)
            if stream.readinto(memoryview(buffer)) != entry.nbytes:  # type: ignore[attr-defined]
                raise FormatError(f"{entry.where}: the file is truncated")
            read.append((entry, buffer, crc32_async(buffer)))
        arrays = [ArrayNode(entry.id, entry.array(buffer, job.result()), entry.label) for entry, buffer, job in read]
        return _graph(doc, arrays, source)

    def open_lazy(self, path: str, *, trusted: bool = False) -> tuple[Graph, Callable[[], None] | None]:
        """The graph of ``path`` with arrays left in the file until they are read."""
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            doc, start = _read_document(stream, size, path)
        arrays = [ArrayNode(e.id, LazyArray(path, start, e), e.label) for e in _array_entries(doc, size - start, path)]
        return _graph(doc, arrays, path), None


class _Entry:
    """One validated entry of the array table."""

    __slots__ = ("crc", "dtype", "fortran", "id", "label", "nbytes", "offset", "shape", "where")

    def __init__(self, entry: Any, available: int, source: str) -> None:
        if not isinstance(entry, list) or len(entry) != 8:
            raise FormatError(f"{source}: an array table entry is damaged")
        nid, descr, shape, fortran, offset, nbytes, crc, label = entry
        self.where = where = f"{source}: array node {nid}"
        if type(nid) is not int or type(offset) is not int or type(nbytes) is not int or offset < 0:
            raise FormatError(f"{where}: its table entry is damaged")
        self.id, self.offset, self.nbytes, self.crc = nid, offset, nbytes, crc
        self.dtype = parse_dtype(descr, where)
        self.shape = check_shape(shape, where)
        self.fortran = bool(fortran)
        self.label = label if isinstance(label, str) else None
        if int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize != nbytes:
            raise FormatError(f"{where}: {nbytes} bytes do not hold {self.shape} elements of {self.dtype}")
        if offset + nbytes > available:
            raise FormatError(
                f"{where}: the file is truncated: the array needs {offset + nbytes} bytes of data, "
                f"{max(available, 0)} remain"
            )

    def array(self, buffer: np.ndarray, crc: int | None = None) -> np.ndarray:
        """The array held by ``buffer`` (uint8, this entry's bytes), after checking its
        checksum (``crc``, when the caller computed it already)."""
        if (crc32(buffer) if crc is None else crc) != self.crc:
            raise FormatError(
                f"{self.where} ({self.label or 'unnamed'}): the array data is damaged (checksum mismatch)"
            )
        return buffer.view(self.dtype).reshape(self.shape, order="F" if self.fortran else "C")


class LazyArray:
    """An array payload still in its file: ``dtype`` and ``shape`` at once, data on indexing."""

    def __init__(self, path: str, start: int, entry: _Entry) -> None:
        self.path, self.start, self.entry = path, start, entry
        self.dtype, self.shape = entry.dtype, entry.shape

    def __getitem__(self, index: Any) -> Any:
        entry = self.entry
        buffer = np.empty(entry.nbytes, np.uint8)
        if entry.nbytes:
            with open(self.path, "rb") as stream:
                stream.seek(self.start + entry.offset)
                if stream.readinto(memoryview(buffer)) != entry.nbytes:
                    raise FormatError(f"{entry.where}: the file is truncated")
        return entry.array(buffer)[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)


def _read_document(stream: IO[bytes], size: int, source: str) -> tuple[dict[str, Any], int]:
    """The checked graph document and the offset where array data starts."""
    prelude = stream.read(_PRELUDE.size)
    if len(prelude) < _PRELUDE.size or not prelude.startswith(MAGIC):
        raise FormatError(f"{source}: not an ngser msgpack file, or truncated before its header ends")
    _, doc_len, doc_crc, _ = _PRELUDE.unpack(prelude)
    if _PRELUDE.size + doc_len > size:
        raise FormatError(
            f"{source}: the file is truncated: its graph needs {doc_len} bytes, {size - _PRELUDE.size} remain"
        )
    doc_bytes = stream.read(doc_len)
    if len(doc_bytes) != doc_len or zlib.crc32(doc_bytes) != doc_crc:
        raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
    doc = unpack_value_document(doc_bytes, source)
    if not isinstance(doc, dict):
        raise FormatError(f"{source}: the graph document is not a map")
    check_format(doc.get("format"), source)
    return doc, _align(_PRELUDE.size + doc_len)


def _array_entries(doc: dict[str, Any], available: int, source: str) -> list[_Entry]:
    table = doc.get("arrays")
    if not isinstance(table, list):
        raise FormatError(f"{source}: the array table is damaged")
    return [_Entry(entry, available, source) for entry in table]


def _graph(doc: dict[str, Any], arrays: list[ArrayNode], source: str) -> Graph:
    flat = _checked_flat(doc.get("nodes"), source)
    writers = doc.get("writers")
    if not isinstance(writers, dict):
        raise FormatError(f"{source}: the header's writer table is damaged")
    meta = {"ngser": doc.get("ngser"), "format": doc.get("format")}
    return Graph.from_flat(doc.get("root"), flat, arrays, writers, meta)


def _checked_flat(flat: Any, source: str) -> list[Any]:
    """The flat node table ``[id, name, version, state, ...]``, if it has that shape."""
    if not isinstance(flat, list) or len(flat) % 4:
        raise FormatError(f"{source}: the node table is damaged")
    return flat


def check_format(version: Any, source: str) -> None:
    """Refuse files of a graph format this ngser does not read."""
    if type(version) is not int or version < 1:
        raise FormatError(f"{source}: the header has no valid format version")
    if version > FORMAT_VERSION:
        raise VersionError(
            f"{source}: written in ngser format version {version}, but this ngser reads up to version "
            f"{FORMAT_VERSION}; upgrade ngser to read it"
        )
