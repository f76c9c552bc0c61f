"""Backends: one file format each, and nothing about classes.

A backend writes a :class:`~ngser.graph.Graph` and reads one back. Backends are
looked up by format name (``"msgpack"``, ``"pickle"``, ``"hdf5"``), by file
extension, or by the first bytes of a file; their modules are imported on first
use, so ``import ngser`` does not import h5py.
"""

from __future__ import annotations

import importlib
import io
import os
from typing import IO, Any

from ..errors import FormatError
from ..graph import Graph
from ..writeback import WriteBehind, WriteBehindStream

__all__ = [
    "Backend",
    "StreamBackend",
    "BACKENDS",
    "EXTENSIONS",
    "available",
    "get_backend",
    "format_for_path",
    "sniff",
]

PathLike = str | os.PathLike[str]


class Backend:
    """Base class of backends.

    Subclasses set ``name``, ``extensions`` and ``magic`` and implement the four
    read/write methods. ``options`` are the format-specific keyword arguments of
    :func:`ngser.save` (``compression=`` for HDF5); a backend rejects options it
    does not know with :class:`~ngser.FormatError`.
    """

    name: str = ""
    extensions: tuple[str, ...] = ()
    magic: bytes = b""
    #: The keyword options :func:`ngser.save` may pass to this backend.
    options: tuple[str, ...] = ()

    def matches(self, head: bytes) -> bool:
        """Whether a file starting with ``head`` is in this format."""
        return bool(self.magic) and head.startswith(self.magic)

    def write_path(self, graph: Graph, path: PathLike, **options: Any) -> None:
        raise NotImplementedError

    def write_bytes(self, graph: Graph, **options: Any) -> bytes:
        raise NotImplementedError

    def read_path(self, path: PathLike, *, trusted: bool = False) -> Graph:
        raise NotImplementedError

    def read_bytes(self, data: bytes | bytearray | memoryview, *, trusted: bool = False) -> Graph:
        raise NotImplementedError

    def check_options(self, options: dict[str, Any]) -> None:
        """Refuse options this format does not take."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise FormatError(
                f"the {self.name} format takes no option {', '.join(unknown)}"
                + (f" (it takes: {', '.join(self.options)})" if self.options else "")
            )


class StreamBackend(Backend):
    """A backend that writes to and reads from a binary stream."""

    def write(self, graph: Graph, stream: IO[bytes], **options: Any) -> None:
        raise NotImplementedError

    def read(self, stream: IO[bytes], size: int, source: str, *, trusted: bool = False) -> Graph:
        """Read a graph from ``stream``, whose total length is ``size`` bytes."""
        raise NotImplementedError

    def write_path(self, graph: Graph, path: PathLike, **options: Any) -> None:
        with open(path, "wb") as stream, WriteBehind(stream.fileno()) as behind:
            self.write(graph, WriteBehindStream(stream, behind), **options)  # type: ignore[arg-type]

    def write_bytes(self, graph: Graph, **options: Any) -> bytes:
        stream = io.BytesIO()
        self.write(graph, stream, **options)
        return stream.getvalue()

    def read_path(self, path: PathLike, *, trusted: bool = False) -> Graph:
        with open(path, "rb", buffering=0) as stream:
            size = os.fstat(stream.fileno()).st_size
            return self.read(stream, size, os.fspath(path), trusted=trusted)  # type: ignore[arg-type]

    def read_bytes(self, data: bytes | bytearray | memoryview, *, trusted: bool = False) -> Graph:
        view = memoryview(data)
        return self.read(io.BytesIO(view), view.nbytes, "<bytes>", trusted=trusted)


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
    """The backend for the format ``name``."""
    backend = _instances.get(name)
    if backend is not None:
        return backend
    target = BACKENDS.get(name)
    if target is None:
        raise FormatError(f"unknown format {name!r}; ngser knows {', '.join(sorted(BACKENDS))}")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FormatError(f"the {name} format is not available: {exc}") from exc
    backend = _instances[name] = getattr(module, cls_name)()
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
        raise FormatError(
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
