"""The pickle format: a protocol-5 pickle of the graph that loads without running code.

The file is one pickle of a 5-tuple (see ``docs/format.md``)::

    ("ngser.graph", format_version, graph_bytes, graph_crc32, buffers)

``graph_bytes`` is ``[header, root, flat_node_table, array_table]`` in ngser's msgpack
value encoding (the same as the msgpack format's document): decoding it is bounded by its
length and resolves no name, and everything but the array bytes is under ``graph_crc32``.
``array_table`` lists ``[id, dtype, shape, fortran, crc32, label]``; ``buffers`` holds
each array's bytes as a ``PickleBuffer`` in the same order: in-band in files (written
without a copy), out-of-band in :meth:`PickleBackend.write_frames`. The outer tuple is read
by a bounded pure-Python unpickler, so a damaged length or memo index cannot make the reader
allocate more than the file holds.

Loading uses :class:`RestrictedUnpickler`, which resolves no global at all: any global
(``os.system``...) raises :class:`~ngser.UnsafeLoadError` before it is looked up. A pickle
that ngser did not write is refused with :class:`ForeignPickleError`; the front-end loads it
with :meth:`PickleBackend.read_foreign` only when its caller passed ``trusted=True``.

For dask and other transports, :meth:`PickleBackend.write_frames` and :meth:`~PickleBackend.read_frames`
carry the arrays as separate zero-copy frames (out-of-band ``PickleBuffer``).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import zlib
from collections.abc import Callable
from typing import IO, Any, ClassVar

import numpy as np

from ..errors import FormatError, UnsafeLoadError
from ..graph import ArrayNode, Graph, format_of
from . import DEFAULT_LIMITS, Limits, PathLike, StreamBackend, _nothing
from ._arrays import ArrayEntry, LazyArray, payload_reader
from ._checksum import crc32, crc32_async
from ._codec import check_format, checked_flat, pack_value_document, unpack_value_document
from ._columns import pack_root, pack_tables, unpack_tables

__all__ = ["PickleBackend", "RestrictedUnpickler", "ForeignPickleError", "TAG", "ROW"]

TAG = "ngser.graph"
PROTOCOL = 5
#: The array table's row layout (format version 1); the bytes are the outer tuple's buffers.
ROW = ("id", "dtype", "shape", "fortran", "crc", "label")
#: Payloads of at least this many bytes stay in the file until loaded when a file is opened lazily.
LAZY_BYTES = 1 << 16


#: The globals an untrusted load may resolve: none. ngser's pickles hold only tuples, bytes and
#: buffers; the graph inside is in ngser's msgpack value encoding.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {}


#: The opcodes ngser's pickle writer emits (protocol 5), and the only ones an untrusted load reads.
ALLOWED_OPCODES = (
    "PROTO", "FRAME", "STOP", "MARK", "MEMOIZE", "EMPTY_LIST", "APPEND", "APPENDS", "EMPTY_TUPLE", "TUPLE",
    "TUPLE1", "TUPLE2", "TUPLE3", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "BININT", "BININT1",
    "BININT2", "LONG1", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "BYTEARRAY8", "NEXT_BUFFER",
    "READONLY_BUFFER",
)  # fmt: skip
#: Opcodes that call, build or fetch objects: refused as code.
CODE_OPCODES = (
    "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
)  # fmt: skip


class ForeignPickleError(FormatError):
    """A readable pickle, but not one ngser wrote (nothing in it was run)."""


class _BoundedReader:
    """A read-only view of a stream that refuses reads past ``size`` bytes (a damaged or
    hostile pickle declaring a huge object fails before anything is read)."""

    def __init__(self, stream: IO[bytes], size: int, source: str) -> None:
        self._stream = stream
        self._left = size
        self._source = source

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._stream.read(n)
        self._left -= len(data)
        return data

    @property
    def left(self) -> int:
        """Bytes not read yet."""
        return self._left

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self._stream.readinto(view[: self._left])  # type: ignore[attr-defined]
        self._left -= count or 0
        return count or 0

    def readline(self) -> bytes:
        line = self._stream.readline(self._left)
        self._left -= len(line)
        return line

    def skip(self, n: int) -> int:
        """Move ``n`` bytes (at most those left) past the current position, which is returned."""
        start = self._stream.tell()
        self._stream.seek(n, os.SEEK_CUR)
        self._left -= n
        return start


class _Span:
    """Where a payload the lazy reader skipped lies in the file: ``size`` bytes at ``offset``."""

    __slots__ = ("offset", "size")

    def __init__(self, offset: int, size: int) -> None:
        self.offset, self.size = offset, size


class RestrictedUnpickler(pickle._Unpickler):
    """Reads the small outer tuple with the pure-Python unpickler: its memo is a dict (a damaged
    memo index cannot make it allocate gigabytes), every declared length is checked against
    the bytes left before anything is allocated, and it resolves only :data:`ALLOWED_GLOBALS`
    (none)."""

    # Set by pickle._Unpickler.load() on each instance; declared for the type checker.
    _unframer: Any
    read: Callable[[int], bytes]
    readinto: Callable[[Any], int]
    append: Callable[[Any], None]

    def __init__(self, reader: _BoundedReader, *, source: str, buffers: Any, lazy: bool = False) -> None:
        super().__init__(reader, buffers=buffers)
        self._reader, self._source, self._lazy = reader, source, lazy

    def find_class(self, module: str, name: str) -> Any:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafeLoadError(
                f"{self._source}: the pickle asks for {module}.{name}, which ngser does not write; loading it "
                "could run code. Nothing was run. Load it with trusted=True only if you trust where the file came "
                "from."
            )
        return found

    def _sized(self, width: int) -> int:
        size = int.from_bytes(self.read(width), "little")
        frame = self._unframer.current_frame  # bytes of the current frame not consumed yet count too
        left = self._reader.left + (frame.getbuffer().nbytes - frame.tell() if frame is not None else 0)
        if size > left:
            raise FormatError(
                f"{self._source}: the pickle is truncated or damaged: it declares {size} bytes where {left} remain"
            )
        return size

    def _bytes(self, width: int, mutable: bool) -> None:
        size = self._sized(width)
        if not mutable:
            data = self.read(size)
            if len(data) != size:
                raise FormatError(f"{self._source}: the pickle is truncated")
            self.append(data)
            return
        if self._lazy and size >= LAZY_BYTES and self._unframer.current_frame is None:
            self.append(_Span(self._reader.skip(size), size))  # a large array, read when it is loaded
            return
        buffer = np.empty(size, np.uint8).data  # not zero-filled: readinto writes every byte
        if size and self._readinto(buffer) != size:
            raise FormatError(f"{self._source}: the pickle is truncated")
        self.append(buffer)

    def _readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from the current frame or, outside frames (where pickle puts large
        payloads), straight from the file: ``pickle._Unframer.readinto`` would read a
        temporary bytes object and copy it."""
        frame = self._unframer.current_frame
        if frame is not None and frame.tell() < frame.getbuffer().nbytes:
            return self.readinto(buffer)
        self._unframer.current_frame = None
        done = 0
        while done < buffer.nbytes:
            count = self._reader.readinto(buffer[done:])
            if not count:
                break
            done += count
        return done

    def _text(self, width: int) -> None:
        self.append(str(self.read(self._sized(width)), "utf-8", "surrogatepass"))

    def _refuse_code(self, name: str) -> None:
        raise UnsafeLoadError(
            f"{self._source}: the pickle uses the opcode {name}, which can run code and which ngser never writes. "
            "Nothing was run. Load it with trusted=True only if you trust where the file came from."
        )

    def _refuse_foreign(self, name: str) -> None:
        raise ForeignPickleError(
            f"{self._source}: a pickle, but not one written by ngser (it uses the opcode {name}); load it with "
            "trusted=True (it may run code) if you trust where it came from"
        )

    # An allowlist of opcodes: what ngser's writer emits (protocol 5: the outer tuple of str, int,
    # bytes and a list of buffers). GLOBAL and STACK_GLOBAL stay, so that find_class refuses them by
    # name; every other opcode that can call or fetch an object (REDUCE, BUILD, NEWOBJ, EXT1/2/4,
    # whose callables come from copyreg's extension cache without find_class, PERSID, ...) is
    # refused as code, and the rest, which ngser never writes (memo gets included: they could make
    # two array entries share one buffer), as a foreign pickle.
    dispatch: ClassVar[dict[int, Any]] = {}


