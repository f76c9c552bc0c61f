"""NGSolve's own archive state, for the few parts that have no structured Python API.

Archive-based NGSolve objects pickle as ``([children..., data, version_stored, version_needed],)``:
children are shared C++ objects hoisted as Python objects, the three byte strings are ngcore's
binary archive of the object's own fields and the library versions that wrote and need it.
These bytes are version-bound: a newer NGSolve may refuse them ("Library netgen must be at
least ..."). ngser uses them only where the Python API offers nothing better (geometries, a
CoefficientFunction node's own parameters, the phase of a Periodic space).
"""

from __future__ import annotations

from typing import Any

from ...errors import StateError, UnsupportedTypeError

__all__ = ["archive_state", "restore_archive", "check_bytes"]


def archive_state(obj: Any, what: str) -> dict[str, Any]:
    """``{"children", "data", "version_stored", "version_needed"}`` of an archive-based object."""
    try:
        state = obj.__getstate__()
    except Exception as exc:  # NGSolve raises NgException (a RuntimeError-like type)
        raise UnsupportedTypeError(f"NGSolve cannot serialize {what}: {exc}") from exc
    if not (isinstance(state, tuple) and len(state) == 1 and isinstance(state[0], list) and len(state[0]) >= 3):
        raise UnsupportedTypeError(
            f"{what} has no archive state NGSolve knows how to write (got {type(state).__name__}); "
            "this NGSolve version is not supported for this object"
        )
    items = state[0]
    return {
        "children": list(items[:-3]),
        "data": bytes(items[-3]),
        "version_stored": bytes(items[-2]),
        "version_needed": bytes(items[-1]),
    }


def check_bytes(state: dict[str, Any], what: str) -> None:
    """Refuse archive states whose byte fields are missing or not bytes (the state is not one ngser wrote)."""
    for key in ("data", "version_stored", "version_needed"):
        if not isinstance(state.get(key), (bytes, bytearray)):
            raise StateError(f"the state of {what} lacks its {key!r} bytes")


def restore_archive(cls: type, state: dict[str, Any], what: str, children: list[Any] | None = None) -> Any:
    """Rebuild an archive-based object of class ``cls`` as pickle does (``__new__`` + ``__setstate__``)."""
    check_bytes(state, what)
    kids = list(state.get("children", []) if children is None else children)
    obj = cls.__new__(cls)  # type: ignore[call-overload]  # cls is an NGSolve class
    try:
        obj.__setstate__(
            ([*kids, bytes(state["data"]), bytes(state["version_stored"]), bytes(state["version_needed"])],)
        )
    except Exception as exc:
        raise StateError(
            f"NGSolve could not rebuild {what} from its stored archive bytes: {exc}. These bytes are bound to "
            "the NGSolve version that wrote them; load the file with that version"
        ) from exc
    return obj
