"""The pickle shim: plain ``pickle``, ``copy`` and ``multiprocessing`` go through ngser's serializers.

Classes registered with :func:`ngser.register` (after this module is imported) are routed
through their ngser serializer by an entry in :data:`copyreg.dispatch_table`, the table that
``pickle``, ``copy.copy``, ``copy.deepcopy`` and ``multiprocessing``'s ``ForkingPickler``
consult before an object's own ``__reduce_ex__``; classes are not patched. Shared references
and cycles are kept by pickle's (and copy's) own memo::

    import pickle
    import ngser  # installs the register hook

    @ngser.register(name="geometry.Point")
    class Point: ...

    p = Point()
    q = pickle.loads(pickle.dumps([p, p]))   # Point's serializer dump/fill ran; q[0] is q[1]
    ngser.shim.install(OtherClass)           # route a class registered some other way

The reductions
--------------
* one-phase serializers (``load(state)``): ``(ngser.shim._REBUILD, (name, version, hint, state))``;
* two-phase serializers: ``(ngser.shim._CREATE, (name, version, hint), state)``. Pickle memoises
  the created object before it unpickles ``state``, so cycles through it work. When the loading
  side's serializer restores state exactly as pickle's BUILD does (the default
  ``StateSerializer``), BUILD applies ``state``; otherwise (a custom ``fill``, or a state written by
  an older serializer version that needs migrations) ``_CREATE`` plants a one-shot ``__setstate__``
  in the new instance's ``__dict__`` that removes itself and calls the serializer's ``fill``. This
  works for ``pickle`` and ``copy`` alike (``copy._reconstruct`` does not support the 6-tuple
  ``state_setter`` form). A custom two-phase serializer whose objects have no ``__dict__`` is
  reduced one-phase (``load``); a cycle through such an object cannot go through the shim.

``hint`` is the module that registered the class. A process that unpickles a name it has not
registered imports that module, and only that one, then looks the name up again. This happens in
plain ``pickle.loads``, which is trusted by nature; ngser's own restricted unpickler never
resolves these functions at all (ngser files hold the structured graph, not shim reductions).

Protocols 0 and 1
-----------------
A ``copyreg`` reducer is not told the protocol. The reduction's callable therefore is a small
object whose own ``__reduce_ex__(protocol)`` refuses protocols below 2 with
:class:`PickleProtocolError` (and otherwise pickles as the global ``ngser.shim._REBUILD``): pickle
calls it with the real protocol the first time it writes the callable, before any of the object's
state. So ``pickle.dumps(obj, protocol=1)`` is a clear error instead of a stream that NGSolve
objects would abort the process on.
"""

from __future__ import annotations

import copyreg
import importlib
import re
import sys
import threading
import weakref
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from .errors import NgserError, PickleProtocolError, RegistrationError, SerializerError, UnknownTypeError
from .serializers import Serializer, SerializerRecord, default_registry
from .serializers import registry as registry_module
from .serializers.registry import REGISTER_HOOKS

__all__ = ["PickleProtocolError", "install", "uninstall", "installed", "install_ngsolve", "MIN_PROTOCOL"]

#: The lowest pickle protocol the shim writes.
MIN_PROTOCOL = 2

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_HINTS: dict[type, str | None] = {}
_LOCK = threading.Lock()


class _Entry:
    """A reconstruction function that pickles as a global of this module, for protocol >= 2 only."""

    __slots__ = ("_func", "_global")

    def __init__(self, global_name: str, func: Callable[..., Any]) -> None:
        self._global = global_name
        self._func = func

    def __call__(self, *args: Any) -> Any:
        return self._func(*args)

    def __reduce_ex__(self, protocol: Any) -> str:
        if isinstance(protocol, int) and protocol < MIN_PROTOCOL:
            raise PickleProtocolError(
                f"pickle protocol {protocol} cannot carry objects that ngser serializes (NGSolve objects abort "
                f"the process under protocols 0 and 1); use protocol {MIN_PROTOCOL} or higher, e.g. "
                "pickle.dumps(obj) with the default protocol"
            )
        return self._global

    def __reduce__(self) -> str:
        return self._global

    def __repr__(self) -> str:
        return f"ngser.shim.{self._global}"


