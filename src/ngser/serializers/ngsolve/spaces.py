"""Finite element spaces: type, flags (regions by name) and a reference to the mesh.

Leaf spaces (H1, L2, HCurl, ...) are rebuilt as NGSolve's own unpickling does, from their type
string, mesh and flags. Wrapper spaces are rebuilt from their parts, which are graph references:
products ``V*Q`` from their component spaces, ``V**n`` from ``V`` and ``n``, ``Discontinuous``
and ``Compress`` from the wrapped space. The mesh is rebuilt with the same element order, so the
dof numbering after loading is identical.
"""

from __future__ import annotations

from typing import Any

import ngsolve
import ngsolve.comp as comp
import numpy as np
import pyngcore

from ...errors import StateError, UnsupportedTypeError, shown
from ..base import Serializer
from ._checks import MAX_COMPONENTS, checked_flags, int_in
from .native import archive_state, restore_archive

__all__ = ["space_serializers", "LEAF_SPACES"]

#: Leaf space classes that NGSolve itself rebuilds from (type, mesh, flags); checked one by one.
LEAF_SPACES = (
    "FESpace",
    "H1",
    "L2",
    "HCurl",
    "HDiv",
    "VectorH1",
    "VectorL2",
    "SurfaceL2",
    "NumberSpace",
    "IntegrationRuleSpace",
    "IntegrationRuleSpaceSurface",
    "HDivDiv",
    "HCurlDiv",
    "HCurlCurl",
    "HDivDivSurface",
    "TangentialFacetFESpace",
    "NormalFacetFESpace",
    "FacetFESpace",
    "FacetSurface",
    "NormalFacetSurface",
    "HDivSurface",
    "NodalFESpace",
)

#: Flags holding lists of 1-based region numbers, and the kind of region they number.
_REGION_FLAGS = {
    "definedon": "VOL",
    "definedonbound": "BND",
    "dirichlet": "BND",
    "dirichlet_bbnd": "BBND",
    "dirichlet_bbbnd": "BBBND",
}
_VB = {"VOL": ngsolve.VOL, "BND": ngsolve.BND, "BBND": ngsolve.BBND, "BBBND": ngsolve.BBBND}
_CODIM = {"VOL": 0, "BND": 1, "BBND": 2, "BBBND": 3}


def _leaf_classes() -> dict[str, type]:
    return {name: getattr(comp, name) for name in LEAF_SPACES if hasattr(comp, name)}


# -- flags ---------------------------------------------------------------------------------
def dump_flags(flags: Any, mesh: Any) -> dict[str, Any]:
    """A space's ``Flags`` as a plain dict; regions become ``{"region", "numbers", "names"}``."""
    out: dict[str, Any] = {}
    for key, value in flags.ToDict().items():
        if isinstance(value, comp.Region):
            vb = _vb_name(value)
            numbers = (np.flatnonzero(np.asarray(value.Mask(), dtype=bool)) + 1).tolist()
            out[key] = _region(mesh, vb, numbers)
        elif key in _REGION_FLAGS and isinstance(value, list) and all(isinstance(v, float) for v in value):
            out[key] = _region(mesh, _REGION_FLAGS[key], [int(v) for v in value])
        elif isinstance(value, (bool, float, str)) or (
            isinstance(value, list) and all(isinstance(v, (float, str)) for v in value)
        ):
            out[key] = value
        else:
            raise UnsupportedTypeError(
                f"the space flag {key!r} holds a {type(value).__name__}, which ngser cannot store"
            )
    return out


def _region(mesh: Any, vb: str, numbers: list[int]) -> dict[str, Any]:
    names = list(mesh.ngmesh.GetRegionNames(codim=_CODIM[vb])) if mesh is not None else []
    return {"region": vb, "numbers": numbers, "names": [names[n - 1] if 0 < n <= len(names) else "" for n in numbers]}


def load_flags(state: dict[str, Any], mesh: Any) -> Any:
    """``pyngcore.Flags`` from :func:`dump_flags`'s dict; regions are rebuilt on ``mesh`` by number."""
    return pyngcore.Flags(_storable(flag_values(state, mesh), mesh))


def flag_values(state: dict[str, Any], mesh: Any) -> dict[str, Any]:
    """The flag values of :func:`dump_flags`'s dict, region dicts rebuilt as ``Region`` objects on ``mesh``."""
    plain: dict[str, Any] = {}
    for key, value in checked_flags(state, "a space").items():
        if isinstance(value, dict) and "region" in value:
            vb = str(value["region"])
            if vb not in _VB or mesh is None:
                raise StateError(f"the space flag {shown(key)} names an unknown region kind {shown(vb)}")
            nregions = len(mesh.ngmesh.GetRegionNames(codim=_CODIM[vb]))
            mask = np.zeros(nregions, dtype=bool)
            numbers = value["numbers"]
            if type(numbers) is not list or not all(type(n) is int for n in numbers):
                raise StateError(f"the space flag {shown(key)}: region numbers must be a list of integers")
            numbers = np.asarray(numbers, dtype=np.int64)
            if numbers.size and (numbers.min() < 1 or numbers.max() > nregions):
                raise StateError(f"the space flag {shown(key)} names region numbers outside the mesh")
            mask[numbers - 1] = True
            plain[key] = comp.Region(mesh, _VB[vb], pyngcore.BitArray(mask.tolist()))
        else:
            plain[key] = value
    return plain


