"""Serializers: how one class becomes a graph state and comes back.

A serializer knows one class and nothing about files. Subclass :class:`Serializer`
for full control (the shape of ASDF's converters), or let :func:`ngser.register`
build one from ``dump``/``load`` functions or from the object's own
``__getstate__``/``__dict__``.

Two ways to rebuild an object:

* **one phase** -- ``load(state) -> obj``. Children in ``state`` are complete
  objects. A cycle through such an object cannot be rebuilt and is refused when
  saving.
* **two phase** -- ``create() -> obj`` makes an empty object, ``fill(obj, state)``
  completes it. References to the object can be handed out before it is filled,
  so cycles through it work (this is pickle's reduce + BUILD).

Example::

    class PointSerializer(ngser.Serializer):
        name = "geometry.Point"
        version = 1
        types = (Point,)

        def dump(self, obj):
            return {"xy": (obj.x, obj.y)}

        def load(self, state):
            return Point(*state["xy"])

    ngser.register(PointSerializer())
"""

from __future__ import annotations

import copyreg
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from ..errors import StateError

__all__ = ["Serializer", "StateSerializer", "FunctionSerializer"]


class Serializer:
    """Base class of serializers.

    Class attributes:

    ``name``
        The stable type name stored in files (``"pkg.Thing"``), never an import path.
    ``version``
        Version of the state layout; bump it when ``dump`` changes and register a
        :func:`ngser.migration` from the old version.
    ``types``
        The classes this serializer handles.
    ``subclasses``
        Also handle subclasses of ``types`` (off by default: a subclass saved under
        its parent's name would load as the parent).
    ``trusted_only``
        Loading such nodes runs code from the file; refused unless ``trusted=True``.
    ``trusted_reason``
        For ``trusted_only`` serializers: what loading runs, for the refusal's message
        (``"its bytes go to NGSolve's archive reader unchecked"``).
    ``canonical``
        Optional method mapping an object to the one that stands for it (wrapper identity).
    ``fingerprint``
        Optional method: a cheap value that changes when the object changes (checkpoints store
        objects that have one once, see :class:`~ngser.Checkpoint`).
    """

    name: str = ""
    version: int = 1
    types: tuple[type, ...] = ()
    subclasses: bool = False
    trusted_only: bool = False
    trusted_reason: str = ""
    #: Optional ``canonical(obj, cache) -> obj``: the object that stands for ``obj`` in the
    #: graph. For libraries that hand out several Python wrappers of one underlying object
    #: (NGSolve does), return the first wrapper met; ``cache`` is one dict per encoding pass.
    #: Called only for objects the encoder has not met before. Define it as a method. The
    #: pickle shim calls it too, with one lasting ``weakref.WeakValueDictionary`` (it cannot
    #: tell pickling calls apart): check that an entry found still stands for ``obj``.
    canonical: Callable[[Any, MutableMapping[Any, Any]], Any] | None = None
    #: Optional ``fingerprint(obj) -> hashable``, for objects that usually stay the same from one
    #: save to the next (meshes, spaces, geometries): a cheap value that changes whenever the
    #: object's state may have changed. A :class:`~ngser.Checkpoint` stores such an object once
    #: and refers to it from later steps while its fingerprint is unchanged. Define it as a method.
    fingerprint: Callable[[Any], Any] | None = None

    def dump(self, obj: Any) -> Any:
        """Return the state of ``obj``: any value ngser can serialize.

        Registered objects and numpy arrays inside it become shared references.
        """
        raise NotImplementedError

    def load(self, state: Any) -> Any:
        """Rebuild an object from a complete ``state`` (one-phase serializers)."""
        obj = self.create()
        self.fill(obj, state)
        return obj

    def create(self) -> Any:
        """Make an empty object to be completed by :meth:`fill` (two-phase serializers)."""
        raise NotImplementedError

    def load_untrusted(self, state: Any) -> Any:
        """For a ``trusted_only`` serializer of an optional part (a mesh's geometry): what an
        untrusted load builds instead, running nothing from the file, e.g. a placeholder the
        objects that refer to it recognise, with a warning. Without an override, untrusted
        loads of such nodes raise :class:`~ngser.UnsafeLoadError`."""
        raise NotImplementedError

    def fill(self, obj: Any, state: Any) -> None:
        """Complete ``obj``, made by :meth:`create`, from ``state``."""
        raise NotImplementedError

    @property
    def two_phase(self) -> bool:
        """Whether this serializer builds objects in two steps (and so allows cycles)."""
        return type(self).create is not Serializer.create

    def describe(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version})"


def _has_custom(cls: type, method: str) -> bool:
    impl = getattr(cls, method, None)
    return impl is not None and impl is not getattr(object, method, None)