# -- loading side ----------------------------------------------------------------------------
def _find(name: str, hint: str | None) -> SerializerRecord:
    """The record of the serializer registered under ``name``, importing ``hint`` (only it) if needed."""
    if not isinstance(name, str):
        raise UnknownTypeError(f"a pickled ngser object has a type name of type {type(name).__name__}")
    serializer = default_registry.record_for_name(name)
    if serializer is None and isinstance(hint, str) and _MODULE_NAME.match(hint) and hint not in sys.modules:
        try:
            importlib.import_module(hint)
        except ImportError as exc:
            raise UnknownTypeError(
                f"cannot unpickle an object of type name {name!r}: it is not registered here, and importing "
                f"{hint!r}, the module that registered it when it was pickled, failed ({exc}). Install it or "
                "import the package that registers that name."
            ) from exc
        serializer = default_registry.record_for_name(name)
    if serializer is None:
        place = f" (importing {hint!r} did not register it)" if hint else ""
        raise UnknownTypeError(
            f"cannot unpickle an object of type name {name!r}: no serializer is registered for it{place}; "
            "import the package that registers it before unpickling"
        )
    return serializer


def _upgrade(serializer: SerializerRecord, version: int, state: Any) -> Any:
    return default_registry.upgrade(serializer, version, state, "in a pickle")


def _rebuild(name: str, version: int, hint: str | None, state: Any) -> Any:
    serializer = _find(name, hint)
    state = _upgrade(serializer, version, state)
    try:
        return serializer.build(state)
    except NgserError as exc:
        raise exc.locate(path="<pickle>", type_name=name) from None
    except Exception as exc:
        raise SerializerError(f"the serializer of {name!r} failed to load a pickled object: {exc}") from exc


def _create(name: str, version: int, hint: str | None) -> Any:
    serializer = _find(name, hint)
    if serializer.create is None or serializer.fill is None:
        raise SerializerError(
            f"cannot unpickle {name!r}: it was pickled as a two-phase object, but the installed serializer "
            "builds it in one phase; unpickle it with the serializer version that pickled it"
        )
    try:
        obj = serializer.create()
    except Exception as exc:
        raise SerializerError(f"the serializer of {name!r} failed to create a pickled object: {exc}") from exc
    if version == serializer.version and serializer.pickle_build:
        return obj  # pickle's BUILD (or copy's state restore) applies the state
    namespace = getattr(obj, "__dict__", None)
    if not isinstance(namespace, dict):
        raise SerializerError(
            f"cannot unpickle {name!r} (version {version}, installed {serializer.version}): its state must go "
            "through the serializer's fill(), but its objects have no __dict__ to receive it"
        )

    fill = serializer.fill

    def setstate(state: Any) -> None:
        namespace.pop("__setstate__", None)
        try:
            fill(obj, _upgrade(serializer, version, state))
        except NgserError as exc:
            raise exc.locate(path="<pickle>", type_name=name) from None

    namespace["__setstate__"] = setstate
    return obj


_REBUILD = _Entry("_REBUILD", _rebuild)
_CREATE = _Entry("_CREATE", _create)


# -- saving side ------------------------------------------------------------------------------
def _same(obj: Any) -> Any:
    return obj


#: The reduction of a wrapper that another object stands for (``Serializer.canonical``).
_SAME = _Entry("_SAME", _same)

#: The shim's ``canonical`` cache. Pickle's memo keeps identity within one pickling call by
#: ``id()``, but the reducer cannot tell calls apart: the entries are weak, and the serializers'
#: ``canonical`` hooks check that an entry found still stands for the object.
_CANONICAL: weakref.WeakValueDictionary[Any, Any] = weakref.WeakValueDictionary()


