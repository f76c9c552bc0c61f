"""The public entry points: save, load, dumps, loads, convert, and the graph-level functions.

>>> ngser.save({"u": gfu}, "result.h5")                 # a path: format from the extension, atomic
>>> with open("result.bin", "wb") as f:
...     ngser.save({"u": gfu}, f, format="msgpack")       # a binary file object: format= required
>>> ngser.load("result.h5"), ngser.load(open("result.bin", "rb"))
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal, Union

from .atomic import atomic_write
from .backends import DEFAULT_LIMITS, Backend, Limits, format_for_path, get_backend, sniff
from .errors import ArgumentError, FileAccessError, FormatError, UnsafeLoadError
from .graph import Graph
from .graph._decoder import Decoder, Unknown
from .graph._encoder import Encoder
from .serializers import Registry, SerializerRecord, record_of

__all__ = [
    "save",
    "load",
    "dumps",
    "loads",
    "convert",
    "read_graph",
    "read_graph_lazily",
    "sniff_file",
    "write_graph",
    "encode",
    "decode",
    "gc_paused",
    "Format",
    "Fallback",
    "PathLike",
    "Target",
]

Format = Literal["msgpack", "pickle", "hdf5"]
Fallback = Literal["cloudpickle"] | None
PathLike = Union[str, "os.PathLike[str]"]
#: Where :func:`save` writes and :func:`load` reads: a path, or a binary file object.
Target = Union[str, "os.PathLike[str]", IO[bytes]]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (most of the time of building many small
    objects goes to it), restoring its state afterwards, also on errors.

    The collector's first pass after it resumes scans every container object made
    meanwhile that is still alive: free temporaries (the graph) inside the block.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_fallbacks: dict[str, SerializerRecord] = {}


def _fallback(fallback: Fallback) -> SerializerRecord | None:
    if fallback is None:
        return None
    if fallback == "cloudpickle":
        record = _fallbacks.get(fallback)
        if record is None:
            from .serializers.builtin import CLOUDPICKLE

            record = _fallbacks[fallback] = record_of(CLOUDPICKLE)
        return record
    raise ArgumentError(f'fallback= must be None or "cloudpickle", not {fallback!r}')


def _path(target: Any, what: str) -> str | None:
    """``target`` as a path, ``None`` for a file object, or an :class:`ArgumentError`."""
    if isinstance(target, (str, os.PathLike)):
        return os.fspath(target)
    if hasattr(target, what):
        return None
    kind = "writable" if what == "write" else "readable"
    raise ArgumentError(f"expected a path or a {kind} binary file object, got {type(target).__name__}")


def encode(obj: Any, *, fallback: Fallback = None, registry: Registry | None = None) -> Graph:
    """Turn ``obj`` into a :class:`~ngser.graph.Graph` without writing anything.

    >>> graph = ngser.encode([1, (2, 3)])
    >>> graph.root
    [1, (2, 3)]
    """
    with gc_paused():
        return Encoder(registry, _fallback(fallback)).encode(obj)


def decode(
    graph: Graph,
    *,
    trusted: bool = False,
    unknown: Unknown = "error",
    registry: Registry | None = None,
    source: str = "",
) -> Any:
    """Rebuild the objects of ``graph`` (see :func:`encode`).

    >>> ngser.decode(ngser.encode({"a": (1, 2)}))
    {'a': (1, 2)}
    """
    with gc_paused():
        return Decoder(registry, trusted=trusted, unknown=unknown, source=source).decode(graph)


def save(
    obj: Any,
    path: Target,
    *,
    format: Format | None = None,
    fallback: Fallback = None,
    registry: Registry | None = None,
    vtk: bool = False,
    comm: Any = None,
    **options: Any,
) -> None:
    """Save ``obj`` to ``path``, a file name or a binary file object.

    >>> ngser.save({"u": gfu, "mesh": mesh}, "result.h5")                  # HDF5
    >>> ngser.save(model, "model.bin", format="msgpack")
    >>> ngser.save(obj, "run.h5", compression="gzip")                       # HDF5 option

    For a path the format follows the extension unless ``format=`` is given, and the file
    is written to a temporary file beside ``path`` and renamed over it when complete: a
    failed save leaves the previous file as it was. A file object is written from its
    current position and needs ``format=``. ``fallback="cloudpickle"`` stores objects that
    have no serializer as cloudpickle bytes (loading them then needs ``trusted=True``).

    ``vtk=True`` (HDF5 files only; needs NGSolve) also writes a ``/VTKHDF`` group that ParaView
    opens: every GridFunction found under a name (a dict key) is point data of that name
    (``docs/vtk.md``). Name the file ``.vtkhdf`` or ``.hdf`` for ParaView; such a name saves
    as HDF5 with ``vtk=True``, and loads as any ngser file (the format is read from its bytes).

    ``comm=`` (an ``mpi4py`` communicator; every rank calls) saves the distributed meshes, spaces
    and GridFunctions of a parallel run as one file of global objects (:func:`ngser.mpi.save`).
    """
    if comm is not None:
        from . import mpi

        if fallback is not None or vtk is not False:
            raise ArgumentError("a collective save (comm=) takes neither fallback= nor vtk=")
        return mpi.save(obj, path, comm, format=format, registry=registry, **options)  # type: ignore[arg-type]
    target = _path(path, "write")
    if target is None and format is None:
        raise ArgumentError("saving to a file object needs format='msgpack', 'pickle' or 'hdf5'")
    then = None
    if vtk is not False:
        from ._export import vtk_format, vtk_writer

        format = vtk_format(vtk, target, format)
        then = vtk_writer(obj, target)  # the fields are sampled before anything is written
    backend = get_backend(format or format_for_path(target))  # type: ignore[arg-type]
    backend.check_options(options)
    with gc_paused():  # the graph is freed before the collector resumes (it would scan it all)
        graph = encode(obj, fallback=fallback, registry=registry)
        if target is None:
            backend.write_stream(graph, path, **options)  # type: ignore[arg-type]
        else:
            _write_atomically(backend, graph, target, options, then)
        del graph


def load(
    path: Target,
    *,
    trusted: bool = False,
    unknown: Unknown = "error",
    registry: Registry | None = None,
    limits: Limits = DEFAULT_LIMITS,
    comm: Any = None,
) -> Any:
    """Load the object saved in ``path`` (a file name or a binary file object); the format is
    recognised from the file's first bytes.

    >>> mesh, gfu = ngser.load("result.h5")

    Loading never runs code named by the file unless ``trusted=True``; with it, a plain
    pickle that ngser did not write loads as :func:`pickle.load` would load it.
    ``unknown="raw"`` returns :class:`~ngser.RawNode` placeholders for type names no
    installed serializer knows, instead of raising :class:`~ngser.UnknownTypeError`.
    ``limits`` (:class:`~ngser.Limits`) bound what the file may ask for beyond its size.
    ``comm=`` (every rank calls, on any number of ranks) returns the meshes distributed over the
    communicator with their spaces and GridFunctions (:func:`ngser.mpi.load`).
    """
    if comm is not None:
        from . import mpi

        return mpi.load(path, comm, trusted=trusted, unknown=unknown, registry=registry, limits=limits)  # type: ignore[arg-type]
    source = _path(path, "read")
    if source is None:
        stream: IO[bytes] = path  # type: ignore[assignment]
        return _load_stream(stream, trusted=trusted, unknown=unknown, registry=registry, limits=limits)
    name = sniff_file(source)
    backend = get_backend(name)
    with gc_paused():
        graph = _read_or_foreign(backend, trusted, lambda: backend.read_path(source, limits=limits), source)
        if not isinstance(graph, Graph):
            return graph
        result = decode(graph, trusted=trusted, unknown=unknown, registry=registry, source=source)
        del graph  # freed while the collector is paused: it would scan the whole graph on resuming
    return result


def _load_stream(stream: IO[bytes], *, limits: Limits, **kwargs: Any) -> Any:
    """:func:`load` from a binary file object: from its position to its end."""
    seekable = getattr(stream, "seekable", lambda: False)()
    if not seekable or stream.tell() != 0:
        data = stream.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ArgumentError(f"the file object gave {type(data).__name__}, not bytes: open it in binary mode")
        return loads(data, limits=limits, **kwargs)
    head = stream.read(16)
    if not isinstance(head, bytes):
        raise ArgumentError(f"the file object gave {type(head).__name__}, not bytes: open it in binary mode")
    stream.seek(0)
    source = str(getattr(stream, "name", "<stream>"))
    backend = get_backend(_sniffed(head, source))
    with gc_paused():
        graph = _read_or_foreign(
            backend, kwargs["trusted"], lambda: backend.read_stream(stream, source, limits=limits), stream
        )
        if not isinstance(graph, Graph):
            return graph
        return decode(graph, source=source, **kwargs)


def dumps(
    obj: Any, *, format: Format = "msgpack", fallback: Fallback = None, registry: Registry | None = None, **options: Any
) -> bytes:
    """Serialize ``obj`` to bytes in ``format`` (msgpack by default).

    >>> data = ngser.dumps({"a": [1, 2.5, "x"]})
    >>> ngser.loads(data)
    {'a': [1, 2.5, 'x']}
    """
    backend = get_backend(format)
    backend.check_options(options)
    with gc_paused():  # the graph is freed before the collector resumes (it would scan it all)
        return backend.write_bytes(encode(obj, fallback=fallback, registry=registry), **options)


def loads(
    data: bytes | bytearray | memoryview,
    *,
    trusted: bool = False,
    unknown: Unknown = "error",
    registry: Registry | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """Rebuild an object from bytes made by :func:`dumps` (any format, recognised from the bytes)."""
    try:
        view = memoryview(data)
    except TypeError as exc:
        raise ArgumentError(f"loads() takes bytes, not {type(data).__name__}") from exc
    backend = get_backend(_sniffed(bytes(view[:16]), "<bytes>"))
    with gc_paused():
        graph = _read_or_foreign(backend, trusted, lambda: backend.read_bytes(view, limits=limits), view)
        if not isinstance(graph, Graph):
            return graph
        result = decode(graph, trusted=trusted, unknown=unknown, registry=registry, source="<bytes>")
        del graph  # freed while the collector is paused: it would scan the whole graph on resuming
    return result


def _read_or_foreign(backend: Backend, trusted: bool, read: Callable[[], Graph], what: Any) -> Any:
    """``read()``; for a pickle that ngser did not write and ``trusted``, the pickle's object."""
    if not trusted or backend.name != "pickle":
        return read()
    from .backends.pickle_format import ForeignPickleError, PickleBackend

    try:
        return read()
    except (ForeignPickleError, UnsafeLoadError):
        assert isinstance(backend, PickleBackend)
        if isinstance(what, io.IOBase) or hasattr(what, "seek"):
            what.seek(0)
        return backend.read_foreign(what)


