"""The pickle format: a protocol-5 pickle of the graph that loads without running code.

The file is one pickle of a 5-tuple (see ``docs/format.md``)::

    ("ngser.graph", format_version, graph_bytes, graph_crc32, buffers)

``graph_bytes`` is ``[header, root, flat_node_table, array_table]`` in ngser's msgpack
value encoding (the same as the msgpack format's document): decoding it is bounded by its
length and resolves no name, and everything but the array bytes is under ``graph_crc32``.
``array_table`` lists ``[id, dtype, shape, fortran, crc32, label]``; ``buffers`` holds
each array's bytes as a ``PickleBuffer`` in the same order: in-band in files (written
without a copy), out-of-band when the caller of :meth:`PickleBackend.write_bytes` passes
a ``buffer_callback``. The outer tuple is read by a bounded pure-Python unpickler, so a
damaged length or memo index cannot make the reader allocate more than the file holds.

Loading uses :class:`RestrictedUnpickler`, which resolves only the names ngser
writes; any other global (``os.system``...) raises :class:`~ngser.UnsafeLoadError`
before it is looked up, unless the caller passed ``trusted=True``.
"""

from __future__ import annotations

import io
import pickle
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any, ClassVar

import numpy as np

from ..arrays import check_shape, describe_dtype, parse_dtype, raw_view
from ..checksum import crc32, crc32_async
from ..errors import FormatError, UnsafeLoadError
from ..graph import FORMAT_VERSION, ArrayNode, Graph
from . import StreamBackend
from .msgpack_format import _checked_flat, check_format, pack_value_document, unpack_value_document

__all__ = ["PickleBackend", "RestrictedUnpickler", "ForeignPickle", "TAG"]

TAG = "ngser.graph"
PROTOCOL = 5


#: The globals an untrusted load may resolve: none. ngser's pickles hold only tuples, bytes and
#: buffers; the graph inside is in ngser's msgpack value encoding.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {}