class StateSerializer(Serializer):
    """The default serializer: the object's own pickle state.

    ``dump`` uses ``__getstate__()`` when the class defines one, otherwise the
    instance ``__dict__`` and ``__slots__``; loading makes an instance without
    calling ``__init__`` and restores the state with ``__setstate__`` or by filling
    ``__dict__`` and the slots, exactly as pickle's BUILD does. Dataclasses (frozen
    or with slots) and ``__slots__`` classes work.
    """

    def __init__(self, cls: type[Any], name: str, version: int = 1) -> None:
        self.cls: type[Any] = cls
        self.name = name
        self.version = version
        self.types = (cls,)
        self._custom_getstate = _has_custom(cls, "__getstate__")
        self._setstate = getattr(cls, "__setstate__", None)
        self._slots: list[str] = copyreg._slotnames(cls)  # type: ignore[attr-defined]
        self._plain_dict = not self._custom_getstate and not self._slots

    @property
    def plain_dict(self) -> bool:
        """Whether the state is the instance ``__dict__`` itself (no ``__getstate__``, no slots)."""
        return self._plain_dict

    @property
    def restores_dict(self) -> bool:
        """Whether :meth:`fill` of a dict state is ``obj.__dict__.update(state)``."""
        return self._plain_dict and self._setstate is None

    def dump(self, obj: Any) -> Any:
        if self._plain_dict:
            return obj.__dict__
        if self._custom_getstate or sys.version_info >= (3, 11):
            return obj.__getstate__()
        return _default_getstate(obj, self._slots)

    def create(self) -> Any:
        new: Any = self.cls.__new__  # the class's own __new__, as pickle calls it
        return new(self.cls)

    def fill(self, obj: Any, state: Any) -> None:
        if self._setstate is not None:
            obj.__setstate__(state)
        elif self._plain_dict and type(state) is dict:
            obj.__dict__.update(state)
        else:
            build_state(obj, state)


def _default_getstate(obj: Any, slots: list[str]) -> Any:
    """Python 3.10's missing ``object.__getstate__`` for ``__slots__`` classes."""
    inst_dict = getattr(obj, "__dict__", None) or None
    slot_values = {name: getattr(obj, name) for name in slots if hasattr(obj, name)}
    return (inst_dict, slot_values) if slot_values else inst_dict


def build_state(obj: Any, state: Any) -> None:
    """Restore ``state`` on ``obj`` the way pickle's BUILD opcode does: ``None``, a dict of
    attributes, or a pair ``(dict or None, dict of slot values)``. Any other state (from a damaged
    or hand-made file) is refused with :class:`~ngser.StateError` before anything is set."""
    if state is None:
        return
    slot_state = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slot_state = state
    if not (state is None or isinstance(state, dict)) or not (slot_state is None or isinstance(slot_state, dict)):
        raise StateError(
            f"the state of a {type(obj).__qualname__} object must be a dict of its attributes, or a pair (dict or "
            f"None, dict of slot values), as its default serializer writes; got {_shape(state, slot_state)}"
        )
    if slot_state and not all(type(key) is str for key in slot_state):
        raise StateError(
            f"the slot values in the state of a {type(obj).__qualname__} object have keys that are not str"
        )
    try:
        if state:
            obj.__dict__.update(state)
        if slot_state:
            for key, value in slot_state.items():
                object.__setattr__(obj, key, value)
    except (AttributeError, TypeError) as exc:  # no __dict__, a slot the class lacks, __class__ set to a value
        raise StateError(f"the state of a {type(obj).__qualname__} object does not fit its class: {exc}") from exc


def _shape(state: Any, slot_state: Any) -> str:
    if slot_state is None:
        return type(state).__name__
    return f"({type(state).__name__}, {type(slot_state).__name__})"


class FunctionSerializer(StateSerializer):
    """A serializer made from ``dump``/``load`` functions given to :func:`ngser.register`.

    With ``load`` it is one-phase; without it, the state returned by ``dump`` is
    restored like the default state (two-phase, cycles allowed).
    """

    def __init__(
        self,
        cls: type,
        name: str,
        version: int = 1,
        dump: Callable[[Any], Any] | None = None,
        load: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(cls, name, version)
        #: The functions given to :func:`ngser.register` (``None``: the default behaviour).
        self.dump_function = dump
        self.load_function = load

    def dump(self, obj: Any) -> Any:
        if self.dump_function is not None:
            return self.dump_function(obj)
        return super().dump(obj)

    def load(self, state: Any) -> Any:
        if self.load_function is not None:
            return self.load_function(state)
        return super().load(state)

    @property
    def two_phase(self) -> bool:
        return self.load_function is None
