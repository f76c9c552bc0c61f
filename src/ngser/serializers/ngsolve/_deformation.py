"""A mesh's deformation (``mesh.SetDeformation(gf)``), stored with the mesh.

The deformation is a GridFunction on a space on the mesh itself: mesh -> GridFunction -> space
-> mesh is a cycle through one-phase serializers. So the ``ngsolve.Mesh`` state holds the
deformation *by value*: its space as the ``ngsolve.FESpace`` state without the mesh reference
(class, type, flags), its name and its dof values. Loading rebuilds that space and GridFunction
on the loaded mesh and deforms the mesh by it.

A GridFunction that is its mesh's deformation is stored as ``{"deformation_of": mesh}`` (its
values live in the mesh's state) and loads as the loaded mesh's deformation: ``[mesh, gf]``
comes back as one GridFunction, which still deforms the mesh when it is changed.

A curved mesh whose curvature comes from the file (no geometry, see :mod:`._curvature`) is
already deformed by that curvature: a user deformation on it is added to the curvature into one
deformation of the larger order (both are polynomials in the reference element, so the sum is
exact), and the user's GridFunction loads as its own GridFunction beside it.

State (key ``"deformation"`` of ``ngsolve.Mesh``)::

    {"space": {"class": "VectorH1", "type": "VectorH1", "flags": {...}}, "name": str,
     "values": float64 (ndof * dim,)}
"""

from __future__ import annotations

import weakref
from typing import Any

import ngsolve
import ngsolve.comp as comp
import numpy as np

from ...errors import StateError, UnsupportedTypeError
from ._checks import require_dict
from ._curvature import CURVATURE_NAME
from ._dof_order import put_values, rebuilt_order, stored_values
from .identity import gridfunction_key

__all__ = [
    "COMBINED_NAME",
    "apply_deformation",
    "deformation_reference",
    "dump_deformation",
    "is_deformation_reference",
    "load_deformation_reference",
]

#: The name of the deformation that adds a user deformation to a file's curvature.
COMBINED_NAME = "ngser.curvature+deformation"
#: Loaded netgen meshes whose NGSolve mesh is deformed by COMBINED_NAME: the user's own
#: deformation GridFunction (the one a ``deformation_of`` reference loads as).
_USER: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _is_deformation(gf: Any, mesh: Any) -> bool:
    field = mesh.deformation
    return field is not None and gridfunction_key(field) == gridfunction_key(gf)


def dump_deformation(mesh: Any) -> dict[str, Any] | None:
    """The ``"deformation"`` state of an NGSolve mesh, or None when it has none or is deformed
    only by a file's curvature (stored as the curvature)."""
    field = mesh.deformation
    if field is None or field.name == CURVATURE_NAME:
        return None
    from .spaces import FESpaceSerializer  # spaces import the mesh module's neighbours

    space = field.space
    try:
        space_state = FESpaceSerializer().dump(space)
    except UnsupportedTypeError as exc:
        raise UnsupportedTypeError(f"cannot save the deformation of a mesh: {exc}") from exc
    space_state.pop("mesh")
    values, dof_order = stored_values(np.array(field.vec.FV().NumPy()), space, "the deformation of a mesh")
    state = {"space": space_state, "name": str(field.name), "values": values}
    if dof_order is not None:  # a refined mesh: the values in the order a rebuilt mesh reproduces
        state["dof_order"] = dof_order
    return state


def _rebuild(mesh: Any, raw: Any) -> Any:
    """The deformation GridFunction of a ``"deformation"`` state, on ``mesh``."""
    from .spaces import FESpaceSerializer

    state = require_dict(raw, "ngsolve.Mesh: deformation")
    space_state = require_dict(state.get("space"), "ngsolve.Mesh: deformation space")
    if "mesh" in space_state:
        raise StateError("ngsolve.Mesh: the deformation space must not name a mesh (it is the mesh's own)")
    space = FESpaceSerializer().load({**space_state, "mesh": mesh})
    name = state.get("name", "deformation")
    if type(name) is not str or len(name) > 10_000:
        raise StateError("ngsolve.Mesh: the deformation's name must be a string")
    if space.is_complex:
        raise StateError("ngsolve.Mesh: the deformation's space is complex; a deformation is a real field")
    gf = comp.GridFunction(space, name=name)
    if gf.dim != mesh.dim:
        raise StateError(
            f"ngsolve.Mesh: a deformation must be a field of {mesh.dim} components, its space gives {gf.dim}"
        )
    values = state.get("values")
    target = gf.vec.FV().NumPy()
    if not (isinstance(values, np.ndarray) and values.dtype.kind == "f" and values.ndim == 1):
        got = f"{values.dtype} {values.shape}" if isinstance(values, np.ndarray) else type(values).__name__
        raise StateError(f"ngsolve.Mesh: the deformation's values must be a 1-dimensional float array, not {got}")
    if not np.isfinite(values).all():
        raise StateError("ngsolve.Mesh: the deformation's values must be finite numbers")
    order = rebuilt_order(state, space, values.size, "ngsolve.Mesh: the deformation")
    if order is not None:  # stored in node order (a refined mesh)
        put_values(target, order, int(space.ndof), values, "ngsolve.Mesh: the deformation")
    elif values.shape != target.shape:
        raise StateError(
            f"ngsolve.Mesh: the deformation must have {target.size} float values (its rebuilt space's), "
            f"not {values.size}"
        )
    else:
        target[:] = values
    return gf


def apply_deformation(mesh: Any, raw: Any) -> None:
    """Deform the loaded ``mesh`` by a ``"deformation"`` state: by the rebuilt GridFunction, or,
    when a file's curvature already deforms it, by the sum of both."""
    gf = _rebuild(mesh, raw)
    curvature = mesh.deformation
    if curvature is None:
        mesh.SetDeformation(gf)
        return
    order = max(int(curvature.space.globalorder), int(gf.space.globalorder))
    total = comp.GridFunction(ngsolve.VectorH1(mesh, order=order), name=COMBINED_NAME)
    total.Set(curvature + gf)  # GridFunctions evaluate in the reference element: the sum is exact
    mesh.SetDeformation(total)
    _USER[mesh.ngmesh] = gf


def deformation_reference(gf: Any) -> dict[str, Any] | None:
    """The state of a GridFunction that is its mesh's deformation, ``{"deformation_of": mesh}``,
    or None for any other GridFunction."""
    try:
        mesh = gf.space.mesh
    except Exception:  # a GridFunction without a space of one mesh
        return None
    if not _is_deformation(gf, mesh) or gf.name in (CURVATURE_NAME, COMBINED_NAME):
        return None
    return {"deformation_of": mesh}


def is_deformation_reference(state: Any) -> bool:
    return type(state) is dict and "deformation_of" in state


def load_deformation_reference(state: dict[str, Any]) -> Any:
    """The loaded mesh's deformation GridFunction a ``deformation_of`` state names."""
    mesh = state.get("deformation_of")
    if not isinstance(mesh, comp.Mesh):
        raise StateError("ngsolve.GridFunction: deformation_of must refer to an ngsolve.Mesh")
    user = _USER.get(mesh.ngmesh)
    if user is not None and user.space.mesh == mesh:
        return user
    field = mesh.deformation
    if field is None or field.name in (CURVATURE_NAME, COMBINED_NAME):
        raise StateError(
            "ngsolve.GridFunction: the GridFunction is its mesh's deformation, but the loaded mesh has none (the "
            "mesh's state lacks it)"
        )
    return field
