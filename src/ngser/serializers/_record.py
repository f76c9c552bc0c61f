"""One record per serializer: what the encoder, decoder and pickle shim need to know, found once.

A :class:`~ngser.Serializer` may override any of ``dump``, ``load``, ``create`` and ``fill``,
define ``canonical``, or be the default :class:`~ngser.serializers.base.StateSerializer`
whose work the walks can do with C-level callables. :func:`record_of` looks at a serializer
once, when it is registered (or made a fallback), and writes the answers into a
:class:`SerializerRecord`; nothing else inspects serializer classes (the pattern of asdf's
``ConverterProxy``).

>>> record = record_of(FunctionSerializer(Point, "geometry.Point"))
>>> record.two_phase, record.fills_dict
(True, True)
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..errors import RegistrationError
from .base import FunctionSerializer, Serializer, StateSerializer

__all__ = ["SerializerRecord", "record_of"]


@dataclass(frozen=True, eq=False)
class SerializerRecord:
    """A serializer, normalised: its identity and the callables the walks call.

    Exactly one of ``load`` (one phase: ``load(state) -> obj``) and the pair ``create`` /
    ``fill`` (two phases) is set.
    """

    serializer: Serializer
    name: str
    version: int
    types: tuple[type, ...]
    subclasses: bool
    trusted_only: bool
    #: ``dump(obj) -> state``
    dump: Callable[[Any], Any]
    load: Callable[[Any], Any] | None
    create: Callable[[], Any] | None
    fill: Callable[[Any, Any], None] | None
    #: ``canonical(obj, cache) -> obj`` or ``None`` (see :attr:`Serializer.canonical`)
    canonical: Callable[[Any, MutableMapping[Any, Any]], Any] | None
    #: ``fill(obj, state)`` of a dict state is ``obj.__dict__.update(state)``: the decoder
    #: decodes such states straight into the new instance's ``__dict__``.
    fills_dict: bool
    #: pickle's BUILD opcode restores a state exactly as ``fill`` does (the pickle shim
    #: then lets pickle apply the state itself).
    pickle_build: bool
    #: For ``trusted_only`` serializers of optional parts: ``load_untrusted(state) -> obj``
    #: builds a stand-in without running anything from the file (see
    #: :meth:`Serializer.load_untrusted`).
    load_untrusted: Callable[[Any], Any] | None = None
    #: What loading a ``trusted_only`` node runs (:attr:`Serializer.trusted_reason`).
    trusted_reason: str = ""
    #: ``fingerprint(obj) -> hashable`` or ``None`` (see :attr:`Serializer.fingerprint`)
    fingerprint: Callable[[Any], Any] | None = None

    @property
    def two_phase(self) -> bool:
        """Whether objects are created empty and filled later (cycles through them allowed)."""
        return self.create is not None

    def untrusted_stand_in(self) -> SerializerRecord:
        """The record an untrusted load uses instead: one phase, :attr:`load_untrusted`."""
        assert self.load_untrusted is not None
        return dataclasses.replace(
            self, load=self.load_untrusted, create=None, fill=None, fills_dict=False, trusted_only=False
        )

    def build(self, state: Any) -> Any:
        """An object from a complete ``state``, in one phase or two."""
        if self.load is not None:
            return self.load(state)
        assert self.create is not None and self.fill is not None
        obj = self.create()
        self.fill(obj, state)
        return obj

    def describe(self) -> str:
        return self.serializer.describe()


def _overrides(serializer: Serializer, method: str, base: type) -> bool:
    return getattr(type(serializer), method) is not getattr(base, method)


def record_of(serializer: Serializer) -> SerializerRecord:
    """Normalise ``serializer`` (validating its name and version) into a :class:`SerializerRecord`."""
    if not isinstance(serializer, Serializer):
        raise RegistrationError(f"expected an ngser.Serializer, got {type(serializer).__name__}")
    name, version = serializer.name, serializer.version
    if not isinstance(name, str) or not name:
        raise RegistrationError(f"{serializer.describe()} needs a non-empty string name")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RegistrationError(f"serializer {name!r}: version must be an int >= 1, got {version!r}")
    types = tuple(serializer.types)
    if not all(isinstance(t, type) for t in types):
        raise RegistrationError(f"serializer {name!r}: types must be classes, got {types!r}")

    dump: Callable[[Any], Any] = serializer.dump
    create: Callable[[], Any] | None = serializer.create if serializer.two_phase else None
    fill = serializer.fill if create is not None else None
    load: Callable[[Any], Any] | None = None if create is not None else serializer.load
    fills_dict = pickle_build = False
    if isinstance(serializer, StateSerializer):
        # C-level callables for the common case: saving and loading many small objects spends
        # its time in these calls, and a bound Python method costs several times more.
        custom_dump = _overrides(serializer, "dump", StateSerializer)
        if isinstance(serializer, FunctionSerializer):
            custom_dump = _overrides(serializer, "dump", FunctionSerializer)
            if serializer.dump_function is not None:
                dump = serializer.dump_function
            elif serializer.plain_dict and not custom_dump:
                dump = operator.attrgetter("__dict__")
            if serializer.load_function is not None and not _overrides(serializer, "load", FunctionSerializer):
                load = serializer.load_function
        elif serializer.plain_dict and not custom_dump:
            dump = operator.attrgetter("__dict__")
        default_fill = not _overrides(serializer, "fill", StateSerializer)
        default_create = create is not None and not _overrides(serializer, "create", StateSerializer)
        if default_create and getattr(serializer.cls, "__new__", None) is object.__new__:
            create = functools.partial(object.__new__, serializer.cls)
        pickle_build = default_fill
        fills_dict = create is not None and default_fill and serializer.restores_dict
    return SerializerRecord(
        serializer=serializer,
        name=name,
        version=version,
        types=types,
        subclasses=bool(serializer.subclasses),
        trusted_only=bool(serializer.trusted_only),
        dump=dump,
        load=load,
        create=create,
        fill=fill,
        canonical=serializer.canonical,
        fills_dict=fills_dict,
        pickle_build=pickle_build,
        load_untrusted=serializer.load_untrusted if _overrides(serializer, "load_untrusted", Serializer) else None,
        trusted_reason=str(getattr(serializer, "trusted_reason", "") or ""),
        fingerprint=getattr(serializer, "fingerprint", None),
    )