def _dispatch() -> dict[int, Any]:
    """The restricted unpickler's opcode table (see the comment above its use)."""
    names = {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes}
    table: dict[int, Any] = {}
    for name in (*ALLOWED_OPCODES, "GLOBAL", "STACK_GLOBAL"):
        code = getattr(pickle, name)[0]
        table[code] = pickle._Unpickler.dispatch[code]
    for name in CODE_OPCODES:
        table[getattr(pickle, name)[0]] = lambda self, n=name: self._refuse_code(n)
    for code in pickle._Unpickler.dispatch:
        if code not in table:
            opname = names.get(code, hex(code))
            table[code] = lambda self, n=opname: self._refuse_foreign(n)
    table[pickle.BYTEARRAY8[0]] = lambda self: self._bytes(8, True)
    table[pickle.BINBYTES8[0]] = lambda self: self._bytes(8, False)
    table[pickle.BINBYTES[0]] = lambda self: self._bytes(4, False)
    table[pickle.BINUNICODE8[0]] = lambda self: self._text(8)
    table[pickle.BINUNICODE[0]] = lambda self: self._text(4)
    return table


# An allowlist of opcodes: what ngser's writer emits (protocol 5: the outer tuple of str, int, bytes
# and a list of buffers). GLOBAL and STACK_GLOBAL stay, so that find_class refuses them by name;
# every other opcode that can call or fetch an object (REDUCE, BUILD, NEWOBJ, EXT1/2/4, whose
# callables come from copyreg's extension cache without find_class, PERSID, ...) is refused as
# code, and the rest, which ngser never writes (memo gets included: they could make two array
# entries share one buffer), as a foreign pickle.
RestrictedUnpickler.dispatch = _dispatch()


