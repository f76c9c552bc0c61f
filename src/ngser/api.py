"""The public entry points: save, load, dumps, loads, convert."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal

from .atomic import atomic_write
from .backends import Backend, format_for_path, get_backend, sniff
from .backends.pickle_format import ForeignPickle
from .decoder import Decoder, Unknown
from .encoder import Encoder
from .errors import FileAccessError, FormatError
from .graph import Graph
from .registry import Registry
from .serializer import Serializer

__all__ = ["save", "load", "dumps", "loads", "convert", "read_graph", "sniff_file", "write_graph", "encode", "decode"]

Format = Literal["msgpack", "pickle", "hdf5"]
Fallback = Literal["cloudpickle"] | None
PathLike = str | os.PathLike[str]


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


def _fallback(fallback: Fallback) -> Serializer | None:
    if fallback is None:
        return None
    if fallback == "cloudpickle":
        from .serializers.builtin import CLOUDPICKLE

        return CLOUDPICKLE
    raise ValueError(f'fallback= must be None or "cloudpickle", not {fallback!r}')


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
    """Rebuild the objects of ``graph`` (see :func:`encode`)."""
    if graph.meta.get("foreign"):
        return graph.root.obj if isinstance(graph.root, ForeignPickle) else graph.root
    with gc_paused():
        return Decoder(registry, trusted=trusted, unknown=unknown, source=source).decode(graph)


def save(
    obj: Any,
    path: PathLike,
    *,
    format: Format | None = None,
    fallback: Fallback = None,
    registry: Registry | None = None,
    **options: Any,
) -> None:
    """Save ``obj`` to ``path``; the format follows the extension unless ``format=`` is given.

    >>> ngser.save({"u": gfu, "mesh": mesh}, "result.h5")                  # HDF5
    >>> ngser.save(model, "model.bin", format="msgpack")
    >>> ngser.save(obj, "run.h5", compression="gzip")                       # HDF5 option

    The file is written to a temporary file beside ``path`` and renamed over it when
    complete: a failed save leaves the previous file as it was. ``fallback="cloudpickle"``
    stores objects that have no serializer as cloudpickle bytes (loading them then
    needs ``trusted=True``).
    """
    name = format or format_for_path(path)
    backend = get_backend(name)
    backend.check_options(options)
    with gc_paused():  # the graph is freed before the collector resumes (it would scan it all)
        _write_atomically(backend, encode(obj, fallback=fallback, registry=registry), path, options)


def load(path: PathLike, *, trusted: bool = False, unknown: Unknown = "error", registry: Registry | None = None) -> Any:
    """Load the object saved in ``path``; the format is recognised from the file's first bytes.

    >>> mesh, gfu = ngser.load("result.h5")

    Loading never runs code named by the file unless ``trusted=True``.
    ``unknown="raw"`` returns :class:`~ngser.RawNode` placeholders for type names no
    installed serializer knows, instead of raising :class:`~ngser.UnknownTypeError`.
    """
    with gc_paused():
        graph = read_graph(path, trusted=trusted)
        result = decode(graph, trusted=trusted, unknown=unknown, registry=registry, source=os.fspath(path))
        del graph  # freed while the collector is paused: it would scan the whole graph on resuming
    return result


def dumps(
    obj: Any, *, format: Format = "msgpack", fallback: Fallback = None, registry: Registry | None = None, **options: Any
) -> bytes:
    """Serialize ``obj`` to bytes in ``format`` (msgpack by default).

    >>> data = ngser.dumps({"a": [1, 2.5, "x"]})
    >>> ngser.loads(data)
    {'a': [1, 2.5, 'x']}
    """
    backend = get_backend(format)
    with gc_paused():  # the graph is freed before the collector resumes (it would scan it all)
        return backend.write_bytes(encode(obj, fallback=fallback, registry=registry), **options)


def loads(
    data: bytes | bytearray | memoryview,
    *,
    trusted: bool = False,
    unknown: Unknown = "error",
    registry: Registry | None = None,
) -> Any:
    """Rebuild an object from bytes made by :func:`dumps` (any format, recognised from the bytes)."""
    view = memoryview(data)
    name = sniff(bytes(view[:16]))
    if name is None:
        raise FormatError(f"the data is not in a format ngser reads (starts with {bytes(view[:8])!r})")
    with gc_paused():
        graph = get_backend(name).read_bytes(view, trusted=trusted)
        result = decode(graph, trusted=trusted, unknown=unknown, registry=registry, source="<bytes>")
        del graph  # freed while the collector is paused: it would scan the whole graph on resuming
    return result


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
    name = sniff(head)
    if name is None:
        what = "an empty file" if not head else f"data starting with {head[:8]!r}"
        raise FormatError(f"{source}: not an ngser file ({what}); ngser reads msgpack, pickle and HDF5 files")
    return name


def read_graph(path: PathLike, *, trusted: bool = False) -> Graph:
    """Read the graph stored in ``path`` without building any object (checksums are verified)."""
    name = sniff_file(path)
    with gc_paused():
        return get_backend(name).read_path(path, trusted=trusted)


def read_graph_lazily(path: PathLike, *, trusted: bool = False) -> tuple[Graph, Callable[[], None] | None]:
    """The graph of ``path`` with its arrays left in the file where the format allows it
    (msgpack, HDF5: each array is read and checked when loaded); pickle files are read
    whole. Call the returned function, if any, to close the file."""
    backend = get_backend(sniff_file(path))
    opener = getattr(backend, "open_lazy", None)
    with gc_paused():
        if opener is not None:
            return opener(os.fspath(path), trusted=trusted)  # type: ignore[no-any-return]
        return backend.read_path(path, trusted=trusted), None


def write_graph(graph: Graph, path: PathLike, *, format: Format | None = None, **options: Any) -> None:
    """Write a graph to ``path`` atomically (the format follows the extension)."""
    backend = get_backend(format or format_for_path(path))
    backend.check_options(options)
    _write_atomically(backend, graph, path, options)


def _write_atomically(backend: Backend, graph: Graph, path: PathLike, options: dict[str, Any]) -> None:
    atomic_write(path, lambda temp: backend.write_path(graph, temp, **options))


def convert(src: PathLike, dst: PathLike, *, format: Format | None = None, **options: Any) -> None:
    """Rewrite the file ``src`` as ``dst`` in another format, without building any object.

    Works without the libraries of the objects inside (an NGSolve file converts on a
    machine without NGSolve), since only the graph is read and written.

    >>> ngser.convert("result.pkl", "result.h5", compression="gzip")
    """
    graph = read_graph(src)
    write_graph(graph, dst, format=format, **options)
