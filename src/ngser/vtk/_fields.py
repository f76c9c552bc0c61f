"""Which GridFunctions of a saved object become VTK point data, and under which names.

Every GridFunction found under a name becomes a point array of that name: a dict's key, joined
with the keys above it by ``.`` (``{"fluid": {"u": gfu}}`` gives ``fluid.u``), or a list's index
below a name (``{"modes": [g0, g1]}`` gives ``modes.0``, ``modes.1``). A GridFunction saved on its
own takes its ``name``. A GridFunction on a product space (``H1 * L2``) gives one array per
component (``u.0``, ``u.1``); vector-valued spaces (``VectorH1``, ``H1**2``) give vectors. One
VTK grid holds one mesh: fields on the mesh of the first one found are taken, the others are
listed as skipped. Usage::

    mesh, fields, skipped = ngser.vtk.named_fields({"u": gfu, "step": 3})
    layout = ngser.vtk.sample(mesh, fields)
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["named_fields"]

#: How deep :func:`named_fields` walks into dicts and lists (deeper values are not looked at).
_MAX_DEPTH = 32


def named_fields(obj: Any) -> tuple[Any, dict[str, Any], list[str]]:
    """``(mesh, fields, skipped)`` of ``obj``: the mesh of the first GridFunction found (None if
    there is none), name to GridFunction of the fields on that mesh, and the names of fields on
    other meshes. Finds nothing when NGSolve was never imported (then ``obj`` holds none)."""
    ngsolve = sys.modules.get("ngsolve")
    if ngsolve is None:
        return None, {}, []
    found: dict[str, Any] = {}
    _walk(obj, None, found, ngsolve.GridFunction, 0, set())
    mesh = None
    fields: dict[str, Any] = {}
    skipped: list[str] = []
    for name, gf in found.items():
        if mesh is None:
            mesh = gf.space.mesh
        if gf.space.mesh is mesh:
            fields[name] = gf
        else:
            skipped.append(name)
    return mesh, fields, skipped


def _walk(value: Any, name: str | None, found: dict[str, Any], gf_type: type, depth: int, seen: set[int]) -> None:
    if depth > _MAX_DEPTH or id(value) in seen:
        return
    if isinstance(value, gf_type):
        _add(value, name if name is not None else str(getattr(value, "name", "field")), found)
        return
    if isinstance(value, dict):
        seen.add(id(value))
        for key, item in value.items():
            if isinstance(key, str | int):
                _walk(item, str(key) if name is None else f"{name}.{key}", found, gf_type, depth + 1, seen)
    elif isinstance(value, list | tuple) and name is not None:
        seen.add(id(value))
        for index, item in enumerate(value):
            _walk(item, f"{name}.{index}", found, gf_type, depth + 1, seen)


def _add(gf: Any, name: str, found: dict[str, Any]) -> None:
    name = str(name).replace("/", "_")  # an HDF5 name has no "/"
    ngsolve = sys.modules["ngsolve"]
    if type(gf.space) is ngsolve.ProductSpace:  # VectorH1 and other vector-valued products are vectors
        for index, part in enumerate(gf.components):
            _add(part, f"{name}.{index}", found)
        return
    while name in found:
        if found[name] is gf:
            return
        name += "_"
    found[name] = gf