def flags_hold_regions(mesh: Any) -> bool:
    """Whether this NGSolve's ``Flags`` keep a ``Region`` value given from Python (6.2.2501's drop it
    silently; its space constructors take Regions as keyword arguments). Tried once, on ``mesh``."""
    if _FLAGS_HOLD_REGIONS:
        return _FLAGS_HOLD_REGIONS[0]
    region = comp.Region(mesh, ngsolve.VOL, pyngcore.BitArray([True]))
    _FLAGS_HOLD_REGIONS.append("probe" in pyngcore.Flags({"probe": region}).ToDict())
    return _FLAGS_HOLD_REGIONS[0]


_FLAGS_HOLD_REGIONS: list[bool] = []


def _storable(values: dict[str, Any], mesh: Any) -> dict[str, Any]:
    """``values`` as ``Flags`` keep them: where ``Flags`` drop Regions, a Region of the kind a region
    flag numbers (``dirichlet``: boundaries, ...) becomes that flag's list of 1-based numbers, as
    NGSolve itself stores it. Other Regions stay (and such ``Flags`` drop them)."""
    if mesh is None or not any(isinstance(v, comp.Region) for v in values.values()) or flags_hold_regions(mesh):
        return values
    out = dict(values)
    for key, value in values.items():
        if isinstance(value, comp.Region) and key in _REGION_FLAGS and _vb_name(value) == _REGION_FLAGS[key]:
            out[key] = [float(n) for n in np.flatnonzero(np.asarray(value.Mask(), dtype=bool)) + 1]
    return out


def _vb_name(region: Any) -> str:
    return str(region.VB()).rsplit(".", 1)[-1]


def _restore(cls: type, state: Any, what: str) -> Any:
    obj = cls.__new__(cls)  # type: ignore[call-overload]  # cls is an NGSolve class
    try:
        obj.__setstate__(state)
    except Exception as exc:
        raise StateError(f"NGSolve could not rebuild {what}: {exc}") from exc
    return obj


def _require_dict(state: Any, name: str) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise StateError(f"the state of {name} is not a dict")
    return state


# -- serializers -----------------------------------------------------------------------------
class FESpaceSerializer(Serializer):
    """``ngsolve.FESpace``: ``{"class", "type", "mesh", "flags"}`` for leaf spaces (H1, L2, HCurl, ...)."""

    name = "ngsolve.FESpace"
    version = 1
    types = (comp.FESpace,)
    subclasses = True

    def dump(self, obj: Any) -> Any:
        cls_name = type(obj).__name__
        if _leaf_classes().get(cls_name) is not type(obj):
            raise UnsupportedTypeError(
                f"cannot save a {cls_name} space: NGSolve cannot rebuild it from its parts (its own pickling fails "
                f"or crashes on load). Supported: {', '.join(LEAF_SPACES[1:])}, products, **n, Periodic, "
                "Discontinuous and Compress"
            )
        # NGSolve's own reduce state of a leaf space is (type string, mesh, Flags).
        space_type, mesh, flags = obj.__reduce_ex__(2)[2]  # type: ignore[str-unpack]
        return {"class": cls_name, "type": space_type, "mesh": mesh, "flags": dump_flags(flags, mesh)}

    def load(self, state: Any) -> Any:
        state = _require_dict(state, self.name)
        cls = _leaf_classes().get(str(state.get("class")))
        if cls is None:
            raise StateError(f"the state of ngsolve.FESpace has an unknown space class {shown(state.get('class'))}")
        mesh = state["mesh"]
        values = _storable(flag_values(state.get("flags", {}), mesh), mesh)
        if cls is not comp.FESpace and any(isinstance(v, comp.Region) for v in values.values()):
            # Flags that drop Regions (NGSolve 6.2.2501): the constructor takes them as keywords.
            try:
                return cls(mesh, **values)
            except Exception as exc:
                raise StateError(f"NGSolve could not rebuild a {cls.__name__} space: {exc}") from exc
        flags = pyngcore.Flags(values)
        return _restore(cls, (str(state["type"]), mesh, flags), f"a {cls.__name__} space")


