"""The exceptions ngser raises.

Every failure a caller can cause is a subclass of :class:`NgserError`, so one
``except ngser.NgserError`` catches them all. Messages say what went wrong, where
(file, node id, type name) and what to do about it.
"""

from __future__ import annotations

import pickle

__all__ = [
    "NgserError",
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
]


class NgserError(Exception):
    """Base class of every error ngser raises on purpose."""


class FormatError(NgserError, ValueError):
    """A file or byte string is damaged, truncated or not in a format ngser knows."""


class UnsupportedTypeError(NgserError, TypeError):
    """An object has no registered serializer (and no fallback was requested)."""


class UnknownTypeError(NgserError):
    """A file names a type that no installed serializer handles."""


class VersionError(NgserError):
    """A file was written by a newer serializer or a newer ngser format than installed."""


class UnsafeLoadError(NgserError):
    """Loading would run code named by the file; pass ``trusted=True`` if you trust it."""


class GraphError(NgserError, ValueError):
    """The object graph cannot be stored or rebuilt (a cycle through an immutable
    object, containers nested too deeply, an inconsistent graph)."""


class RegistrationError(NgserError, ValueError):
    """A serializer registration is invalid (duplicate name, bad arguments)."""


class SerializerError(NgserError):
    """A serializer's ``dump``, ``load``, ``create`` or ``fill`` raised; the message
    names the type and node, and the original exception is chained."""


class FileAccessError(NgserError, OSError):
    """A file cannot be opened, read or written (missing, no permission, disk full)."""


class PickleProtocolError(NgserError, pickle.PicklingError):
    """An object routed through ngser's pickle shim was pickled with protocol 0 or 1
    (NGSolve objects abort the process under those protocols); use protocol 2 or higher."""
