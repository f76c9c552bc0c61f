"""dask.distributed integration: an ``"ngser"`` serialization family, arrays as separate frames.

Importing this module (it imports ``distributed``)

* registers the serialization family ``"ngser"``: :func:`dumps` encodes an object with ngser and
  writes the graph with the pickle backend, each numpy array as its own zero-copy frame
  (out-of-band ``PickleBuffer``); :func:`loads` reads it back through ngser's restricted unpickler,
  so a frame from a peer never runs code. Select it per client::

      import ngser.distributed
      client = Client(cluster, serializers=["ngser", "dask", "pickle"],
                      deserializers=["ngser", "dask", "pickle"])

* routes registered classes through it in dask's default ``["dask", "pickle"]`` serializers as
  well (worker-to-worker transfers use those and cannot be configured): every class registered
  with :func:`ngser.register` after this import, and NGSolve/netgen classes as soon as dask meets
  one, get a ``dask_serialize`` entry that calls :func:`dumps`. Workers must import this module
  too, e.g. ``dask worker --preload ngser.distributed`` or a module the tasks import.

Objects the ngser family cannot encode make it raise ``NotImplementedError``, so dask falls back
to its next serializer (pickle). See ``docs/distributed.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distributed.protocol.serialize import dask_deserialize, dask_serialize, register_serialization_family

from .api import gc_paused
from .backends.pickle_format import PickleBackend
from .errors import FormatError, UnsupportedTypeError
from .graph._decoder import Decoder
from .graph._encoder import Encoder
from .serializers import Serializer, default_registry
from .serializers.registry import REGISTER_HOOKS

__all__ = ["FAMILY", "dumps", "loads", "register", "register_types"]

FAMILY = "ngser"
_BACKEND = PickleBackend()


def dumps(obj: Any, context: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[Any]]:
    """Serialize ``obj`` for dask: ``(header, [graph_pickle, array_0, array_1, ...])``.

    Array frames are memoryviews of the arrays' own memory (no copy). Raises
    ``NotImplementedError`` when an object inside has no serializer, so dask tries its next
    serializer.

    >>> header, frames = ngser.distributed.dumps({"u": np.arange(3.0)})
    >>> len(frames)
    2
    """
    try:
        with gc_paused():
            graph = Encoder(default_registry).encode(obj)
    except UnsupportedTypeError as exc:
        raise NotImplementedError(str(exc)) from exc
    frames = _BACKEND.write_frames(graph)
    arrays = len(frames) - 1
    header = {"ngser-arrays": arrays, "writeable": (False,) + (True,) * arrays}
    return header, frames


def loads(header: dict[str, Any], frames: Sequence[Any]) -> Any:
    """Rebuild an object from :func:`dumps` output, never running code named by the frames.

    Writable array frames become the arrays' memory without a copy; read-only ones are copied.
    """
    if not frames:
        raise FormatError("an ngser dask message has no frames")
    with gc_paused():
        graph = _BACKEND.read_frames(list(frames), "<dask frames>")
        return Decoder(default_registry, source="<dask frames>").decode(graph)


def _dask_dumps(obj: Any) -> tuple[dict[str, Any], list[Any]]:
    if default_registry.for_type(type(obj)) is None:
        raise NotImplementedError(f"{type(obj).__qualname__} has no ngser serializer")  # a subclass: pickle it
    return dumps(obj)


def _dask_loads(header: dict[str, Any], frames: Sequence[Any]) -> Any:
    return loads(header, frames)


def register_types(classes: Sequence[type]) -> None:
    """Make dask's ``"dask"`` serializer send objects of ``classes`` through :func:`dumps`."""
    for cls in classes:
        dask_serialize.register(cls)(_dask_dumps)
        dask_deserialize.register(cls)(_dask_loads)


def _on_register(serializer: Serializer) -> None:
    if default_registry.for_name(serializer.name) is serializer:
        register_types(serializer.types)


def _register_ngsolve() -> None:
    from .serializers.ngsolve import serializers

    default_registry.for_name("ngsolve.Mesh")  # runs the NGSolve provider once
    register_types([cls for serializer in serializers() for cls in serializer.types])


def register() -> None:
    """Register the ``"ngser"`` family and the hooks (done on import; calling it again is harmless)."""
    register_serialization_family(FAMILY, dumps, loads)
    if _on_register not in REGISTER_HOOKS:
        REGISTER_HOOKS.append(_on_register)
    for top in ("ngsolve", "netgen", "pyngcore"):
        dask_serialize.register_lazy(top)(_register_ngsolve)
        dask_deserialize.register_lazy(top)(_register_ngsolve)


register()