class ProductSpaceSerializer(Serializer):
    """``ngsolve.ProductSpace``: ``{"spaces": [...], "flags"}`` (``V*Q``, ``FESpace([V, Q])``)."""

    name = "ngsolve.ProductSpace"
    version = 1
    types = (comp.ProductSpace,)

    def dump(self, obj: Any) -> Any:
        spaces, flags, _ = obj.__reduce_ex__(2)[2]
        mesh = spaces[0].mesh if spaces else None
        return {"spaces": list(spaces), "flags": dump_flags(flags, mesh)}

    def load(self, state: Any) -> Any:
        state = _require_dict(state, self.name)
        spaces = list(state["spaces"])
        flags = load_flags(state.get("flags", {}), spaces[0].mesh if spaces else None)
        return _restore(comp.ProductSpace, (spaces, flags, {}), "a product space")


class VectorValuedSerializer(Serializer):
    """``ngsolve.VectorValued``: ``{"space", "dim", "flags"}`` (``V**n``)."""

    name = "ngsolve.VectorValued"
    version = 1
    types = (comp.VectorValued,)

    def dump(self, obj: Any) -> Any:
        space, dim, flags, _ = obj.__reduce_ex__(2)[2]
        return {"space": space, "dim": int(dim), "flags": dump_flags(flags, space.mesh)}

    def load(self, state: Any) -> Any:
        state = _require_dict(state, self.name)
        space = state["space"]
        flags = load_flags(state.get("flags", {}), space.mesh)
        dim = int_in(state.get("dim"), 1, MAX_COMPONENTS, "ngsolve.VectorValued: dim")
        return _restore(comp.VectorValued, (space, dim, flags, {}), "a VectorValued space")


class DiscontinuousSerializer(Serializer):
    """``ngsolve.Discontinuous``: ``{"space", "flags"}``."""

    name = "ngsolve.Discontinuous"
    version = 1
    types = (comp.Discontinuous,)

    def dump(self, obj: Any) -> Any:
        space, flags = obj.__reduce_ex__(2)[2]
        return {"space": space, "flags": dump_flags(flags, space.mesh)}

    def load(self, state: Any) -> Any:
        state = _require_dict(state, self.name)
        space = state["space"]
        return _restore(
            comp.Discontinuous, (space, load_flags(state.get("flags", {}), space.mesh)), "a Discontinuous space"
        )


class CompressSerializer(Serializer):
    """``ngsolve.Compress``: ``{"space", "active_dofs"}`` (a bool array, or None for the default)."""

    name = "ngsolve.Compress"
    version = 1
    types = (comp.Compress,)

    def dump(self, obj: Any) -> Any:
        space, active = obj.__reduce_ex__(2)[2]
        return {"space": space, "active_dofs": None if active is None else np.asarray(active, dtype=bool).copy()}

    def load(self, state: Any) -> Any:
        state = _require_dict(state, self.name)
        active = state.get("active_dofs")
        bits = None if active is None else pyngcore.BitArray(np.asarray(active, dtype=bool).tolist())
        return _restore(comp.Compress, (state["space"], bits), "a Compress space")


class PeriodicSerializer(Serializer):
    """``ngsolve.Periodic``: ``{"class", "space", "data", "version_stored", "version_needed"}``.

    The wrapped space is a reference; the phase and used identification numbers are not
    exposed by NGSolve's Python API and stay in NGSolve's archive bytes (version-bound).
    """

    name = "ngsolve.Periodic"
    version = 1
    types = tuple(getattr(comp, n) for n in ("Periodic", "QuasiPeriodicD", "QuasiPeriodicC") if hasattr(comp, n))

    def dump(self, obj: Any) -> Any:
        state = archive_state(obj, f"the {type(obj).__name__} space")
        children = state.pop("children")
        if not children or not all(isinstance(child, comp.FESpace) for child in children):
            raise UnsupportedTypeError(f"the {type(obj).__name__} space has an archive layout ngser does not know")
        out = {"class": type(obj).__name__, "space": children[0], **state}
        if len(children) > 1:  # NGSolve 6.2.2501 lists the wrapped space twice
            out["children"] = list(children)
        return out

    def load(self, state: Any) -> Any:
        state = _require_dict(state, self.name)
        classes = {cls.__name__: cls for cls in self.types}
        cls = classes.get(str(state.get("class")))
        if cls is None:
            raise StateError(f"the state of ngsolve.Periodic has an unknown class {shown(state.get('class'))}")
        children = state.get("children", [state["space"]])
        if type(children) is not list or not all(isinstance(child, comp.FESpace) for child in children):
            raise StateError("the children of an ngsolve.Periodic state must be a list of spaces")
        space = restore_archive(cls, state, f"a {cls.__name__} space", children=children)
        # NGSolve 6.2.2501 restores a Periodic space whose dof map is not set up (interpolating into
        # it gives zeros, with NGSolve's own pickle too) until it is updated; newer ones are unchanged.
        space.Update()
        return space


def space_serializers() -> list[Serializer]:
    """All space serializers, the specific ones first."""
    return [
        ProductSpaceSerializer(),
        VectorValuedSerializer(),
        DiscontinuousSerializer(),
        CompressSerializer(),
        PeriodicSerializer(),
        FESpaceSerializer(),
    ]
