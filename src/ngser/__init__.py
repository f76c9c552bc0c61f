"""ngser: serialization of scientific objects (NGSolve first) to pickle, msgpack and HDF5.

>>> import ngser
>>> ngser.save({"mesh": mesh, "u": gfu}, "result.h5")
>>> data = ngser.load("result.h5")

A registry of serializers turns objects into a backend-neutral object graph (shared
references and cycles kept, numpy arrays as arrays); backends write the graph as
pickle, msgpack or HDF5. See ``docs/`` for the file formats and how to write a
serializer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _moved
from ._export import export
from ._version import __version__
from .api import convert, decode, dumps, encode, load, loads, read_graph, save, write_graph
from .backends import Limits
from .errors import (
    ArgumentError,
    CollectiveError,
    FileAccessError,
    FormatError,
    GraphError,
    NgserError,
    NgserWarning,
    NotFoundError,
    PickleProtocolError,
    RegistrationError,
    SerializerError,
    StateError,
    UnknownTypeError,
    UnsafeLoadError,
    UnsupportedTypeError,
    VersionError,
)
from .graph import Graph, RawNode
from .serializers import Registry, Serializer, default_registry, migration, register, unregister
from .view import ArrayInfo, FileView, open

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

__all__ = [
    "__version__",
    "save",
    "load",
    "dumps",
    "loads",
    "convert",
    "encode",
    "decode",
    "read_graph",
    "open",
    "Limits",
    "FileView",
    "ArrayInfo",
    "write_graph",
    "register",
    "unregister",
    "migration",
    "Serializer",
    "Registry",
    "default_registry",
    "Graph",
    "RawNode",
    "NgserError",
    "NgserWarning",
    "FormatError",
    "UnsupportedTypeError",
    "UnknownTypeError",
    "VersionError",
    "UnsafeLoadError",
    "GraphError",
    "RegistrationError",
    "SerializerError",
    "FileAccessError",
    "PickleProtocolError",
    "ArgumentError",
    "NotFoundError",
    "StateError",
    "CollectiveError",
    "Checkpoint",
    "export",
]

_moved.install()  # ngser.registry, ngser.serializer, ... of ngser 0.1 stay importable


def __getattr__(name: str) -> Any:
    if name == "Checkpoint":  # imported on first use: it needs h5py, which `import ngser` does not load
        from .checkpoint import Checkpoint

        return Checkpoint
    return _moved.attribute(name)


# Route classes registered from now on through ngser in plain pickle/copy/multiprocessing.
from . import shim as shim  # noqa: E402
