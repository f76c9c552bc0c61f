"""A curved mesh's curvature, stored so that it comes back without the geometry.

netgen curves a mesh from its geometry (``Curve(p)`` projects the high-order nodes of every
boundary edge and face onto it). A file whose geometry cannot be loaded (not trusted, or
written by another NGSolve version), or an NGSolve that cannot curve a rebuilt mesh (6.2.2501),
would lose the curvature. So the state of a curved ``netgen.Mesh`` also holds the curved
element map itself: netgen's element map of order ``p`` is a continuous piecewise polynomial of
degree ``p``, which NGSolve's ``VectorH1(order=p)`` space holds exactly. ``Set`` of the
coordinate function on the curved mesh gives its coefficients; the vertex coefficients are the
points themselves, so only the others are stored, as the displacement from the straight
element. On load the straight mesh gets that displacement with ``Mesh.SetDeformation``, and the
stored volume and boundary measures are compared with the loaded mesh's, so that a file whose
coefficients mean something else here (another numbering of the dofs) warns instead of giving a
wrong mesh.

State (key ``"curvature"`` of ``netgen.Mesh``)::

    {"order": p, "displacement": float64 (ndof - nv, dim), "measures": [volume, boundary]}

where ``ndof`` is the scalar ``H1(order=p)`` dof count of the mesh and ``nv`` its vertex count.
"""

from __future__ import annotations

import math
from typing import Any

import ngsolve
import numpy as np

from ...errors import StateError
from . import warn_geometry
from ._checks import MAX_CURVE_ORDER, int_in, require_dict

__all__ = [
    "CURVATURE_NAME",
    "apply_curvature",
    "checked_curvature",
    "dump_curvature",
    "file_curvature",
    "matches_measures",
]

#: Coefficients smaller than this (relative to the mesh size) are the rounding noise of ``Set``
#: on straight edges and faces; they are stored as exact zeros, which compress.
_NOISE = 1e-13
#: The name of the deformation GridFunction :func:`apply_curvature` gives a mesh: saved again,
#: such a mesh stores the curvature again (:func:`file_curvature`).
CURVATURE_NAME = "ngser.curvature"
#: How closely the loaded mesh's measures must match the stored ones (relative).
_MEASURE_TOLERANCE = 1e-9


def _element_kind(mesh: Any) -> Any:
    """VOL, or BND for a surface mesh (a 3D mesh without volume elements)."""
    return ngsolve.VOL if mesh.ne > 0 else ngsolve.BND


def _measures(mesh: Any) -> list[float]:
    kind = _element_kind(mesh)
    boundary = ngsolve.BBND if kind == ngsolve.BND else ngsolve.BND
    return [float(ngsolve.Integrate(1, mesh, kind)), float(ngsolve.Integrate(1, mesh, boundary))]


def dump_curvature(ngmesh: Any, order: int) -> dict[str, Any]:
    """The ``"curvature"`` state of a netgen mesh curved to ``order`` (see the module docs)."""
    mesh = ngsolve.Mesh(ngmesh)  # a new wrapper: no user deformation, the curved elements only
    dim = int(ngmesh.dim)
    space = ngsolve.VectorH1(mesh, order=order)
    field = ngsolve.GridFunction(space)
    field.Set(ngsolve.CF((ngsolve.x, ngsolve.y, ngsolve.z)[:dim]), **_curved_part(ngmesh, mesh))
    nv = mesh.nv
    displacement = np.stack([np.array(c.vec.FV().NumPy()[nv:]) for c in field.components], axis=1)
    points = np.asarray(ngmesh.Coordinates(), dtype=np.float64)
    size = float(np.ptp(points, axis=0).max()) if len(points) else 1.0
    displacement[np.abs(displacement) < _NOISE * size] = 0.0
    return {"order": order, "displacement": np.ascontiguousarray(displacement), "measures": _measures(mesh)}


def _curved_part(ngmesh: Any, mesh: Any) -> dict[str, Any]:
    """Where to ``Set`` the coordinates: netgen curves only boundary (and interface) edges and
    faces, so only elements with a vertex on one can differ from their straight element; the
    others' coefficients beyond the vertices are zero. Setting just those is exact and several
    times faster (0.29 s instead of 1.65 s for 90,000 tetrahedra of order 2). A surface mesh (no
    volume elements) is set on its boundary elements: ``Set(cf, BND)`` sets no dof there."""
    if mesh.ne == 0:
        return {"definedon": mesh.Boundaries(".*")}
    dim = int(ngmesh.dim)
    faces = (ngmesh.Elements1D if dim == 2 else ngmesh.Elements2D)().NumPy()["nodes"]
    cells = np.asarray((ngmesh.Elements2D if dim == 2 else ngmesh.Elements3D)().NumPy()["nodes"])
    on_boundary = np.zeros(len(ngmesh.Points()) + 1, dtype=bool)
    on_boundary[np.asarray(faces, dtype=np.int64).ravel()] = True
    on_boundary[0] = False  # the padding of narrower elements
    touching = on_boundary[cells.astype(np.int64)].any(axis=1)
    return {"definedonelements": ngsolve.BitArray(touching.tolist())}


