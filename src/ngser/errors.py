"""The exceptions ngser raises.

Every failure a caller can cause is a subclass of :class:`NgserError`, so one
``except ngser.NgserError`` catches them all. Messages say what went wrong, where
(file, node id, type name) and what to do about it.
"""

from __future__ import annotations

import pickle

__all__ = [
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
    "shown",
]


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: at most ``limit`` characters, and safe for values
    Python refuses to print (integers of more than 4,300 digits) or whose repr fails.

    >>> shown(2**20000)
    '<an integer of 20001 bits>'
    """
    if type(value) is int and value.bit_length() > 256:
        return f"<an integer of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class NgserWarning(UserWarning):
    """Base class of ngser's warnings: something was left out that the caller may want, e.g. a
    GridFunction that a VTK view cannot hold. Silence with ``warnings.simplefilter("ignore", ngser.NgserWarning)``."""


#: The longest message an :class:`NgserError` carries; longer ones keep their start and end.
MAX_MESSAGE = 4000


def bounded(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` cut to at most about ``limit`` characters: its start and end, and how much was
    left out between them.

    >>> len(bounded("x" * 10**6)) < 4100
    True
    """
    if len(message) <= limit:
        return message
    head, tail = message[: limit * 3 // 4], message[-(limit // 4) :]
    return f"{head} ... [{len(message) - len(head) - len(tail):,} characters left out] ... {tail}"


class NgserError(Exception):
    """Base class of every error ngser raises on purpose.

    An error raised while a particular object is saved or built carries where it happened:
    :attr:`path` (the file, ``"<bytes>"``, or ``None``), :attr:`node` (the node id) and
    :attr:`type_name` (the serializer's stable type name); the message starts with them.
    """

    path: str | None = None
    node: int | None = None
    type_name: str | None = None

    def __init__(
        self, *args: object, path: str | None = None, node: int | None = None, type_name: str | None = None
    ) -> None:
        if args and isinstance(args[0], str) and len(args[0]) > MAX_MESSAGE:
            args = (bounded(args[0]), *args[1:])  # e.g. a library's message quoting a huge value of a file
        super().__init__(*args)
        if path is not None or node is not None or type_name is not None:  # the message says where already
            self.path, self.node, self.type_name = path, node, type_name

    def locate(self, *, path: str | None = None, node: int | None = None, type_name: str | None = None) -> NgserError:
        """Record where this error happened and put it in front of the message, once;
        returns ``self`` (for ``raise exc.locate(...)``)."""
        if self.node is not None or self.type_name is not None:
            return self  # located already, at the innermost node
        if self.args and not isinstance(self.args[0], str):
            self.args = (str(self.args[0]), *self.args[1:])
        self.path, self.node, self.type_name = path or None, node, type_name
        where = None if not type_name else f"{type_name!r}" + (f" (node {node})" if node is not None else "")
        parts = [p for p in (path, where) if p]
        message = str(self.args[0]) if self.args else ""
        prefix = ": ".join(parts)
        if prefix and not message.startswith(prefix):
            self.args = (bounded(f"{prefix}: {message}"), *self.args[1:])
        return self


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


class ArgumentError(NgserError, ValueError, TypeError):
    """A function of ngser was called with an argument it does not take (an unknown option, a
    value out of range, a wrong type). Also a ``ValueError`` and a ``TypeError``, so code that
    catches either keeps working."""


class NotFoundError(NgserError, KeyError):
    """A lookup by name, id or path found nothing (:meth:`ngser.FileView.load`,
    :meth:`~ngser.FileView.array`). Also a ``KeyError``."""

    def __str__(self) -> str:  # KeyError's own __str__ shows the message as a repr
        return str(self.args[0]) if self.args else ""


class CollectiveError(NgserError):
    """The ranks of an MPI communicator did not make the same collective ngser call in time: a
    rank did not call it, the ranks passed different objects, or another rank failed (the
    message names the rank and its error). See ``docs/distributed.md``."""


class StateError(FormatError):
    """A serializer was handed a state it cannot build an object from.

    The state came from a damaged or hand-made file, or through the pickle shim or
    ``copy.deepcopy``; the message says what is wrong with the state. A
    :class:`FormatError`, since the data is not in the form its serializer writes.
    """
