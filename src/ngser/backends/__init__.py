"""Backends: one file format each, and nothing about classes.

A backend writes a :class:`~ngser.graph.Graph` and reads one back; it imports no serializer,
no registry, no encoder or decoder (``tests/test_layers.py`` checks). Backends are looked up
by format name (``"msgpack"``, ``"pickle"``, ``"hdf5"``), by file extension, or by the first
bytes of a file; their modules are imported on first use, so ``import ngser`` does not import
h5py. The private modules here are the backends' shared I/O: the value codec (``_codec``),
the array table and lazy arrays (``_arrays``), parallel checksums (``_checksum``) and
write-behind flushing (``_writeback``).

>>> backend = get_backend("msgpack")
>>> graph = backend.read_bytes(backend.write_bytes(ngser.encode([1, 2])))
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from ..errors import ArgumentError, FormatError
from ..graph import Graph
from ._writeback import WriteBehind, WriteBehindStream

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "Backend",
    "StreamBackend",
    "BACKENDS",
    "EXTENSIONS",
    "PathLike",
    "available",
    "get_backend",
    "format_for_path",
    "sniff",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Limits:
    """What a file may ask of its reader beyond its own size: readers refuse, with an error that
    names the limit, files that would need more. The defaults suit untrusted files; raise a
    limit for files you trust that need it::

        ngser.load("zeros.h5", limits=ngser.Limits(expansion=10_000))
    """

    #: Bytes an array may take in memory per byte of the file that stores it (HDF5 compressed
    #: datasets: gzip of zeros expands about 1000x).
    expansion: float = 100.0

    def __post_init__(self) -> None:
        if not isinstance(self.expansion, (int, float)) or not self.expansion >= 1:
            raise ArgumentError(f"Limits(expansion=...) must be a number >= 1, not {self.expansion!r}")


#: The limits readers apply when the caller names none.
DEFAULT_LIMITS = Limits()


def _nothing() -> None:
    """The closer of a graph that holds no open file."""


class Backend:
    """The contract every backend fulfils.

    Subclasses set ``name``, ``extensions`` and ``magic`` (or override :meth:`matches`) and
    implement writing and reading for paths, binary file objects and bytes; readers apply
    :class:`Limits` (``limits=``) to what a file may ask for beyond its size. ``options``
    are the format-specific keyword arguments of :func:`ngser.save` (``compression=`` for
    HDF5); :meth:`check_options` refuses others. Reading never runs code from the file:
    there is no ``trusted`` here, since no backend builds objects.
    """

    name: str = ""
    extensions: tuple[str, ...] = ()
    magic: bytes = b""
    #: The keyword options :func:`ngser.save` may pass to this backend.
    options: tuple[str, ...] = ()

    def matches(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` (16 bytes suffice) is in this format."""
        return bool(self.magic) and head.startswith(self.magic)

    def check_options(self, options: dict[str, Any]) -> None:
        """Refuse options this format does not take (:class:`~ngser.ArgumentError`)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ArgumentError(
                f"the {self.name} format takes no option {', '.join(unknown)}"
                + (f" (it takes: {', '.join(self.options)})" if self.options else "")
            )

    # -- writing ------------------------------------------------------------------------
    def write_path(self, graph: Graph, path: PathLike, **options: Any) -> None:
        """Write ``graph`` as the file ``path`` (made anew; :func:`ngser.save` makes it atomic)."""
        raise NotImplementedError

    def write_stream(self, graph: Graph, stream: IO[bytes], **options: Any) -> None:
        """Write ``graph`` to a binary file object, from its current position."""
        raise NotImplementedError

    def write_bytes(self, graph: Graph, **options: Any) -> bytes:
        """``graph`` as the bytes of a file."""
        raise NotImplementedError

    # -- reading ------------------------------------------------------------------------
    def read_path(self, path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        """The graph stored in the file ``path``, every checksum verified."""
        raise NotImplementedError

    def read_stream(self, stream: IO[bytes], source: str, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        """The graph stored in a seekable binary file object, from position 0 to its end."""
        raise NotImplementedError

    def read_bytes(self, data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        """The graph stored in the bytes of a file."""
        raise NotImplementedError

    def open_lazy(self, path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> tuple[Graph, Callable[[], None]]:
        """The graph of ``path`` with its arrays left in the file until loaded (each is read
        and checked then), and the function that closes the file. Formats without an index
        of their arrays read them all now."""
        return self.read_path(path, limits=limits), _nothing


class StreamBackend(Backend):
    """A backend that writes its files front to back and reads them from a seekable stream:
    subclasses implement :meth:`write_stream` and :meth:`read`."""

    def read(self, stream: IO[bytes], size: int, source: str, limits: Limits = DEFAULT_LIMITS) -> Graph:
        """Read a graph from ``stream`` (at position 0), whose total length is ``size`` bytes."""
        raise NotImplementedError

    def write_path(self, graph: Graph, path: PathLike, **options: Any) -> None:
        with open(path, "wb") as stream, WriteBehind(stream.fileno()) as behind:
            self.write_stream(graph, WriteBehindStream(stream, behind), **options)  # type: ignore[arg-type]

    def write_bytes(self, graph: Graph, **options: Any) -> bytes:
        stream = io.BytesIO()
        self.write_stream(graph, stream, **options)
        return stream.getvalue()

    def read_path(self, path: PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        with open(path, "rb", buffering=0) as stream:
            size = os.fstat(stream.fileno()).st_size
            return self.read(stream, size, os.fspath(path), limits)

    def read_stream(self, stream: IO[bytes], source: str, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(0)
        return self.read(stream, size, source, limits)

    def read_bytes(self, data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Graph:
        view = memoryview(data)
        return self.read(io.BytesIO(view), view.nbytes, "<bytes>", limits)


#: Format name -> "module:class" of its backend.
BACKENDS: dict[str, str] = {
    "msgpack": "ngser.backends.msgpack_format:MsgpackBackend",
    "pickle": "ngser.backends.pickle_format:PickleBackend",
    "hdf5": "ngser.backends.hdf5_format:HDF5Backend",
}

#: File extension -> format name.
EXTENSIONS: dict[str, str] = {
    ".msgpack": "msgpack",
    ".mpk": "msgpack",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}

_instances: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend for the format ``name`` (:class:`~ngser.ArgumentError` for an unknown name)."""
    known = _instances.get(name)
    if known is not None:
        return known
    target = BACKENDS.get(name) if isinstance(name, str) else None
    if target is None:
        raise ArgumentError(f"unknown format {name!r}; ngser knows {', '.join(sorted(BACKENDS))}")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FormatError(f"the {name} format is not available: {exc}") from exc
    backend: Backend = getattr(module, cls_name)()
    _instances[name] = backend
    return backend


def available() -> list[str]:
    """The format names whose backends can be imported here."""
    names = []
    for name in BACKENDS:
        try:
            get_backend(name)
        except FormatError:
            continue
        names.append(name)
    return names


def format_for_path(path: PathLike) -> str:
    """The format a file name's extension asks for."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    name = EXTENSIONS.get(ext)
    if name is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise ArgumentError(
            f"{os.fspath(path)}: cannot tell the format from the extension {ext or '(none)'!r}; use one of "
            f"{known}, or pass format='msgpack', 'pickle' or 'hdf5'"
        )
    return name


def sniff(head: bytes) -> str | None:
    """The format of data starting with ``head`` (16 bytes suffice), or ``None``."""
    for name in BACKENDS:
        try:
            backend = get_backend(name)
        except FormatError:
            continue
        if backend.matches(head):
            return name
    return None
