"""GridFunctions: a reference to the space plus the dof vector(s) as an array.

Real, complex, multidim (one row per vector) and compound GridFunctions are stored the same
way. A component GridFunction (``gfu.components[i]``) is a reference to its parent plus the
component number: it is a view of the parent's vector, so its values are stored once.

On a mesh whose edges or faces a rebuilt mesh numbers differently (a refined mesh, see
:mod:`._numbering`), the values are stored in node order, with a ``dof_order`` entry naming
that order, and loading puts them back in the rebuilt space's order.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import ngsolve.comp as comp
import numpy as np

from ...errors import StateError
from ..base import Serializer
from ._checks import checked_flags
from ._deformation import deformation_reference, is_deformation_reference, load_deformation_reference
from ._dof_order import put_values, rebuilt_order, stored_values
from .identity import canonical

__all__ = ["GridFunctionSerializer", "ComponentGridFunctionSerializer"]

#: GridFunction flags passed back to the constructor (the others are informational).
_CTOR_FLAGS = ("multidim", "nested", "autoupdate")


class GridFunctionSerializer(Serializer):
    """``ngsolve.GridFunction``: ``{"space", "name", "flags", "values"}``.

    ``values`` is the dof vector (shape ``(ndof*dim,)``) or, for ``multidim`` GridFunctions, one
    row per vector (shape ``(multidim, ndof*dim)``); float64 or complex128.
    """

    name = "ngsolve.GridFunction"
    version = 1
    types = (comp.GridFunction, comp.GridFunctionD, comp.GridFunctionC)
    subclasses = True

    def canonical(self, obj: Any, cache: MutableMapping[Any, Any]) -> Any:
        """Encoder hook: the wrapper standing for ``obj``'s C++ GridFunction in this pass."""
        return canonical(obj, cache)

    def dump(self, obj: Any) -> Any:
        reference = deformation_reference(obj)  # a mesh's deformation: its values are in the mesh's state
        if reference is not None:
            return reference
        flags = obj.__reduce_ex__(2)[2][2].ToDict()
        vecs = [v.FV().NumPy() for v in obj.vecs]  # views: the encoder keeps obj alive
        values = vecs[0] if len(vecs) == 1 and "multidim" not in flags else np.stack(vecs)
        state = {
            "space": obj.space,
            "name": obj.name,
            "flags": {k: v for k, v in flags.items() if isinstance(v, (bool, float, str))},
            "values": values,
        }
        state["values"], dof_order = stored_values(values, obj.space, f"the GridFunction {obj.name!r}")
        if dof_order is not None:
            state["dof_order"] = dof_order
        return state

    def load(self, state: Any) -> Any:
        if is_deformation_reference(state):
            return load_deformation_reference(state)
        if not isinstance(state, dict) or "space" not in state or "values" not in state:
            raise StateError("the state of ngsolve.GridFunction lacks its space or values")
        space = state["space"]
        if not isinstance(space, comp.FESpace):
            raise StateError(f"the space of an ngsolve.GridFunction must be an FESpace, not {type(space).__name__}")
        flags = checked_flags(state.get("flags", {}), "a GridFunction")
        name = state.get("name", "gfu")
        if type(name) is not str or len(name) > 10_000:
            raise StateError("the name of an ngsolve.GridFunction must be a string")
        values = state["values"]
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "fc" or values.ndim not in (1, 2):
            raise StateError(
                "the values of an ngsolve.GridFunction must be a 1- or 2-dimensional float or complex array"
            )
        kwargs = {k: flags[k] for k in _CTOR_FLAGS if k in flags}
        if "multidim" in kwargs:
            kwargs["multidim"] = int(kwargs["multidim"])
        stored = 1 if values.ndim == 1 else len(values)
        if int(kwargs.get("multidim", 0)) > stored:
            raise StateError(f"a GridFunction asks for {kwargs['multidim']} vectors but stores {stored}")
        gf = comp.GridFunction(space, name=name, **kwargs)
        rows = values.reshape(1, -1) if values.ndim == 1 else values
        vecs = gf.vecs
        if rows.shape[0] != len(vecs):
            raise StateError(f"the GridFunction {gf.name!r} has {rows.shape[0]} vectors, its space gives {len(vecs)}")
        order = rebuilt_order(state, space, rows.shape[1], f"the GridFunction {name!r}")
        for vec, row in zip(vecs, rows):
            target = vec.FV().NumPy()
            if order is not None:
                if np.iscomplexobj(row) and not np.iscomplexobj(target):
                    raise StateError(f"the GridFunction {gf.name!r} is complex but its rebuilt space is real")
                put_values(target, order, int(space.ndof), row, f"the GridFunction {gf.name!r}")
                continue
            if target.shape != row.shape:
                raise StateError(
                    f"the GridFunction {gf.name!r} has {row.size} values but its rebuilt space has "
                    f"{target.size}; the space or mesh did not come back identical"
                )
            if np.iscomplexobj(row) and not np.iscomplexobj(target):
                raise StateError(f"the GridFunction {gf.name!r} is complex but its rebuilt space is real")
            target[:] = row
        return gf


class ComponentGridFunctionSerializer(Serializer):
    """``ngsolve.ComponentGridFunction``: ``{"parent", "component"}`` (``gfu.components[i]``)."""

    name = "ngsolve.ComponentGridFunction"
    version = 1
    types = (comp.ComponentGridFunction,)

    def canonical(self, obj: Any, cache: MutableMapping[Any, Any]) -> Any:
        """Encoder hook: the wrapper standing for ``obj``'s C++ GridFunction in this pass."""
        return canonical(obj, cache)

    def dump(self, obj: Any) -> Any:
        parent, component = obj.__reduce_ex__(2)[2]
        return {"parent": parent, "component": int(component)}

    def load(self, state: Any) -> Any:
        if not isinstance(state, dict):
            raise StateError("the state of ngsolve.ComponentGridFunction is not a dict")
        parent, i = state.get("parent"), state.get("component")
        if not isinstance(parent, comp.GridFunction) or not isinstance(i, int):
            raise StateError("the state of ngsolve.ComponentGridFunction lacks its parent or component number")
        components = parent.components
        if not 0 <= i < len(components):
            raise StateError(f"component {i} does not exist: its parent has {len(components)}")
        return components[i]
