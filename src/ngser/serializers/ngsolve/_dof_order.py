"""Dof values in the node order of :mod:`._numbering`, for every state that stores a dof vector
(GridFunctions, a mesh's deformation).

``stored_values(values, space, what)`` gives what to store: the values as they are, or, on a mesh
a rebuilt mesh numbers differently, sorted into node order with the ``dof_order`` entry naming
it. ``write_values(targets, rows, state, space, what)`` puts stored rows back into the rebuilt
space's vectors, checking the ``dof_order`` entry against the rebuilt space.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import StateError, UnsupportedTypeError
from ._numbering import NODE_ORDER, canonical_dofs, checked_dof_order, renumbered

__all__ = ["stored_values", "rebuilt_order", "put_values"]


def stored_values(values: np.ndarray, space: Any, what: str) -> tuple[np.ndarray, dict[str, Any] | None]:
    """``(values to store, dof_order entry or None)`` of dof ``values`` (``(..., ndof*dim)``) of ``space``."""
    if not renumbered(space.mesh):
        return values, None
    try:
        order, digest = canonical_dofs(space)
    except StateError as exc:
        raise UnsupportedTypeError(f"{what} cannot be saved: {exc}") from exc
    ndof = int(space.ndof)
    dim = values.shape[-1] // max(ndof, 1)
    blocks = values.reshape(*values.shape[:-1], ndof, dim)
    taken = np.ascontiguousarray(blocks[..., order, :].reshape(*values.shape[:-1], len(order) * dim))
    return taken, {"kind": NODE_ORDER, "digest": digest, "count": len(order)}


def rebuilt_order(state: dict[str, Any], space: Any, width: int, what: str) -> np.ndarray | None:
    """For values stored in node order (``state["dof_order"]``): the rebuilt space's dofs in that
    order, checked; None for values stored in the space's own order."""
    if "dof_order" not in state:
        return None
    digest, count = checked_dof_order(state["dof_order"], what)
    order, rebuilt = canonical_dofs(space)
    if rebuilt != digest or count != len(order) or (count == 0 and width) or (count and width % count):
        raise StateError(
            f"{what} stores {count} dofs in node order but the rebuilt space's {len(order)} dofs are on other "
            "nodes; the mesh did not come back with the same vertices, edges and faces"
        )
    return order


def put_values(target: np.ndarray, order: np.ndarray, ndof: int, row: np.ndarray, what: str) -> None:
    """Write ``row`` (node order) into ``target`` (the space's order); the other dofs (unused
    ones) become zero."""
    dim = target.size // max(ndof, 1)
    if target.size != ndof * dim or row.size != len(order) * dim:
        raise StateError(
            f"{what} has {row.size} values for {len(order)} dofs but its rebuilt space has {dim} values per dof"
        )
    blocks = target.reshape(ndof, dim)
    blocks[:] = 0
    blocks[order, :] = row.reshape(len(order), dim)