class PickleBackend(StreamBackend):
    """The ``"pickle"`` format (``.pkl``, ``.pickle``)."""

    name = "pickle"
    extensions = (".pkl", ".pickle")

    def matches(self, head: bytes) -> bool:
        return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5

    def document(self, graph: Graph) -> tuple[Any, ...]:
        """The outer tuple: everything but the array bytes is inside the checksummed graph pickle."""
        entries, buffers, jobs = [], [], []
        for array in graph.arrays:
            entry, view = ArrayEntry.of(array.id, array.load(), array.label)
            jobs.append(crc32_async(view))
            entries.append(entry)
            buffers.append(pickle.PickleBuffer(view))
        for entry, job in zip(entries, jobs):
            entry.crc = job.result()
        header = {"ngser": graph.meta.get("ngser", ""), "writers": graph.writers}
        body = [header, pack_root(graph), graph.flat_nodes, [e.row(ROW) for e in entries]]
        if graph.tables:
            body.append(pack_tables(graph.tables))
        inner = pack_value_document(body)
        return (TAG, format_of(graph), inner, zlib.crc32(inner), buffers)

    def write_stream(self, graph: Graph, stream: IO[bytes], **options: Any) -> None:
        self.check_options(options)
        pickle.Pickler(stream, protocol=PROTOCOL).dump(self.document(graph))

    def write_frames(self, graph: Graph) -> list[Any]:
        """``graph`` as frames for a transport: ``[pickle bytes, array 0 bytes, array 1 bytes, ...]``.
        The array frames are memoryviews of the arrays' own memory (no copy)."""
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(self.document(graph), protocol=PROTOCOL, buffer_callback=buffers.append)
        return [data, *(buffer.raw() for buffer in buffers)]

    def read(self, stream: IO[bytes], size: int, source: str, limits: Limits = DEFAULT_LIMITS) -> Graph:
        return self._read(stream, size, source, None)

    def open_lazy(self, path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Graph, Callable[[], None]]:
        """The graph with arrays of 64 KiB or more left in the file: each is read (and checked)
        when loaded, so ``ngser info`` and ``verify`` of a 10 GB pickle hold one array at a time."""
        source = os.fspath(path)
        with open(source, "rb") as stream:
            return self._read(stream, os.fstat(stream.fileno()).st_size, source, None, lazy=True), _nothing

    def read_frames(self, frames: list[Any], source: str = "<frames>") -> Graph:
        """The graph of :meth:`write_frames` output. Writable array frames become the arrays'
        memory without a copy; read-only ones are copied."""
        if not frames:
            raise FormatError(f"{source}: no frames")
        view = memoryview(frames[0])
        return self._read(io.BytesIO(view), view.nbytes, source, [memoryview(f) for f in frames[1:]])

    def read_foreign(self, path: PathLike | IO[bytes] | bytes | bytearray | memoryview) -> Any:
        """Load a pickle ngser did not write, as :func:`pickle.load` does: this runs whatever
        code the pickle names. Only for callers that trust the file (``trusted=True``)."""
        if isinstance(path, (bytes, bytearray, memoryview)):
            obj = pickle.loads(path)
        elif isinstance(path, (str, os.PathLike)):
            with open(path, "rb") as stream:
                obj = pickle.load(stream)
        else:
            obj = pickle.load(path)
        if isinstance(obj, tuple) and obj and obj[0] == TAG:  # ngser's layout, with something foreign inside
            raise FormatError("a pickle in ngser's layout that holds objects ngser never writes; it is damaged")
        return obj

    def _read(
        self, stream: IO[bytes], size: int, source: str, buffers: list[memoryview] | None, lazy: bool = False
    ) -> Graph:
        reader = _BoundedReader(stream, size, source)
        try:
            doc = RestrictedUnpickler(reader, source=source, buffers=buffers, lazy=lazy).load()
        except (FormatError, UnsafeLoadError):
            raise
        except MemoryError as exc:
            raise FormatError(f"{source}: the pickle declares an object larger than memory; it is damaged") from exc
        except Exception as exc:
            raise FormatError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
        if not (isinstance(doc, tuple) and len(doc) == 5 and doc[0] == TAG):
            raise ForeignPickleError(
                f"{source}: a pickle, but not one written by ngser; load it with trusted=True (it may run code) "
                "if you trust where it came from"
            )
        return _graph(doc, source, payload_reader(source, 0) if lazy else None)