class ForeignPickle:
    """A pickle that ngser did not write, loaded with ``trusted=True``: ``obj`` is its content."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj


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


class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Reads the small outer tuple with the pure-Python unpickler: its memo is a dict (a damaged
    memo index cannot make it allocate gigabytes), every declared length is checked against
    the bytes left before anything is allocated, and unless ``trusted`` it resolves only
    :data:`ALLOWED_GLOBALS` (none)."""

    def __init__(self, reader: _BoundedReader, *, trusted: bool, source: str, buffers: Any) -> None:
        super().__init__(reader, buffers=buffers)  # type: ignore[arg-type]
        self._reader, self._trusted, self._source = reader, trusted, source

    def find_class(self, module: str, name: str) -> Any:
        if self._trusted:
            return super().find_class(module, name)
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafeLoadError(
                f"{self._source}: the pickle asks for {module}.{name}, which ngser does not write; loading it "
                "could run code. Nothing was run. Pass trusted=True only if you trust where the file came from."
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
        buffer = memoryview(np.empty(size, np.uint8))  # not zero-filled: readinto writes every byte
        if size and self._readinto(buffer) != size:
            raise FormatError(f"{self._source}: the pickle is truncated")
        self.append(buffer)

    def _readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` from the current frame or, outside frames (where pickle puts large
        payloads), straight from the file: ``pickle._Unframer.readinto`` would read a
        temporary bytes object and copy it."""
        frame = self._unframer.current_frame
        if frame is not None and frame.tell() < frame.getbuffer().nbytes:
            return self.readinto(buffer)  # type: ignore[no-any-return]
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

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
    dispatch[pickle.BYTEARRAY8[0]] = lambda self: self._bytes(8, True)
    dispatch[pickle.BINBYTES8[0]] = lambda self: self._bytes(8, False)
    dispatch[pickle.BINBYTES[0]] = lambda self: self._bytes(4, False)
    dispatch[pickle.BINUNICODE8[0]] = lambda self: self._text(8)
    dispatch[pickle.BINUNICODE[0]] = lambda self: self._text(4)


class PickleBackend(StreamBackend):
    """The ``"pickle"`` format (``.pkl``, ``.pickle``)."""

    name = "pickle"
    extensions = (".pkl", ".pickle")

    def matches(self, head: bytes) -> bool:
        return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5

    def document(self, graph: Graph) -> tuple[Any, ...]:
        """The outer tuple: everything but the array bytes is inside the checksummed graph pickle."""
        table, buffers, jobs = [], [], []
        for array in graph.arrays:
            data = array.load()
            view, fortran = raw_view(data)
            jobs.append(crc32_async(view))
            table.append([array.id, describe_dtype(data.dtype), list(data.shape), fortran, 0, array.label])
            buffers.append(pickle.PickleBuffer(view))
        for entry, job in zip(table, jobs):
            entry[4] = job.result()
        header = {"ngser": graph.meta.get("ngser", ""), "writers": graph.writers}
        inner = pack_value_document([header, graph.root, graph.flat_nodes, table])
        return (TAG, FORMAT_VERSION, inner, zlib.crc32(inner), buffers)

    def write(self, graph: Graph, stream: IO[bytes], **options: Any) -> None:
        self.check_options(options)
        pickle.Pickler(stream, protocol=PROTOCOL).dump(self.document(graph))

    def write_bytes(
        self, graph: Graph, *, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None, **options: Any
    ) -> bytes:
        """Pickle ``graph``; with ``buffer_callback`` array bytes go out-of-band (zero copy)."""
        self.check_options(options)
        return pickle.dumps(self.document(graph), protocol=PROTOCOL, buffer_callback=buffer_callback)

    def read(
        self,
        stream: IO[bytes],
        size: int,
        source: str,
        *,
        trusted: bool = False,
        buffers: Iterable[Any] | None = None,
    ) -> Graph:
        reader = _BoundedReader(stream, size, source)
        try:
            doc = RestrictedUnpickler(reader, trusted=trusted, source=source, buffers=buffers).load()
        except (FormatError, UnsafeLoadError):
            raise
        except MemoryError as exc:
            raise FormatError(f"{source}: the pickle declares an object larger than memory; it is damaged") from exc
        except Exception as exc:
            if trusted and not isinstance(exc, (pickle.UnpicklingError, EOFError, ValueError, KeyError)):
                raise
            raise FormatError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
        if not (isinstance(doc, tuple) and len(doc) == 5 and doc[0] == TAG):
            if trusted:
                return Graph(ForeignPickle(doc), [], [], {}, {"foreign": True})
            raise FormatError(f"{source}: a pickle, but not one written by ngser")
        return self._graph(doc, source, trusted)

    def read_bytes(
        self, data: bytes | bytearray | memoryview, *, trusted: bool = False, buffers: Iterable[Any] | None = None
    ) -> Graph:
        view = memoryview(data)
        return self.read(io.BytesIO(view), view.nbytes, "<bytes>", trusted=trusted, buffers=buffers)

    def _graph(self, doc: tuple[Any, ...], source: str, trusted: bool) -> Graph:
        _, version, inner, inner_crc, buffers = doc
        check_format(version, source)
        if not isinstance(inner, bytes) or zlib.crc32(inner) != inner_crc:
            raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
        body = unpack_value_document(inner, source)
        if not (isinstance(body, list) and len(body) == 4):
            raise FormatError(f"{source}: the graph is damaged")
        header, root, flat, table = body
        if not isinstance(header, dict) or not isinstance(header.get("writers"), dict):
            raise FormatError(f"{source}: the header is damaged")
        flat = _checked_flat(flat, source)
        if not isinstance(table, list) or not isinstance(buffers, list) or len(table) != len(buffers):
            raise FormatError(f"{source}: the array table is damaged")
        arrays = [_array(entry, buffer, source) for entry, buffer in zip(table, buffers)]
        meta = {"ngser": header.get("ngser"), "format": version}
        return Graph.from_flat(root, flat, arrays, header["writers"], meta)


def _array(entry: Any, buffer: Any, source: str) -> ArrayNode:
    if not (isinstance(entry, list) and len(entry) == 6):
        raise FormatError(f"{source}: an array table entry is damaged")
    nid, descr, shape, fortran, crc, label = entry
    where = f"{source}: array node {nid}"
    dtype = parse_dtype(descr, where)
    shape = check_shape(shape, where)
    if isinstance(buffer, pickle.PickleBuffer):
        buffer = buffer.raw()
    if not isinstance(buffer, (bytes, bytearray, memoryview)):
        raise FormatError(f"{where}: its data is not a byte buffer")
    nbytes = memoryview(buffer).nbytes
    if int(np.prod(shape, dtype=object)) * dtype.itemsize != nbytes:
        raise FormatError(f"{where}: {nbytes} bytes do not hold {shape} elements of {dtype}")
    if crc32(buffer) != crc:
        raise FormatError(f"{where} ({label or 'unnamed'}): the array data is damaged (checksum mismatch)")
    if isinstance(buffer, bytes) or memoryview(buffer).readonly:
        buffer = bytearray(buffer)
    data = np.frombuffer(buffer, np.uint8).view(dtype).reshape(shape, order="F" if fortran else "C")
    return ArrayNode(nid, data, label if isinstance(label, str) else None)
