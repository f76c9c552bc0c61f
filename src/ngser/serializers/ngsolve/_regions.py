"""Region-wise CoefficientFunctions (``mesh.MaterialCF``, ``mesh.BoundaryCF``, ``CF([...])``)
rebuilt without the mesh they were made on.

A region-wise node holds one value per region number and, for ``MaterialCF``/``BoundaryCF``,
the kind of region it is evaluated on (volume or boundary elements); it keeps no reference to
a mesh. NGSolve's Python API only builds the bound kinds through a mesh, by region: ngser
builds them on a small stand-in mesh with the same number of regions (one triangle and one
segment per region), which the node does not keep. Stand-in meshes are cached by size.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import netgen.meshing as nm
import ngsolve
import numpy as np
import pyngcore

from ...errors import StateError, shown

__all__ = ["MAX_REGIONS", "REGION_KINDS", "region_wise"]

#: The most regions a region-wise node may have (its stand-in mesh has one triangle per region).
MAX_REGIONS = 10_000
#: ``optional<VorB>`` values as ngser stores them.
REGION_KINDS = {None: None, "VOL": 0, "BND": 1}


@lru_cache(maxsize=8)
def _stand_in(count: int) -> Any:
    """A 2D mesh with ``count`` materials and ``count`` boundaries (one triangle and one segment each)."""
    ngmesh = nm.Mesh(dim=2)
    k = np.arange(count)
    points = np.zeros((3 * count, 2))
    points[0::3, 0] = 2 * k
    points[1::3, 0] = 2 * k + 1
    points[2::3, 0] = 2 * k
    points[2::3, 1] = 1
    ngmesh.AddPoints(points)
    for i in range(count):
        ngmesh.Add(nm.FaceDescriptor(surfnr=i + 1, domin=0, domout=0, bc=i + 1))
    triangles = (3 * k[:, None] + np.arange(3)[None, :] + 1).astype(np.int32)
    for i in range(count):
        ngmesh.AddElements(dim=2, index=i + 1, data=triangles[i : i + 1], base=1)
        ngmesh.Add(nm.Element1D([nm.PointId(3 * i + 1), nm.PointId(3 * i + 2)], index=i + 1))
    for i in range(count):
        ngmesh.SetMaterial(i + 1, f"r{i}")
        ngmesh.SetBCName(i, f"r{i}")
    return ngsolve.Mesh(ngmesh)


def _empty(count: int) -> Any:
    mask = pyngcore.BitArray(count)
    mask.Clear()
    return mask


def region_wise(values: list[Any], region: Any) -> Any:
    """The region-wise node with ``values[i]`` on region ``i`` (None: no value there),
    evaluated on ``region`` elements (``"VOL"``, ``"BND"``, or None for any)."""
    if region not in REGION_KINDS:
        raise StateError(f"a region-wise node's region must be 'VOL', 'BND' or None, not {shown(region)}")
    if not 1 <= len(values) <= MAX_REGIONS:
        raise StateError(f"a region-wise node must have 1 to {MAX_REGIONS} values, not {len(values)}")
    given = [v for v in values if v is not None]
    if not given:
        raise StateError("a region-wise node has no value on any region")
    shapes = {tuple(int(d) for d in v.dims) for v in given}
    if len(shapes) > 1:
        raise StateError(f"the values of a region-wise node have different shapes {sorted(shapes)}")
    if region is None:
        if len(given) != len(values):
            raise StateError("a region-wise node without a region kind must have a value on every region")
        return ngsolve.CF(list(values))
    mesh = _stand_in(len(values))
    vb = ngsolve.VOL if region == "VOL" else ngsolve.BND
    masks: dict[int, tuple[Any, Any]] = {}  # one region per distinct value (a default fills many)
    for i, value in enumerate(values):
        if value is not None:
            mask = masks.setdefault(id(value), (_empty(len(values)), value))[0]
            mask[i] = True
    regions = {ngsolve.Region(mesh, vb, mask): value for mask, value in masks.values()}
    return mesh.MaterialCF(regions) if region == "VOL" else mesh.BoundaryCF(regions)