def checked_curvature(raw: Any, dim: int, order: int) -> dict[str, Any]:
    """The ``"curvature"`` state with every value checked against the mesh's ``dim`` and ``order``."""
    state = require_dict(raw, "netgen.Mesh: curvature")
    p = int_in(state.get("order"), 2, MAX_CURVE_ORDER, "netgen.Mesh: curvature order")
    if p != order:
        raise StateError(f"netgen.Mesh: the curvature is of order {p} but the mesh's curve_order is {order}")
    displacement = state.get("displacement")
    if not (
        isinstance(displacement, np.ndarray)
        and displacement.dtype.kind == "f"
        and displacement.ndim == 2
        and displacement.shape[1] == dim
    ):
        raise StateError(f"netgen.Mesh: the curvature displacement must be a float array of {dim} columns")
    if not np.isfinite(displacement).all():
        raise StateError("netgen.Mesh: the curvature displacement must be finite numbers")
    measures = state.get("measures")
    if not (
        isinstance(measures, list)
        and len(measures) == 2
        and all(isinstance(m, float) and math.isfinite(m) for m in measures)
    ):
        raise StateError("netgen.Mesh: the curvature measures must be a list of two finite numbers")
    return {"order": p, "displacement": displacement, "measures": measures}


def apply_curvature(mesh: Any, curvature: dict[str, Any]) -> bool:
    """Curve the straight ``mesh`` by ``curvature`` (from :func:`checked_curvature`); warns and
    leaves it straight when the stored displacement does not fit or does not reproduce the
    stored measures. Returns whether the mesh is curved."""
    order, displacement = curvature["order"], curvature["displacement"]
    dim = displacement.shape[1]
    # The space's dof table is what netgen's own Curve(order) would build; the vector is only
    # allocated once the file is known to hold one row of coefficients for each of its dofs.
    space = ngsolve.VectorH1(mesh, order=order)
    nv = mesh.nv
    expected = space.ndof // dim - nv
    if dim != mesh.dim or len(displacement) != expected:
        _warn(f"its curvature has {len(displacement)} coefficients where this mesh of order {order} has {expected}")
        return False
    field = ngsolve.GridFunction(space, name=CURVATURE_NAME)
    for k, component in enumerate(field.components):
        values = component.vec.FV().NumPy()
        values[:nv] = 0.0
        values[nv:] = displacement[:, k]
    mesh.SetDeformation(field)
    stored, got = curvature["measures"], _measures(mesh)
    if not _close(stored, got):
        mesh.UnsetDeformation()
        _warn(f"its curvature gives the measures {got}, not the stored {stored} (another numbering of the dofs?)")
        return False
    return True


def matches_measures(mesh: Any, curvature: dict[str, Any]) -> bool:
    """Whether the NGSolve mesh, as netgen curved it, has the stored measures. netgen curves a
    rebuilt mesh from its geometry by the geometry numbers its elements carry; a mesh written by
    another netgen (6.2.2501 numbers 2D edges without edge descriptors) may be curved wrongly."""
    return _close(curvature["measures"], _measures(mesh))


def _close(stored: list[float], got: list[float]) -> bool:
    return all(abs(a - b) <= _MEASURE_TOLERANCE * max(abs(a), 1e-300) for a, b in zip(stored, got))


def file_curvature(mesh: Any) -> dict[str, Any] | None:
    """The curvature :func:`apply_curvature` gave ``mesh`` (its netgen mesh is straight), or None."""
    field = mesh.deformation
    if field is None or field.name != CURVATURE_NAME:
        return None
    nv = mesh.nv
    displacement = np.stack([np.array(c.vec.FV().NumPy()[nv:]) for c in field.components], axis=1)
    order = int(field.space.globalorder)
    return {"order": order, "displacement": displacement, "measures": _measures(mesh)}


def _warn(why: str) -> None:
    warn_geometry(
        f"a curved netgen.Mesh was loaded straight: {why}. Integrals over curved boundaries and volumes differ "
        "from the saved mesh's; load the file with its geometry (trusted=True) to curve it from the geometry"
    )
