"""Finite element spaces: type, flags (regions by name) and a reference to the mesh.

Leaf spaces (H1, L2, HCurl, ...) are rebuilt as NGSolve's own unpickling does, from their type
string, mesh and flags. Wrapper spaces are rebuilt from their parts, which are graph references:
products ``V*Q`` from their component spaces, ``V**n`` from ``V`` and ``n``, ``Discontinuous``
and ``Compress`` from the wrapped space, ``Periodic`` (and quasi-periodic) spaces from the wrapped
space, phase and identification numbers (read from NGSolve's archive of the live space when saving).
The mesh is rebuilt with the same element order, so the dof numbering after loading is identical.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import ngsolve.comp as comp
import numpy as np
import pyngcore

from ...errors import StateError, UnsupportedTypeError, shown
from ..base import Serializer
from ._archive_read import periodic_fields
from ._checks import MAX_COMPONENTS, checked_periodic, int_in, require_dict
from ._compat import identifications
from ._dof_order import put_values, rebuilt_order, stored_values
from ._fingerprints import space_fingerprint
from ._flags import dump_flags, flag_values, load_flags, storable
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


def _leaf_classes() -> dict[str, type]:
    return {name: getattr(comp, name) for name in LEAF_SPACES if hasattr(comp, name)}


def _restore(cls: type, state: Any, what: str) -> Any:
    obj = cls.__new__(cls)  # type: ignore[call-overload]  # cls is an NGSolve class
    try:
        obj.__setstate__(state)
    except Exception as exc:
        raise StateError(f"NGSolve could not rebuild {what}: {exc}") from exc
    return obj


# NGSolve's constructors take None for a space or mesh (a null pointer) and crash on it: every
# reference is checked to be of the right class first.
def _space_at(state: dict[str, Any], key: str, name: str) -> Any:
    space = state.get(key)
    if not isinstance(space, comp.FESpace):
        raise StateError(f"{name}: {key!r} must refer to a space, not {type(space).__name__}")
    return space


def _mesh_at(state: dict[str, Any], name: str) -> Any:
    mesh = state.get("mesh")
    if not isinstance(mesh, comp.Mesh):
        raise StateError(f"{name}: 'mesh' must refer to an ngsolve.Mesh, not {type(mesh).__name__}")
    return mesh


def _spaces_at(state: dict[str, Any], name: str) -> list[Any]:
    spaces = state.get("spaces")
    if type(spaces) is not list or not 1 <= len(spaces) <= MAX_COMPONENTS:
        raise StateError(f"{name}: 'spaces' must be a list of 1 to {MAX_COMPONENTS} spaces")
    for i in range(len(spaces)):
        _space_at({"spaces": spaces[i]}, "spaces", f"{name} component {i}")
    if any(space.mesh != spaces[0].mesh for space in spaces[1:]):
        raise StateError(f"{name}: the component spaces are on different meshes")
    return spaces


# -- serializers -----------------------------------------------------------------------------
class FESpaceSerializer(Serializer):
    """``ngsolve.FESpace``: ``{"class", "type", "mesh", "flags"}`` for leaf spaces (H1, L2, HCurl, ...)."""

    name = "ngsolve.FESpace"
    version = 1
    types = (comp.FESpace,)
    subclasses = True

    def fingerprint(self, obj: Any) -> Any:
        """Checkpoints store it once while this stays the same (:mod:`._fingerprints`)."""
        return space_fingerprint(obj)

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
        state = require_dict(state, self.name)
        cls = _leaf_classes().get(str(state.get("class")))
        if cls is None:
            raise StateError(f"the state of ngsolve.FESpace has an unknown space class {shown(state.get('class'))}")
        mesh = _mesh_at(state, self.name)
        if type(state.get("type")) is not str:
            raise StateError(f"the state of ngsolve.FESpace has a space type {shown(state.get('type'))}, not a name")
        values = storable(flag_values(state.get("flags", {}), mesh), mesh)
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
        state = require_dict(state, self.name)
        spaces = _spaces_at(state, self.name)
        flags = load_flags(state.get("flags", {}), spaces[0].mesh)
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
        state = require_dict(state, self.name)
        space = _space_at(state, "space", self.name)
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
        state = require_dict(state, self.name)
        space = _space_at(state, "space", self.name)
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
        if active is None:
            return {"space": space, "active_dofs": None}
        bits, dof_order = stored_values(np.asarray(active, dtype=bool).copy(), space, "a Compress space")
        state = {"space": space, "active_dofs": bits}
        if dof_order is not None:  # a refined mesh: the bits in the order a rebuilt mesh reproduces
            state["dof_order"] = dof_order
        return state

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        space = _space_at(state, "space", self.name)
        active = state.get("active_dofs")
        order = None
        if isinstance(active, np.ndarray) and active.dtype == np.bool_ and active.ndim == 1:
            order = rebuilt_order(state, space, active.size, f"the active dofs of {self.name}")
        if order is not None:
            in_space_order = np.zeros(space.ndof, dtype=bool)
            put_values(in_space_order, order, int(space.ndof), active, f"the active dofs of {self.name}")
            active = in_space_order
        elif active is not None and not (
            isinstance(active, np.ndarray) and active.dtype == np.bool_ and active.shape == (space.ndof,)
        ):
            raise StateError(f"{self.name}: active_dofs must be None or a bool array of the space's {space.ndof} dofs")
        bits = None if active is None else pyngcore.BitArray(active.tolist())
        return _restore(comp.Compress, (space, bits), "a Compress space")


_PERIODIC_TYPES = tuple(getattr(comp, n) for n in ("Periodic", "QuasiPeriodicD", "QuasiPeriodicC") if hasattr(comp, n))


def periodic_count(mesh: Any) -> int:
    """How many periodic identifications ``mesh`` has: NGSolve numbers them 0, 1, ... in the
    order of the mesh's identification numbers, skipping those of other types."""
    kinds = identifications(mesh.ngmesh)[1]
    return sum(1 for kind in kinds if kind == "PERIODIC")


