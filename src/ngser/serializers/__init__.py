"""The serializer framework and the serializers that ship with ngser.

* :class:`Serializer` (``base``): how one class becomes a graph state and comes back;
  :class:`StateSerializer` and :class:`FunctionSerializer` are what :func:`register` builds.
* :class:`Registry` (``registry``): which serializer handles which class and type name, the
  migrations, and the lazy providers; each serializer is normalised once into a
  :class:`SerializerRecord` (``_record``) that the walks read.
* ``builtin``: the cloudpickle fallback and a few standard types; ``ngsolve``: NGSolve and
  netgen. Both are registered lazily by providers, so importing ngser imports neither
  cloudpickle nor NGSolve.

Serializers know no file format: nothing here imports a backend.
"""

from ._record import SerializerRecord, record_of
from .base import FunctionSerializer, Serializer, StateSerializer
from .registry import Registry, default_registry, migration, register, unregister

__all__ = [
    "Serializer",
    "StateSerializer",
    "FunctionSerializer",
    "SerializerRecord",
    "record_of",
    "Registry",
    "default_registry",
    "register",
    "unregister",
    "migration",
]