def _reduce(obj: Any) -> Any:
    """The ``copyreg`` reducer of every installed class."""
    cls = type(obj)
    serializer = default_registry.record_for_type(cls)
    if serializer is None:  # unregistered since: pickle it as if never installed
        uninstall(cls)
        return obj.__reduce_ex__(4)
    if serializer.canonical is not None:
        with _LOCK:
            stand_in = serializer.canonical(obj, _CANONICAL)
        if stand_in is not obj:  # pickled once, by its own reduction; this wrapper loads as it
            return (_SAME, (stand_in,))
    hint = _HINTS.get(cls)
    try:
        state = serializer.dump(obj)
    except NgserError as exc:
        raise exc.locate(path="<pickle>", type_name=serializer.name) from None
    except Exception as exc:
        raise SerializerError(
            f"the serializer of {serializer.name!r} failed to dump an object of type {cls.__qualname__} for "
            f"pickling: {type(exc).__name__}: {exc}"
        ) from exc
    if serializer.two_phase and (serializer.pickle_build or isinstance(getattr(obj, "__dict__", None), dict)):
        return (_CREATE, (serializer.name, serializer.version, hint), state)
    return (_REBUILD, (serializer.name, serializer.version, hint, state))


def install(cls: type, *, module: str | None = None) -> None:
    """Route pickling and copying of ``cls`` (exactly; not its subclasses) through its ngser serializer.

    ``cls`` must be registered in the default registry. ``module`` is the module a process that
    meets the type name unregistered imports to register it (default: ``cls.__module__``)::

        ngser.register(Point, name="geometry.Point")   # in module geometry.serial
        ngser.shim.install(Point, module="geometry.serial")
    """
    if not isinstance(cls, type):
        raise RegistrationError(f"ngser.shim.install expects a class, got {cls!r}")
    if default_registry.for_type(cls) is None:
        raise RegistrationError(
            f"{cls.__module__}.{cls.__qualname__} has no ngser serializer; register it with ngser.register "
            "before installing the pickle shim for it"
        )
    hint = module if module is not None else cls.__module__
    with _LOCK:
        _HINTS[cls] = None if hint in ("__main__", "__mp_main__") else hint
        copyreg.pickle(cls, _reduce)


def uninstall(cls: type) -> None:
    """Give ``cls`` back its own pickling (undo :func:`install`)."""
    with _LOCK:
        _HINTS.pop(cls, None)
        if copyreg.dispatch_table.get(cls) is _reduce:
            del copyreg.dispatch_table[cls]


def installed() -> list[type]:
    """The classes currently routed through ngser."""
    return [cls for cls in _HINTS if copyreg.dispatch_table.get(cls) is _reduce]


def _all_subclasses(classes: Iterable[type]) -> list[type]:
    seen: dict[type, None] = {}
    stack = list(classes)
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen[cls] = None
            stack.extend(cls.__subclasses__())
    return list(seen)


def install_ngsolve() -> list[type]:
    """Route NGSolve and netgen objects through ngser's NGSolve serializers in plain pickle.

    Opt-in: afterwards ``pickle.dumps(mesh)`` holds ngser's structured state instead of NGSolve's
    archive bytes, and protocols 0 and 1 are a clear error instead of aborting the process.
    Imports NGSolve. Returns the classes installed (every subclass that exists now included).
    """
    from .serializers.ngsolve import serializers

    default_registry.for_name("ngsolve.Mesh")  # runs the NGSolve provider once
    classes = []
    for serializer in serializers():
        roots = _all_subclasses(serializer.types) if serializer.subclasses else list(serializer.types)
        for cls in roots:
            if cls not in classes and default_registry.for_type(cls) is not None:
                install(cls, module="ngser.serializers.ngsolve")
                classes.append(cls)
    return classes


#: ngser's modules between a user's register() call and the hook.
_OWN_MODULES = frozenset({__name__, registry_module.__name__, "ngser.distributed"})


def _registering_module() -> str | None:
    """The module that called :func:`ngser.register` (the first frame outside ngser's registry)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        if name not in _OWN_MODULES:
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None


def _on_register(serializer: Serializer) -> None:
    """The :data:`ngser.registry.REGISTER_HOOKS` entry: install the shim for a newly registered class."""
    if default_registry.for_name(serializer.name) is not serializer:
        return  # registered in a private registry: another process could not find it by name
    caller = _registering_module()
    for cls in serializer.types:
        module = caller if caller not in (None, "__main__", "__mp_main__") else cls.__module__
        install(cls, module=module)


if _on_register not in REGISTER_HOOKS:
    REGISTER_HOOKS.append(_on_register)
