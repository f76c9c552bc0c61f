"""Module paths of earlier ngser versions, kept importable.

ngser 0.1 had its modules flat under ``ngser``; they now live in the package of their layer.
``import ngser.registry`` and ``from ngser.serializer import Serializer`` keep working: a
finder on :data:`sys.meta_path` answers each old name with the module that now holds the
code (the very same module object, so classes and registries are not duplicated) and warns
once with a :class:`DeprecationWarning` that names the new path. ``ngser.graph`` and
``ngser.shim`` did not move: pickles name ``ngser.graph.Ref`` and ``ngser.shim._REBUILD``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["MOVED", "install"]

#: Old module path -> new module path.
MOVED: dict[str, str] = {
    "ngser.serializer": "ngser.serializers.base",
    "ngser.registry": "ngser.serializers.registry",
    "ngser.encoder": "ngser.graph._encoder",
    "ngser.decoder": "ngser.graph._decoder",
    "ngser.arrays": "ngser.backends._arrays",
    "ngser.checksum": "ngser.backends._checksum",
    "ngser.writeback": "ngser.backends._writeback",
    "ngser.backends.hdf5_paths": "ngser.backends.hdf5_layout",
    "ngser.backends.hdf5_reader": "ngser.backends._hdf5_reader",
}


class _Alias:
    """Finds the old module names and loads each as the module that replaced it (a meta path
    finder and loader by protocol: ``importlib.abc`` costs 10 ms of ``import ngser``)."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, cast("Loader", self))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; import it from there (or use the names ngser exports)",
            DeprecationWarning,
            stacklevel=4,
        )
        module = importlib.import_module(new)
        self._specs[new] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module is the new one, executed already: give it back its own spec (the import
        system set the alias's on it)."""
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)


_FINDER = _Alias()


def install() -> None:
    """Put the finder on :data:`sys.meta_path` (once)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.append(_FINDER)


def attribute(name: str) -> ModuleType:
    """``ngser.<name>`` for a moved submodule (``ngser.registry``), imported on first access."""
    full = f"ngser.{name}"
    if full not in MOVED:
        raise AttributeError(f"module 'ngser' has no attribute {name!r}")
    return importlib.import_module(full)
