"""The pickle format: a protocol-5 pickle of the graph that loads without running code.

The file is one pickle of a 6-tuple (see ``docs/format.md``)::

    ("ngser.graph", format_version, header, graph_bytes, graph_crc32, arrays)

``graph_bytes`` is itself a pickle of ``(root, flat_node_table)`` made of plain
Python values and three ngser classes; ``arrays`` lists
``(id, dtype, shape, fortran, crc32, label, buffer)`` with each array's bytes as a
``PickleBuffer``: in-band in files (written without a copy), out-of-band when the
caller of :meth:`PickleBackend.write_bytes` passes a ``buffer_callback``.

Loading uses :class:`RestrictedUnpickler`, which resolves only the names ngser
writes; any other global (``os.system``...) raises :class:`~ngser.UnsafeLoadError`
before it is looked up, unless the caller passed ``trusted=True``.
"""

from __future__ import annotations

import io
import pickle
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any

import numpy as np

from ..arrays import check_shape, describe_dtype, parse_dtype, raw_view
from ..errors import FormatError, UnsafeLoadError
from ..graph import FORMAT_VERSION, ArrayNode, Graph, PairsDict, Ref, flatten_nodes
from . import StreamBackend
from .msgpack_format import _nodes_from_flat, check_format

__all__ = ["PickleBackend", "RestrictedUnpickler", "ForeignPickle", "TAG"]

TAG = "ngser.graph"
PROTOCOL = 5


def _scalar(descr: Any, raw: bytes) -> np.generic:
    dtype = parse_dtype(descr, "numpy scalar")
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise FormatError(f"a numpy scalar of dtype {dtype} has a payload of the wrong size")
    return np.frombuffer(raw, dtype)[0]  # type: ignore[no-any-return]


def _reduce_scalar(value: np.generic) -> tuple[Any, ...]:
    return (_scalar, (describe_dtype(value.dtype), value.tobytes()))


class _DispatchTable(dict):  # type: ignore[type-arg]
    """copyreg-style reducers for the graph values pickle does not know natively."""

    def __missing__(self, cls: type) -> Callable[[Any], Any]:
        if issubclass(cls, np.generic):
            return _reduce_scalar
        raise KeyError(cls)


_DISPATCH = _DispatchTable()

#: The only globals an untrusted load may resolve.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("ngser.graph", "Ref"): Ref,
    ("ngser.graph", "PairsDict"): PairsDict,
    ("ngser.backends.pickle_format", "_scalar"): _scalar,
    ("builtins", "complex"): complex,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (and ``extra``)."""

    def __init__(
        self,
        file: IO[bytes],
        *,
        source: str = "",
        extra: dict[tuple[str, str], Any] | None = None,
        buffers: Iterable[Any] | None = None,
    ) -> None:
        super().__init__(file, buffers=buffers)
        self.source = source
        self.allowed = ALLOWED_GLOBALS if not extra else {**ALLOWED_GLOBALS, **extra}

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise UnsafeLoadError(
                f"{self.source}: the pickle asks for {module}.{name}, which ngser does not write; loading it "
                "could run code. Nothing was run. Pass trusted=True only if you trust where the file came from."
            )
        return found


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

    def _take(self, n: int) -> None:
        if n > self._left:
            raise FormatError(
                f"{self._source}: the pickle is truncated or declares an object of {n} bytes where {self._left} remain"
            )
        self._left -= n

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._stream.read(n)
        self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        self._take(memoryview(buffer).nbytes)
        return self._stream.readinto(buffer)  # type: ignore[attr-defined,no-any-return]

    def readline(self) -> bytes:
        line = self._stream.readline(self._left)
        self._left -= len(line)
        return line


def _dumps(value: Any) -> bytes:
    stream = io.BytesIO()
    pickler = pickle.Pickler(stream, protocol=PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(value)
    return stream.getvalue()


class PickleBackend(StreamBackend):
    """The ``"pickle"`` format (``.pkl``, ``.pickle``)."""

    name = "pickle"
    extensions = (".pkl", ".pickle")

    def matches(self, head: bytes) -> bool:
        return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5

    def document(self, graph: Graph) -> tuple[Any, ...]:
        try:
            inner = _dumps((graph.root, flatten_nodes(graph.nodes)))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise FormatError(f"cannot pickle the graph: {exc}") from exc
        arrays = []
        for array in graph.arrays:
            data = array.load()
            view, fortran = raw_view(data)
            arrays.append(
                (
                    array.id,
                    describe_dtype(data.dtype),
                    data.shape,
                    fortran,
                    zlib.crc32(view),
                    array.label,
                    pickle.PickleBuffer(view),
                )
            )
        header = {"ngser": graph.meta.get("ngser", ""), "writers": graph.writers}
        return (TAG, FORMAT_VERSION, header, inner, zlib.crc32(inner), arrays)

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
        self, stream: IO[bytes], size: int, source: str, *, trusted: bool = False, buffers: Iterable[Any] | None = None
    ) -> Graph:
        reader = _BoundedReader(stream, size, source)
        try:
            if trusted:
                doc = pickle.Unpickler(reader, buffers=buffers).load()  # type: ignore[arg-type]
            else:
                doc = RestrictedUnpickler(reader, source=source, buffers=buffers).load()  # type: ignore[arg-type]
        except (FormatError, UnsafeLoadError):
            raise
        except MemoryError as exc:
            raise FormatError(f"{source}: the pickle declares an object larger than memory; it is damaged") from exc
        except Exception as exc:
            if trusted and not isinstance(exc, (pickle.UnpicklingError, EOFError)):
                raise
            raise FormatError(f"{source}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
        if not (isinstance(doc, tuple) and len(doc) == 6 and doc[0] == TAG):
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
        _, version, header, inner, inner_crc, table = doc
        check_format(version, source)
        if not isinstance(inner, bytes) or zlib.crc32(inner) != inner_crc:
            raise FormatError(f"{source}: the graph is damaged (checksum mismatch)")
        if not isinstance(header, dict) or not isinstance(header.get("writers"), dict):
            raise FormatError(f"{source}: the header is damaged")
        reader = io.BytesIO(inner)
        try:
            unpickler = pickle.Unpickler(reader) if trusted else RestrictedUnpickler(reader, source=source)
            body = unpickler.load()
        except (FormatError, UnsafeLoadError):
            raise
        except Exception as exc:
            raise FormatError(f"{source}: the graph is damaged ({type(exc).__name__}: {exc})") from exc
        if not (isinstance(body, tuple) and len(body) == 2):
            raise FormatError(f"{source}: the graph is damaged")
        root, flat = body
        nodes = _nodes_from_flat(flat, source)
        if not isinstance(table, list):
            raise FormatError(f"{source}: the array table is damaged")
        arrays = [_array(entry, source) for entry in table]
        meta = {"ngser": header.get("ngser"), "format": version}
        return Graph(root, nodes, arrays, header["writers"], meta)


def _array(entry: Any, source: str) -> ArrayNode:
    if not (isinstance(entry, tuple) and len(entry) == 7):
        raise FormatError(f"{source}: an array table entry is damaged")
    nid, descr, shape, fortran, crc, label, buffer = entry
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
    if zlib.crc32(buffer) != crc:
        raise FormatError(f"{where} ({label or 'unnamed'}): the array data is damaged (checksum mismatch)")
    if isinstance(buffer, bytes) or memoryview(buffer).readonly:
        buffer = bytearray(buffer)
    data = np.frombuffer(buffer, np.uint8).view(dtype).reshape(shape, order="F" if fortran else "C")
    return ArrayNode(nid, data, label if isinstance(label, str) else None)