class NativePeriodicSpace:
    """Stands, while saving, for a periodic space stored as NGSolve's bytes (:class:`PeriodicSerializer`)."""

    __slots__ = ("space",)

    def __init__(self, space: Any) -> None:
        self.space = space


def periodic_state(obj: Any) -> dict[str, Any] | None:
    """``{"class", "space", "phase", "use_idnrs", "autoupdate"}`` of a periodic space, read from
    its archive bytes (NGSolve's Python API gives neither the phase nor the identification
    numbers), or None when they have no layout ngser knows or hold values it would not load."""
    state = archive_state(obj, f"the {type(obj).__name__} space")
    fields = periodic_fields(state["data"])
    children = state["children"]
    if fields is None or not children or not isinstance(children[0], comp.FESpace):
        return None
    space, phase, count = children[0], fields.phase, periodic_count(children[0].mesh)
    # factors past the mesh's identifications are never used
    phase = None if phase is None else phase[: max(count, 1)]
    out = {"class": fields.cls, "space": space, "phase": phase, "use_idnrs": fields.use_idnrs or None}
    out["autoupdate"] = bool(obj.autoupdate)
    try:
        checked_periodic(out, count)
    except StateError:  # e.g. identification numbers the mesh does not have
        return None
    return out


class PeriodicSpaceSerializer(Serializer):
    """``ngsolve.PeriodicSpace``: ``{"class", "space", "phase", "use_idnrs", "autoupdate"}``.

    ``class`` is ``"Periodic"``, ``"QuasiPeriodicD"`` or ``"QuasiPeriodicC"``; ``space`` the base
    space (a reference); ``phase`` None or the factors per periodic identification (floats or
    complex); ``use_idnrs`` None (all) or NGSolve's 0-based numbers of the periodic identifications
    used. Rebuilt with ``ngsolve.Periodic(space, phase=..., use_idnrs=..., autoupdate=...)``. A space
    whose archive has no layout ngser knows is stored by :class:`PeriodicSerializer` instead.
    """

    name = "ngsolve.PeriodicSpace"
    version = 1
    types = _PERIODIC_TYPES

    def canonical(self, obj: Any, cache: MutableMapping[Any, Any]) -> Any:
        """Encoder hook: a space with no structured form is saved as its archive bytes."""
        return obj if periodic_state(obj) is not None else NativePeriodicSpace(obj)

    def dump(self, obj: Any) -> Any:
        state = periodic_state(obj)
        if state is None:  # canonical() sent it to PeriodicSerializer; reached only when called directly
            raise UnsupportedTypeError(f"the {type(obj).__name__} space has no structured form")
        return state

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        space = state.get("space")
        if not isinstance(space, comp.FESpace):
            raise StateError(
                f"the base space of an ngsolve.PeriodicSpace is {shown(space)}, not a space: the file is damaged or "
                "was not written by ngser"
            )
        phase, idnrs, autoupdate = checked_periodic(state, periodic_count(space.mesh))
        try:
            return comp.Periodic(space, phase=phase, use_idnrs=idnrs, autoupdate=autoupdate)
        except Exception as exc:  # NGSolve's own refusal (an NgException)
            raise StateError(f"NGSolve could not rebuild a {state['class']} space: {exc}") from exc


class PeriodicSerializer(Serializer):
    """``ngsolve.Periodic``: ``{"class", "space", "data", "version_stored", "version_needed"}``,
    trusted-only: the layout of earlier ngser versions, still written for a periodic space whose
    archive ngser cannot read. The phase and identification numbers stay in NGSolve's archive
    bytes (version-bound, and NGSolve's reader trusts them)."""

    name = "ngsolve.Periodic"
    version = 1
    types = (NativePeriodicSpace,)
    trusted_only = True
    trusted_reason = (
        "it holds NGSolve's own archive bytes of a Periodic space, which NGSolve's archive reader trusts (crafted "
        "bytes can crash the process)"
    )

    def dump(self, obj: Any) -> Any:
        space = obj.space
        state = archive_state(space, f"the {type(space).__name__} space")
        children = state.pop("children")
        if not children or not all(isinstance(child, comp.FESpace) for child in children):
            raise UnsupportedTypeError(f"the {type(space).__name__} space has an archive layout ngser does not know")
        out = {"class": type(space).__name__, "space": children[0], **state}
        if len(children) > 1:  # NGSolve 6.2.2501 lists the wrapped space twice
            out["children"] = list(children)
        return out

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        classes = {cls.__name__: cls for cls in _PERIODIC_TYPES}
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
        PeriodicSpaceSerializer(),
        PeriodicSerializer(),
        FESpaceSerializer(),
    ]
