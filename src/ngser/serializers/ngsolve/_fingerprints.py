"""Fingerprints (``Serializer.fingerprint``) of the NGSolve objects that usually stay the same from
one checkpoint step to the next: meshes, leaf spaces, geometries.

A fingerprint is a cheap value that changes whenever what the serializer stores may have
changed; a :class:`~ngser.Checkpoint` stores such an object once and refers to it while its
fingerprint stays the same:

- a netgen mesh: netgen's modification stamp (``_timestamp``, raised by every change netgen
  makes: refinement, added points and elements, curving); the checkpoint checks the object's
  identity itself (not the id of ``mesh.ngmesh``: NGSolve makes a new Python wrapper of the
  netgen mesh whenever the last one died, so that id changed from one access to the next and the
  mesh was stored again);
- an NGSolve mesh: its netgen mesh's fingerprint and curve order, plus, for a deformed mesh, the deformation's
  identity and a digest of its values (a moving mesh is stored again whenever it moved);
- a leaf space: its mesh's fingerprint and its number of dofs;
- a geometry: nothing changes it once meshes are made from it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .identity import gridfunction_key

__all__ = ["netgen_mesh_fingerprint", "mesh_fingerprint", "space_fingerprint"]


def netgen_mesh_fingerprint(ngmesh: Any) -> tuple[Any, ...]:
    return (int(getattr(ngmesh, "_timestamp", -1)),)


def mesh_fingerprint(mesh: Any) -> tuple[Any, ...]:
    field = mesh.deformation
    deformation = None
    if field is not None:
        values = field.vec.FV().NumPy()
        deformation = (gridfunction_key(field), hashlib.blake2b(values.tobytes(), digest_size=16).digest())
    return (*netgen_mesh_fingerprint(mesh.ngmesh), int(mesh.GetCurveOrder()), deformation)


def space_fingerprint(space: Any) -> tuple[Any, ...]:
    return (mesh_fingerprint(space.mesh), int(space.ndof), type(space).__name__)
