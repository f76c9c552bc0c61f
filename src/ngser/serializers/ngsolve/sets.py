"""Sets of dofs and of regions: ``BitArray`` (``fes.FreeDofs()``) and ``Region`` (``mesh.Materials("...")``).

- ``pyngcore.BitArray``: ``{"bits": bool array}``.
- ``ngsolve.Region``: ``{"mesh": ref, "region": "VOL"|"BND"|"BBND"|"BBBND", "mask": bool array,
  "names": [...]}``, one entry of ``mask`` per region of that kind of the mesh (the names of the
  selected ones are for people reading the file). Rebuilt as ``Region(mesh, VB, BitArray(mask))``
  after the mask's length is checked against the loaded mesh.
"""

from __future__ import annotations

from typing import Any

import ngsolve.comp as comp
import numpy as np
import pyngcore

from ...errors import StateError, shown
from ..base import Serializer
from ._checks import require_dict
from ._flags import CODIM, VB, region_state, vb_name

__all__ = ["BitArraySerializer", "RegionSerializer"]


def _bools(value: Any, what: str) -> np.ndarray[Any, Any]:
    if not (isinstance(value, np.ndarray) and value.dtype == np.bool_ and value.ndim == 1):
        raise StateError(f"{what} must be a 1-dimensional bool array, not {shown(value)}")
    return value


class BitArraySerializer(Serializer):
    """``pyngcore.BitArray`` (``fes.FreeDofs()``, ``definedonelements``): its bits as a bool array."""

    name = "pyngcore.BitArray"
    version = 1
    types = (pyngcore.BitArray,)

    def dump(self, obj: Any) -> Any:
        return {"bits": np.fromiter(obj, dtype=bool, count=len(obj))}

    def load(self, state: Any) -> Any:
        bits = _bools(require_dict(state, self.name).get("bits"), "pyngcore.BitArray: bits")
        return pyngcore.BitArray(bits)


class RegionSerializer(Serializer):
    """``ngsolve.Region``: the mesh (a reference), the kind of region and which regions it selects."""

    name = "ngsolve.Region"
    version = 1
    types = (comp.Region,)

    def dump(self, obj: Any) -> Any:
        kind = vb_name(obj)
        mask = np.asarray(obj.Mask(), dtype=bool)
        names = region_state(obj.mesh, kind, (np.flatnonzero(mask) + 1).tolist())["names"]
        return {"mesh": obj.mesh, "region": kind, "mask": mask, "names": names}

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        mesh, kind = state.get("mesh"), state.get("region")
        if not isinstance(mesh, comp.Mesh):
            raise StateError(f"ngsolve.Region: 'mesh' must refer to an ngsolve.Mesh, not {type(mesh).__name__}")
        if type(kind) is not str or kind not in VB:
            raise StateError(f"ngsolve.Region: region must be one of {', '.join(VB)}, not {shown(kind)}")
        mask = _bools(state.get("mask"), "ngsolve.Region: mask")
        count = len(mesh.ngmesh.GetRegionNames(codim=CODIM[kind]))
        if len(mask) != count:
            raise StateError(
                f"ngsolve.Region: the mask has {len(mask)} entries, but the mesh has {count} {kind} regions"
            )
        return comp.Region(mesh, VB[kind], pyngcore.BitArray(mask))
