"""Space flags as graph values: plain values as they are, regions as numbers (and names).

``Flags`` of a space hold floats, bools, strings and lists of them, and regions: either as
``Region`` objects or (``dirichlet``, ``definedon``, ...) as lists of 1-based region numbers.
Both are stored as ``{"region": "VOL"|"BND"|"BBND"|"BBBND", "numbers": [...], "names": [...]}``
and rebuilt by number on the loaded mesh, after the numbers are checked against it.
"""

from __future__ import annotations

from typing import Any

import ngsolve
import ngsolve.comp as comp
import numpy as np
import pyngcore

from ...errors import StateError, UnsupportedTypeError, shown
from ._checks import checked_flags

__all__ = ["CODIM", "VB", "dump_flags", "flag_values", "load_flags", "region_state", "storable", "vb_name"]

#: Flags holding lists of 1-based region numbers, and the kind of region they number.
_REGION_FLAGS = {
    "definedon": "VOL",
    "definedonbound": "BND",
    "dirichlet": "BND",
    "dirichlet_bbnd": "BBND",
    "dirichlet_bbbnd": "BBBND",
}
VB = {"VOL": ngsolve.VOL, "BND": ngsolve.BND, "BBND": ngsolve.BBND, "BBBND": ngsolve.BBBND}
CODIM = {"VOL": 0, "BND": 1, "BBND": 2, "BBBND": 3}
_INT32 = 2**31 - 1


def dump_flags(flags: Any, mesh: Any) -> dict[str, Any]:
    """A space's ``Flags`` as a plain dict; regions become ``{"region", "numbers", "names"}``."""
    out: dict[str, Any] = {}
    for key, value in flags.ToDict().items():
        if isinstance(value, comp.Region):
            vb = vb_name(value)
            numbers = (np.flatnonzero(np.asarray(value.Mask(), dtype=bool)) + 1).tolist()
            out[key] = region_state(mesh, vb, numbers)
        elif key in _REGION_FLAGS and isinstance(value, list) and all(isinstance(v, float) for v in value):
            # NGSolve's own form (dirichlet=[1, 3]): kept as the list it is, numbers the mesh does
            # not have included (NGSolve accepts and ignores them)
            # (an empty list is not one: NGSolve's ToDict shows a string flag as [])
            region = region_state(mesh, _REGION_FLAGS[key], [int(v) for v in value])
            out[key] = {**region, "form": "list"} if value else region
        elif isinstance(value, (bool, float, str)) or (
            isinstance(value, list) and all(isinstance(v, (float, str)) for v in value)
        ):
            out[key] = value
        else:
            raise UnsupportedTypeError(
                f"the space flag {key!r} holds a {type(value).__name__}, which ngser cannot store"
            )
    return out


def region_state(mesh: Any, vb: str, numbers: list[int]) -> dict[str, Any]:
    """``{"region", "numbers", "names"}`` of the regions ``numbers`` (1-based) of kind ``vb``."""
    names = list(mesh.ngmesh.GetRegionNames(codim=CODIM[vb])) if mesh is not None else []
    return {"region": vb, "numbers": numbers, "names": [names[n - 1] if 0 < n <= len(names) else "" for n in numbers]}


def load_flags(state: dict[str, Any], mesh: Any) -> Any:
    """``pyngcore.Flags`` from :func:`dump_flags`'s dict; regions are rebuilt on ``mesh`` by number."""
    return pyngcore.Flags(storable(flag_values(state, mesh), mesh))


def flag_values(state: dict[str, Any], mesh: Any) -> dict[str, Any]:
    """The flag values of :func:`dump_flags`'s dict, region dicts rebuilt as ``Region`` objects on ``mesh``."""
    plain: dict[str, Any] = {}
    for key, value in checked_flags(state, "a space").items():
        if isinstance(value, dict) and "form" in value:  # checked_flags: the only form is "list"
            numbers = value.get("numbers")
            if type(numbers) is not list or not all(type(n) is int and abs(n) <= _INT32 for n in numbers):
                raise StateError(f"the space flag {shown(key)}: region numbers must be a list of 32-bit integers")
            plain[key] = [float(n) for n in numbers]
        elif isinstance(value, dict) and "region" in value:
            vb = str(value["region"])
            if vb not in VB or mesh is None:
                raise StateError(f"the space flag {shown(key)} names an unknown region kind {shown(vb)}")
            nregions = len(mesh.ngmesh.GetRegionNames(codim=CODIM[vb]))
            mask = np.zeros(nregions, dtype=bool)
            numbers = value.get("numbers")
            if type(numbers) is not list or not all(type(n) is int and 1 <= n <= nregions for n in numbers):
                raise StateError(
                    f"the space flag {shown(key)}: region numbers must be a list of integers from 1 to {nregions}"
                )
            numbers = np.asarray(numbers, dtype=np.int64)
            if numbers.size and (numbers.min() < 1 or numbers.max() > nregions):
                raise StateError(f"the space flag {shown(key)} names region numbers outside the mesh")
            mask[numbers - 1] = True
            plain[key] = comp.Region(mesh, VB[vb], pyngcore.BitArray(mask.tolist()))
        else:  # NGSolve's numeric flags are doubles; pybind11 casts a Python int only within int32
            plain[key] = _as_float(value)
    return plain


def _as_float(value: Any) -> Any:
    if type(value) is int:
        return float(value)
    if type(value) is list:
        return [float(v) if type(v) is int else v for v in value]
    return value


def flags_hold_regions(mesh: Any) -> bool:
    """Whether this NGSolve's ``Flags`` keep a ``Region`` value given from Python (6.2.2501's drop it
    silently; its space constructors take Regions as keyword arguments). Tried once, on ``mesh``."""
    if _FLAGS_HOLD_REGIONS:
        return _FLAGS_HOLD_REGIONS[0]
    region = comp.Region(mesh, ngsolve.VOL, pyngcore.BitArray([True]))
    _FLAGS_HOLD_REGIONS.append("probe" in pyngcore.Flags({"probe": region}).ToDict())
    return _FLAGS_HOLD_REGIONS[0]


_FLAGS_HOLD_REGIONS: list[bool] = []


def storable(values: dict[str, Any], mesh: Any) -> dict[str, Any]:
    """``values`` as ``Flags`` keep them: where ``Flags`` drop Regions, a Region of the kind a region
    flag numbers (``dirichlet``: boundaries, ...) becomes that flag's list of 1-based numbers, as
    NGSolve itself stores it. Other Regions stay (and such ``Flags`` drop them)."""
    if mesh is None or not any(isinstance(v, comp.Region) for v in values.values()) or flags_hold_regions(mesh):
        return values
    out = dict(values)
    for key, value in values.items():
        if isinstance(value, comp.Region) and key in _REGION_FLAGS and vb_name(value) == _REGION_FLAGS[key]:
            out[key] = [float(n) for n in np.flatnonzero(np.asarray(value.Mask(), dtype=bool)) + 1]
    return out


def vb_name(region: Any) -> str:
    """``"VOL"``, ``"BND"``, ``"BBND"`` or ``"BBBND"``: the kind of a ``Region``."""
    return str(region.VB()).rsplit(".", 1)[-1]