#: Reads a lazily opened file's array: its entry's ``location`` is then the file offset of its :class:`_Span`.
_SpanReader = Callable[[ArrayEntry], np.ndarray[Any, Any]]


def _graph(doc: tuple[Any, ...], source: str, spans: _SpanReader | None = None) -> Graph:
    _, version, inner, inner_crc, buffers = doc
    check_format(version, source)
    if not isinstance(inner, bytes) or zlib.crc32(inner) != inner_crc:
        raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
    body = unpack_value_document(inner, source)
    if not (isinstance(body, list) and len(body) in (4, 5)):
        raise FormatError(f"{source}: the graph is damaged")
    header, root, flat, table = body[:4]
    tables = unpack_tables(body[4] if len(body) == 5 else None, source)
    if not isinstance(header, dict) or not isinstance(header.get("writers"), dict):
        raise FormatError(f"{source}: the header is damaged")
    flat = checked_flat(flat, source)
    if not isinstance(table, list) or not isinstance(buffers, list) or len(table) != len(buffers):
        raise FormatError(f"{source}: the array table is damaged")
    held = [buffer for buffer in buffers if _is_buffer(buffer) and _size(buffer)]  # b"" is one object
    if len({id(buffer) for buffer in held}) != len(held):
        raise FormatError(f"{source}: two array entries share one buffer; the file is damaged")
    arrays = [_array(ArrayEntry.parse(row, ROW, source), buffer, spans) for row, buffer in zip(table, buffers)]
    meta = {"ngser": header.get("ngser"), "format": version}
    return Graph.from_flat(root, flat, arrays, header["writers"], meta, tables)


def _size(buffer: Any) -> int:
    return buffer.size if isinstance(buffer, _Span) else memoryview(buffer).nbytes


def _is_buffer(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview, pickle.PickleBuffer, _Span))


def _array(entry: ArrayEntry, buffer: Any, spans: _SpanReader | None) -> ArrayNode:
    if isinstance(buffer, _Span) and spans is not None:  # left in the file (open_lazy): read when loaded
        if entry.nbytes != buffer.size:
            raise FormatError(f"{entry.where}: {buffer.size} bytes do not hold {entry.shape} elements of {entry.dtype}")
        entry.location = buffer.offset
        return ArrayNode(entry.id, LazyArray(entry, spans), entry.label)
    if isinstance(buffer, pickle.PickleBuffer):
        buffer = buffer.raw()
    if not isinstance(buffer, (bytes, bytearray, memoryview)):
        raise FormatError(f"{entry.where}: its data is not a byte buffer")
    nbytes = memoryview(buffer).nbytes
    if entry.nbytes != nbytes:
        raise FormatError(f"{entry.where}: {nbytes} bytes do not hold {entry.shape} elements of {entry.dtype}")
    if isinstance(buffer, bytes) or memoryview(buffer).readonly:
        buffer = bytearray(buffer)
    data = entry.array(np.frombuffer(buffer, np.uint8), crc32(buffer))
    return ArrayNode(entry.id, data, entry.label)
