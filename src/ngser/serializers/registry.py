"""The registry: which serializer handles which class, and which type name.

Lookups go two ways: by class when saving (:meth:`Registry.for_type`) and by the
stable type name when loading (:meth:`Registry.for_name`). The registry is an
allowlist: loading never imports a path named by a file; it only finds names
registered here, or registered by a *provider* that ngser knows in advance.

Providers register serializers for a whole library lazily: the NGSolve
serializers are imported only when an NGSolve object is met or an ``ngsolve.*``
name is loaded. Third-party packages add providers through the entry point group
``ngser.serializers`` (entry point name: the top-level module or type-name prefix,
value: a function that registers serializers), discovered on first need.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ..errors import RegistrationError, UnknownTypeError, UnsupportedTypeError, VersionError, shown
from ._record import SerializerRecord, record_of
from .base import FunctionSerializer, Serializer

__all__ = ["Registry", "SerializerRecord", "default_registry", "register", "migration", "unregister"]

T = TypeVar("T")
Migration = Callable[[Any], Any]

ENTRY_POINT_GROUP = "ngser.serializers"

#: Built-in providers: top-level module (for classes) or type-name prefix (for files)
#: -> "module:function" that registers the serializers.
BUILTIN_PROVIDERS: dict[str, str] = {
    "ngsolve": "ngser.serializers.ngsolve:register_all",
    "netgen": "ngser.serializers.ngsolve:register_all",
    "pyngcore": "ngser.serializers.ngsolve:register_all",
    "ngser": "ngser.serializers.builtin:register_all",
    "builtins": "ngser.serializers.builtin:register_all",
    "collections": "ngser.serializers.builtin:register_all",
}


#: The pip extra of ngser that installs what a built-in provider needs.
_EXTRAS = {"ngsolve": "ngsolve", "netgen": "ngsolve", "pyngcore": "ngsolve"}


class Registry:
    """Maps classes and type names to serializers, and holds migrations.

    Each serializer is normalised once, when it is added, into a
    :class:`~ngser.serializers.registry.SerializerRecord`; the encoder, decoder and pickle
    shim look records up (:meth:`record_for_type`, :meth:`record_for_name`), users look
    serializers up (:meth:`for_type`, :meth:`for_name`).
    """

    def __init__(self, providers: dict[str, str] | None = None) -> None:
        self._by_type: dict[type, SerializerRecord] = {}
        self._by_name: dict[str, SerializerRecord] = {}
        self._subclass_records: list[SerializerRecord] = []
        self._migrations: dict[tuple[str, int], Migration] = {}
        self._providers: dict[str, str] = dict(providers or {})
        self._loaded_providers: set[str] = set()
        #: prefix -> why its provider could not run (a library it needs is not installed)
        self._provider_errors: dict[str, str] = {}
        self._entry_points_read = False
        #: classes known not to be serializable -> why, and what to save instead
        self._refusals: dict[type, str] = {}
        self._lock = threading.RLock()

    # -- registration -------------------------------------------------------------
    def add(self, serializer: Serializer, *, replace: bool = False) -> Serializer:
        """Register a :class:`Serializer` instance for its ``types`` under its ``name``.

        A serializer with no ``types`` only loads: it is found by name, never for an object.
        """
        record = record_of(serializer)
        name = record.name
        with self._lock:
            old = self._by_name.get(name)
            if old is not None and not replace and set(old.types) != set(record.types):
                theirs = ", ".join(_qualname(t) for t in old.types)
                raise RegistrationError(
                    f"type name {name!r} is already registered for {theirs}; "
                    "choose another name, or pass replace=True to override it"
                )
            for cls in record.types:
                existing = self._by_type.get(cls)
                if existing is not None and existing.name != name and not replace:
                    raise RegistrationError(
                        f"{_qualname(cls)} is already registered as {existing.name!r}; "
                        "pass replace=True to register it again under another name"
                    )
            if old is not None:
                self._forget(old)
            self._by_name[name] = record
            for cls in record.types:
                self._by_type[cls] = record
            if record.subclasses:
                self._subclass_records.append(record)
        return serializer

    def remove(self, name: str) -> None:
        """Forget the serializer registered under ``name`` (mainly for tests)."""
        with self._lock:
            record = self._by_name.pop(name, None)
            if record is not None:
                self._forget(record)

    def _forget(self, record: SerializerRecord) -> None:
        # Also drops the subclasses cached for it by record_for_type.
        self._by_type = {t: r for t, r in self._by_type.items() if r is not record}
        if record in self._subclass_records:
            self._subclass_records.remove(record)
        self._by_name.pop(record.name, None)

    def add_migration(self, name: str, from_version: int, func: Migration) -> None:
        """Register ``func(state) -> state`` upgrading ``name`` from ``from_version`` to the next."""
        key = (name, from_version)
        if key in self._migrations:
            raise RegistrationError(f"a migration of {name!r} from version {from_version} is already registered")
        self._migrations[key] = func

    def add_provider(self, prefix: str, target: str) -> None:
        """Make ``target`` (``"module:function"``) register serializers for ``prefix`` on first need."""
        self._providers[prefix] = target

    # -- lookups --------------------------------------------------------------------
    def for_type(self, cls: type) -> Serializer | None:
        """The serializer for objects of class ``cls``, or ``None``."""
        record = self.record_for_type(cls)
        return None if record is None else record.serializer

    def for_name(self, name: str) -> Serializer | None:
        """The serializer registered under the type name ``name``, or ``None``."""
        record = self.record_for_name(name)
        return None if record is None else record.serializer

    def record_for_type(self, cls: type) -> SerializerRecord | None:
        """The record of the serializer for objects of class ``cls``, or ``None``."""
        record = self._by_type.get(cls)
        if record is not None:
            return record
        for candidate in self._subclass_records:
            if issubclass(cls, candidate.types):
                self._by_type[cls] = candidate
                return candidate
        module = getattr(cls, "__module__", "") or ""
        if self._run_provider(module.split(".", 1)[0]):
            return self.record_for_type(cls)
        return None

    def record_for_name(self, name: str) -> SerializerRecord | None:
        """The record of the serializer registered under ``name``, or ``None``."""
        record = self._by_name.get(name)
        if record is None and self._run_provider(name.split(".", 1)[0]):
            record = self._by_name.get(name)
        return record

    def refuse(self, cls: type, reason: str) -> None:
        """Mark ``cls`` (and its subclasses) as known not to be serializable: saving one raises
        :class:`~ngser.UnsupportedTypeError` with ``reason`` (why, and what to save instead) rather
        than the advice to register a serializer. A serializer registered for it later wins::

            registry.refuse(ngsolve.BilinearForm, "NGSolve does not expose its integrands; save a.mat")
        """
        with self._lock:
            self._refusals[cls] = reason

    def require_type(self, cls: type, where: str = "") -> SerializerRecord:
        """:meth:`record_for_type`, or :class:`~ngser.UnsupportedTypeError` saying how to register one."""
        record = self.record_for_type(cls)
        if record is None:
            place = f" {where}" if where else ""
            reason = next((self._refusals[c] for c in cls.__mro__ if c in self._refusals), None)
            if reason is not None:
                raise UnsupportedTypeError(f"cannot serialize an object of type {_qualname(cls)}{place}: {reason}")
            raise UnsupportedTypeError(
                f"cannot serialize an object of type {_qualname(cls)}{place}: no serializer is registered "
                f"for it. Register one, e.g. ngser.register({cls.__name__}, "
                f'name="{_suggest_name(cls)}"), or save with fallback="cloudpickle" to store it as '
                "trusted-only cloudpickle bytes."
            )
        return record

    def require_name(self, name: str, where: str = "") -> SerializerRecord:
        """:meth:`record_for_name`, or :class:`~ngser.UnknownTypeError` saying what to do."""
        record = self.record_for_name(name)
        if record is None:
            place = f" ({where})" if where else ""
            missing = self._provider_errors.get(name.split(".", 1)[0])
            if missing is not None:
                extra = _EXTRAS.get(name.split(".", 1)[0])
                how = f"pip install 'ngser[{extra}]'" if extra else "install the library it needs"
                raise UnknownTypeError(
                    f"type name {name!r}{place} needs a library that is not installed: {missing}. Run {how}, "
                    'or load with unknown="raw" to inspect the node without building it.'
                )
            raise UnknownTypeError(
                f"no serializer is registered for type name {name!r}{place}. Install or import the package "
                'that registers it, or load with unknown="raw" to inspect the node without building it.'
            )
        return record

    def names(self) -> list[str]:
        """All registered type names (without triggering providers)."""
        return sorted(self._by_name)

    # -- versions ---------------------------------------------------------------------
    def upgrade(
        self, serializer: Serializer | SerializerRecord, stored_version: int, state: Any, where: str = ""
    ) -> Any:
        """Bring ``state`` written by ``stored_version`` up to ``serializer.version``."""
        if stored_version == serializer.version:
            return state
        place = f" ({where})" if where else ""
        if not isinstance(stored_version, int) or stored_version > serializer.version:
            raise VersionError(
                f"{serializer.name!r}{place} was written by version {shown(stored_version)} of its serializer, but the "
                f"installed one is version {serializer.version}; upgrade the package that registers it"
            )
        for version in range(stored_version, serializer.version):
            step = self._migrations.get((serializer.name, version))
            if step is None:
                raise VersionError(
                    f"{serializer.name!r}{place} was written by version {stored_version} of its serializer; the "
                    f"installed version is {serializer.version} and no migration from version {version} is "
                    f"registered (use @ngser.migration({serializer.name!r}, from_version={version}))"
                )
            state = step(state)
        return state

    # -- providers --------------------------------------------------------------------
    def _run_provider(self, prefix: str) -> bool:
        """Import the provider for ``prefix`` once; whether it was run now."""
        if not prefix or prefix in self._loaded_providers:
            return False
        target = self._providers.get(prefix)
        if target is None:
            self._read_entry_points()
            target = self._providers.get(prefix)
            if target is None:
                return False
        with self._lock:
            if prefix in self._loaded_providers:
                return False
            self._loaded_providers.add(prefix)
            module_name, _, func_name = target.partition(":")
            try:
                module = importlib.import_module(module_name)
                func = getattr(module, func_name) if func_name else None
                if func is not None:
                    func(self)  # may import the library itself (NGSolve's provider does)
            except ImportError as exc:
                self._provider_errors[prefix] = f"{module_name} cannot be imported ({exc})"
                return False
        return True

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        from importlib import metadata  # 10 ms: only when a type is not found among those registered

        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            self._providers.setdefault(entry.name, entry.value)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _suggest_name(cls: type) -> str:
    return f"{cls.__module__.split('.', 1)[0]}.{cls.__qualname__}"


default_registry = Registry(BUILTIN_PROVIDERS)


@overload
def register(
    cls: type[T],
    *,
    name: str,
    version: int = ...,
    dump: Callable[[Any], Any] | None = ...,
    load: Callable[[Any], Any] | None = ...,
    replace: bool = ...,
    registry: Registry | None = ...,
) -> type[T]: ...
@overload
def register(
    cls: None = ...,
    *,
    name: str,
    version: int = ...,
    dump: Callable[[Any], Any] | None = ...,
    load: Callable[[Any], Any] | None = ...,
    replace: bool = ...,
    registry: Registry | None = ...,
) -> Callable[[type[T]], type[T]]: ...
@overload
def register(cls: Serializer, *, replace: bool = ..., registry: Registry | None = ...) -> Serializer: ...
def register(
    cls: Any = None,
    *,
    name: str | None = None,
    version: int = 1,
    dump: Callable[[Any], Any] | None = None,
    load: Callable[[Any], Any] | None = None,
    replace: bool = False,
    registry: Registry | None = None,
) -> Any:
    """Register how to serialize a class, under a stable type ``name``.

    Three forms::

        ngser.register(Point, name="geometry.Point")            # default state
        ngser.register(Point, name="geometry.Point", version=2,
                       dump=lambda p: {"xy": [p.x, p.y]},
                       load=lambda s: Point(*s["xy"]))          # custom functions

        @ngser.register(name="geometry.Circle")                 # class decorator
        class Circle: ...

        ngser.register(PointSerializer())                        # a Serializer instance

    Without ``dump``/``load`` the state is ``__getstate__()`` or ``__dict__`` (and
    slots), restored with ``__setstate__`` or by filling ``__dict__`` on an instance
    made without calling ``__init__``. ``dump(obj)`` may return any value ngser can
    serialize; registered objects inside it become shared references.
    ``load(state)`` returns the object. ``name`` is stored in files; registering two
    classes under one name is an error unless ``replace=True``.
    """
    target = registry if registry is not None else default_registry
    if isinstance(cls, Serializer):
        target.add(cls, replace=replace)
        _after_register(cls)
        return cls
    if name is None:
        raise RegistrationError("ngser.register needs name=..., the stable type name stored in files")

    def decorate(klass: type[T]) -> type[T]:
        if not isinstance(klass, type):
            raise RegistrationError(f"ngser.register expects a class, got {klass!r}")
        serializer = FunctionSerializer(klass, name, version, dump=dump, load=load)
        target.add(serializer, replace=replace)
        _after_register(serializer)
        return klass

    return decorate if cls is None else decorate(cls)


#: Called with every serializer registered through :func:`register` (the pickle shim
#: uses this to route registered classes through ngser).
REGISTER_HOOKS: list[Callable[[Serializer], None]] = []


def _after_register(serializer: Serializer) -> None:
    for hook in REGISTER_HOOKS:
        hook(serializer)


def unregister(name: str, *, registry: Registry | None = None) -> None:
    """Remove the serializer registered under ``name``."""
    (registry if registry is not None else default_registry).remove(name)


def migration(name: str, *, from_version: int, registry: Registry | None = None) -> Callable[[Migration], Migration]:
    """Register a function upgrading the state of ``name`` from ``from_version`` to the next.

    Loading a file written by an older serializer runs the chain of migrations::

        @ngser.migration("geometry.Point", from_version=1)
        def _(state):
            return {"xy": [state["x"], state["y"]]}
    """

    def decorate(func: Migration) -> Migration:
        (registry if registry is not None else default_registry).add_migration(name, from_version, func)
        return func

    return decorate