def _sniffed(head: bytes, source: str) -> str:
    name = sniff(head)
    if name is None:
        what = "empty" if not head else f"data starting with {head[:8]!r}"
        raise FormatError(f"{source}: not an ngser file ({what}); ngser reads msgpack, pickle and HDF5 files")
    return name


def sniff_file(path: PathLike) -> str:
    """The format of the file ``path`` from its first bytes; a clear error if it is missing or foreign."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as stream:
            head = stream.read(16)
    except FileNotFoundError as exc:
        raise FileAccessError(f"{source}: no such file") from exc
    except IsADirectoryError as exc:
        raise FileAccessError(f"{source}: is a folder, not a file") from exc
    except OSError as exc:
        raise FileAccessError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    if not head:
        raise FormatError(f"{source}: not an ngser file (an empty file); ngser reads msgpack, pickle and HDF5 files")
    return _sniffed(head, source)


def read_graph(path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """Read the graph stored in ``path`` without building any object (checksums are verified)."""
    name = sniff_file(path)
    with gc_paused():
        return get_backend(name).read_path(path, limits=limits)


def read_graph_lazily(path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Graph, Callable[[], None]]:
    """The graph of ``path`` with its arrays left in the file where the format allows it
    (msgpack, HDF5: each array is read and checked when loaded); pickle files are read
    whole. Call the returned function to close the file."""
    backend = get_backend(sniff_file(path))
    with gc_paused():
        return backend.open_lazy(os.fspath(path), limits=limits)


def write_graph(graph: Graph, path: PathLike, *, format: Format | None = None, **options: Any) -> None:
    """Write a graph to ``path`` atomically (the format follows the extension)."""
    backend = get_backend(format or format_for_path(path))
    backend.check_options(options)
    _write_atomically(backend, graph, path, options)


def _write_atomically(
    backend: Backend,
    graph: Graph,
    path: PathLike,
    options: dict[str, Any],
    then: Callable[[str], None] | None = None,
) -> None:
    """Write ``graph`` to a temporary file, call ``then(temp_path)`` on the closed file if given
    (to add to it, e.g. a ``/VTKHDF`` group), and rename it over ``path``: a failure in either
    leaves the previous file as it was."""

    def write(temp: str) -> None:
        backend.write_path(graph, temp, **options)
        if then is not None:
            then(temp)

    atomic_write(path, write)


def convert(
    src: PathLike, dst: PathLike, *, format: Format | None = None, limits: Limits = DEFAULT_LIMITS, **options: Any
) -> None:
    """Rewrite the file ``src`` as ``dst`` in another format, without building any object.

    Works without the libraries of the objects inside (an NGSolve file converts on a
    machine without NGSolve), since only the graph is read and written.

    >>> ngser.convert("result.pkl", "result.h5", compression="gzip")
    """
    graph = read_graph(src, limits=limits)
    write_graph(graph, dst, format=format, **options)
