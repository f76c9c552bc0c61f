"""What a collective save or load can carry, and the checks every rank makes before the first
collective step.

The objects passed are walked through dicts, lists and tuples. Their leaves are either
distributed NGSolve objects (meshes, the spaces ngser rebuilds from their parts, GridFunctions),
which become global objects, or anything else ngser saves, taken from rank 0 as it is. Other
NGSolve objects (CoefficientFunction trees, forms, matrices) refer to rank-local data and are
refused, as are distributed objects that cannot be numbered globally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import ngsolve
import ngsolve.comp as comp

from ..errors import ArgumentError, UnsupportedTypeError
from ..serializers import Registry
from ..serializers.ngsolve._compat import identifications
from ..serializers.ngsolve._curvature import CURVATURE_NAME
from ._numbers import MAX_RANKS, SHIFT

__all__ = ["SPACES", "check", "curve_order", "describe", "leaves", "rebuild", "space_parts", "with_parts"]

#: The serializers of the spaces a collective save or load rebuilds from their parts.
SPACES = ("ngsolve.FESpace", "ngsolve.ProductSpace", "ngsolve.VectorValued", "ngsolve.Discontinuous")
_MAX_DEPTH = 200
_NGSOLVE_MODULES = ("ngsolve", "netgen", "pyngcore")


def _containers(obj: Any) -> Iterator[Any] | None:
    if type(obj) is dict:
        return iter(list(obj.values()))
    if type(obj) in (list, tuple):
        return iter(list(obj))
    return None


def leaves(obj: Any, depth: int = 0) -> Iterator[Any]:
    """The leaves of ``obj`` in walk order (dict values in insertion order)."""
    if depth > _MAX_DEPTH:
        raise ArgumentError(f"the objects are nested more than {_MAX_DEPTH} containers deep")
    inner = _containers(obj)
    if inner is None:
        yield obj
        return
    for item in inner:
        yield from leaves(item, depth + 1)


def rebuild(obj: Any, leaf: Callable[[Any], Any]) -> Any:
    """``obj`` with every leaf replaced by ``leaf(leaf)``, containers of the same types."""
    if type(obj) is dict:
        return {key: rebuild(value, leaf) for key, value in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(rebuild(item, leaf) for item in obj)
    return leaf(obj)


def describe(obj: Any, depth: int = 0) -> str:
    """The shape of ``obj`` every rank must share: containers, keys and leaf types."""
    if depth > _MAX_DEPTH:
        raise ArgumentError(f"the objects are nested more than {_MAX_DEPTH} containers deep")
    if type(obj) is dict:
        return "{" + ", ".join(f"{key!r}: {describe(value, depth + 1)}" for key, value in obj.items()) + "}"
    if type(obj) in (list, tuple):
        inner = ", ".join(describe(item, depth + 1) for item in obj)
        return f"[{inner}]" if type(obj) is list else f"({inner})"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def is_ngsolve(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in _NGSOLVE_MODULES


def curve_order(mesh: Any) -> int:
    """The order of a mesh's curved elements: netgen's, or that of the curvature ngser applied."""
    field = mesh.deformation
    if field is not None and field.name == CURVATURE_NAME:
        return int(field.space.globalorder)
    return int(mesh.GetCurveOrder())


def space_parts(space: Any, registry: Registry) -> tuple[Any, dict[str, Any]]:
    """``(serializer, state)`` of a space ngser rebuilds from its parts (its mesh or subspaces)."""
    serializer = registry.for_type(type(space))
    if serializer is None or serializer.name not in SPACES:
        raise UnsupportedTypeError(
            f"a {type(space).__name__} space cannot be saved or loaded collectively; supported are leaf spaces "
            "(H1, L2, HCurl, ...), products, VectorValued (V**n) and Discontinuous"
        )
    return serializer, serializer.dump(space)


def with_parts(state: dict[str, Any], part: Callable[[Any], Any]) -> dict[str, Any]:
    """A space's state (from :func:`space_parts`) with its mesh and subspaces replaced by ``part(...)``."""
    return rebuild(state, lambda v: part(v) if isinstance(v, (ngsolve.Mesh, comp.FESpace)) else v)  # type: ignore[no-any-return]


def check(obj: Any, size: int, registry: Registry) -> None:
    """Refuse, on this rank and before any collective step, what cannot be saved collectively."""
    for item in leaves(obj):
        if isinstance(item, ngsolve.Mesh):
            _check_mesh(item, size)
        elif isinstance(item, comp.ComponentGridFunction):
            raise UnsupportedTypeError(
                "a component GridFunction (gfu.components[i]) cannot be saved collectively: save its parent"
            )
        elif isinstance(item, comp.GridFunction):
            _check_space(item.space, size, registry)
        elif isinstance(item, comp.FESpace):
            _check_space(item, size, registry)
        elif is_ngsolve(item):
            raise UnsupportedTypeError(
                f"a {type(item).__name__} cannot be saved collectively (it refers to rank-local data); pass meshes, "
                "spaces and GridFunctions, and save expressions serially"
            )


def _check_space(space: Any, size: int, registry: Registry) -> None:
    _, state = space_parts(space, registry)
    for part in leaves(state):
        if isinstance(part, comp.FESpace):
            _check_space(part, size, registry)
    _check_mesh(space.mesh, size)


def _check_mesh(mesh: Any, size: int) -> None:
    ranks = int(mesh.comm.size)
    if ranks != size:
        raise ArgumentError(
            f"a mesh distributed over {ranks} ranks was passed to a collective call on {size} ranks: pass the "
            "communicator the mesh was distributed with (mesh.comm)"
        )
    if int(mesh.levels) > 1:
        raise UnsupportedTypeError(
            "a distributed mesh refined in parallel (mesh.Refine() after Distribute) cannot be numbered globally "
            "by netgen: refine before distributing, or save each rank's part serially"
        )
    if int(mesh.nv) >= SHIFT or size >= MAX_RANKS:
        raise UnsupportedTypeError(
            f"a distributed mesh with {mesh.nv} vertices on one of {size} ranks is beyond what ngser numbers "
            f"(below {SHIFT} vertices per rank, {MAX_RANKS} ranks)"
        )
    ngmesh = mesh.ngmesh
    if len(ngmesh.Points()) != int(mesh.nv):
        raise UnsupportedTypeError("a distributed mesh with second-order nodes cannot be saved collectively")
    field = mesh.deformation
    if field is not None and field.name != CURVATURE_NAME:
        raise UnsupportedTypeError(
            "a distributed mesh with a deformation (SetDeformation) cannot be saved collectively yet: save the "
            "deformation's GridFunction and set it again after loading"
        )
    if len(identifications(ngmesh)[0]):
        raise UnsupportedTypeError("a distributed mesh with periodic identifications cannot be saved collectively")
