"""Operators built from matrices: ``IdentityMatrix``, ``Projector``, ``a + b``, ``a - b``, ``a @ b``,
``a.T`` and ``s * a``. Native pickle handles none of them.

- ``ngsolve.IdentityMatrix``: ``{"size": int | None, "complex": bool}`` (``None``: NGSolve's
  ``IdentityMatrix()`` "of any format").
- ``ngsolve.Projector``: ``{"mask": bool (n,), "range": bool}``.
- ``ngsolve.SumMatrix``: ``{"a": ref, "b": ref, "factor": 1.0 | -1.0}`` (``a + b`` or ``a - b``).
- ``ngsolve.ProductMatrix``: ``{"a": ref, "b": ref}``; ``ngsolve.TransposeMatrix``: ``{"mat": ref}``;
  ``ngsolve.ScaleMatrix``: ``{"mat": ref, "scale": float}``.

NGSolve exposes the children (``matA``, ``matB``, ``mat``) but not a Projector's mask, a sum's
sign or a scaling factor: ngser reads them by applying the operator to a vector when saving (one
product each). A Projector comes back as ``Projector(mask, True)`` with the dofs it keeps (the
same operator as ``Projector(~mask, False)``); a scale is found exactly for a sparse child (and to
rounding otherwise). Loading checks the children's sizes before NGSolve combines them.
"""

from __future__ import annotations

from typing import Any

import ngsolve.la as la
import numpy as np
import pyngcore

from ...errors import StateError, UnsupportedTypeError, shown
from ..base import Serializer
from ._checks import int_in, require_dict
from .linalg import operator_info

__all__ = ["operator_serializers"]

_INT32 = 2**31 - 1
_SEED = 20250113


def _size(obj: Any) -> tuple[int, int] | None:
    """``(height, width)`` of an operator, or None for one without a size."""
    try:
        return int(obj.height), int(obj.width)
    except Exception:  # NGSolve raises for an IdentityMatrix "of any format"
        return None


def _probe(op: Any, width: int) -> tuple[Any, Any]:
    """A fixed pseudo-random vector ``x`` of ``width`` entries (complex for complex operators) and ``op * x``."""
    rng = np.random.default_rng(_SEED)
    x = la.BaseVector(width, bool(op.is_complex))
    values = rng.uniform(0.5, 1.5, width) * rng.choice([-1.0, 1.0], width)
    x.FV().NumPy()[:] = values + (1j * rng.uniform(0.5, 1.5, width) if op.is_complex else 0)
    y = la.BaseVector(_size(op)[0], bool(op.is_complex))  # type: ignore[index]
    op.Mult(x, y)
    return x, y.FV().NumPy().copy()


def _apply(op: Any, x: Any) -> np.ndarray[Any, Any]:
    size = _size(op)
    assert size is not None
    y = la.BaseVector(size[0], bool(op.is_complex) or bool(x.is_complex))
    op.Mult(x, y)
    return np.asarray(y.FV().NumPy().copy())


def _child(state: dict[str, Any], key: str, what: str) -> Any:
    value = state.get(key)
    if not isinstance(value, la.BaseMatrix):
        raise StateError(f"{what}: {key} must refer to a matrix, not {type(value).__name__}")
    return value


def _sized(value: Any, what: str) -> tuple[int, int]:
    size = _size(value)
    if size is None:
        raise StateError(f"{what}: an operator without a size (IdentityMatrix()) cannot be combined here")
    return size


class IdentityMatrixSerializer(Serializer):
    """``IdentityMatrix(size, complex)``."""

    name = "ngsolve.IdentityMatrix"
    types = (la.IdentityMatrix,)

    def dump(self, obj: Any) -> Any:
        size = _size(obj)
        return {"size": None if size is None else size[0], "complex": bool(obj.is_complex)}

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        size, cplx = state.get("size"), state.get("complex", False)
        if type(cplx) is not bool:
            raise StateError(f"{self.name}: complex must be true or false, not {shown(cplx)}")
        if size is None:
            return la.IdentityMatrix()
        return la.IdentityMatrix(int_in(size, 0, _INT32, f"{self.name}: size"), complex=cplx)


class ProjectorSerializer(Serializer):
    """``Projector(mask, range)``: the dofs it keeps, read by applying it to a vector of ones."""

    name = "ngsolve.Projector"
    types = (la.Projector,)

    def dump(self, obj: Any) -> Any:
        n = int(obj.height)
        ones = la.BaseVector(n)
        ones.FV().NumPy()[:] = 1.0
        kept = _apply(obj, ones)
        return {"mask": np.asarray(kept != 0, dtype=bool), "range": True}

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        mask, keep = state.get("mask"), state.get("range", True)
        if not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.ndim == 1):
            raise StateError(f"{self.name}: mask must be a 1-dimensional bool array, not {shown(mask)}")
        if type(keep) is not bool:
            raise StateError(f"{self.name}: range must be true or false, not {shown(keep)}")
        return la.Projector(pyngcore.BitArray(mask), keep)


class SumMatrixSerializer(Serializer):
    """``a + b`` and ``a - b`` (``SumMatrix``); the sign is read by applying the sum to a vector."""

    name = "ngsolve.SumMatrix"
    types = (la.SumMatrix,)

    def dump(self, obj: Any) -> Any:
        a, b = obj.matA, obj.matB
        x, y = _probe(obj, int(obj.width))
        ya, yb = _apply(a, x), _apply(b, x)
        scale = max(float(np.abs(ya).max(initial=0)), float(np.abs(yb).max(initial=0)), 1e-300)
        errors = {factor: float(np.abs(y - (ya + factor * yb)).max(initial=0)) / scale for factor in (1.0, -1.0)}
        factor = min(errors, key=errors.__getitem__)
        if errors[factor] > 1e-12:
            raise UnsupportedTypeError(
                f"the operator {operator_info(obj)!r} is a sum with factors other than a + b or a - b (made inside "
                "NGSolve); ngser cannot read its factors"
            )
        return {"a": a, "b": b, "factor": factor}

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        a, b, factor = _child(state, "a", self.name), _child(state, "b", self.name), state.get("factor")
        if type(factor) is not float or factor not in (1.0, -1.0):
            raise StateError(f"{self.name}: factor must be 1.0 or -1.0, not {shown(factor)}")
        if _sized(a, self.name) != _sized(b, self.name):
            raise StateError(f"{self.name}: the summands are {_size(a)} and {_size(b)}, not of one shape")
        return la.BaseMatrix.__add__(a, b) if factor > 0 else la.BaseMatrix.__sub__(a, b)


class ProductMatrixSerializer(Serializer):
    """``a @ b`` (``ProductMatrix``), kept a product (``BaseMatrix.__matmul__``, not a sparse product)."""

    name = "ngsolve.ProductMatrix"
    types = (la.ProductMatrix,)

    def dump(self, obj: Any) -> Any:
        return {"a": obj.matA, "b": obj.matB}

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        a, b = _child(state, "a", self.name), _child(state, "b", self.name)
        (_, width), (height, _) = _sized(a, self.name), _sized(b, self.name)
        if width != height:
            raise StateError(f"{self.name}: a has {width} columns but b has {height} rows")
        return la.BaseMatrix.__matmul__(a, b)


class TransposeMatrixSerializer(Serializer):
    """``a.T`` (``TransposeMatrix``)."""

    name = "ngsolve.TransposeMatrix"
    types = (la.TransposeMatrix,)

    def dump(self, obj: Any) -> Any:
        return {"mat": obj.mat}

    def load(self, state: Any) -> Any:
        mat = _child(require_dict(state, self.name), "mat", self.name)
        _sized(mat, self.name)
        return mat.T


def _scale(obj: Any, mat: Any) -> float | None:
    """The factor ``s`` of ``obj = s * mat``. Applied to a unit vector ``e_j``, a sparse (or
    transposed sparse) ``mat`` gives the entries of one column exactly, and ``obj`` gives each
    multiplied by ``s`` and rounded once: the float that reproduces them all is ``s`` (the one
    nearest the least-squares estimate, should several). Otherwise the estimate, if it reproduces
    ``obj``'s product with a random vector to rounding; None when nothing fits."""
    x, y = _probe(obj, int(obj.width))
    z = _apply(mat, x)
    if not np.abs(z).max(initial=0) > 0:
        return None
    estimate = complex(np.vdot(z, y) / np.vdot(z, z)).real
    width, columns, images = int(obj.width), [], []
    for j in np.linspace(0, width - 1, min(width, 4)).astype(int).tolist():
        unit = la.BaseVector(width, bool(obj.is_complex))
        unit.FV().NumPy()[:] = 0
        unit.FV().NumPy()[j] = 1
        column, image = _apply(mat, unit), _apply(obj, unit)
        used = column != 0
        columns.append(column[used])
        images.append(image[used])
    column, image = np.concatenate(columns), np.concatenate(images)
    if column.size:
        k = int(np.argmax(np.abs(column)))
        ratio = complex(image[k] / column[k]).real
        candidates = [ratio]
        for direction in (np.inf, -np.inf):
            value = ratio
            for _ in range(4):
                value = float(np.nextafter(value, direction))
                candidates.append(value)
        exact = [c for c in candidates if np.array_equal(c * column, image)]
        if exact:
            return min(exact, key=lambda c: abs(c - estimate))
    if float(np.abs(estimate * z - y).max()) <= 1e-12 * float(np.abs(y).max()):
        return estimate
    return None


class ScaleMatrixSerializer(Serializer):
    """``s * a`` for a real ``s`` (``ScaleMatrix``); ``s`` is read by applying both to a vector."""

    name = "ngsolve.ScaleMatrix"
    types = (la.ScaleMatrix,)

    def dump(self, obj: Any) -> Any:
        mat = obj.mat
        scale = _scale(obj, mat)
        if scale is None:
            raise UnsupportedTypeError(f"the factor of {operator_info(obj)!r} cannot be read from its products")
        return {"mat": mat, "scale": float(scale)}

    def load(self, state: Any) -> Any:
        state = require_dict(state, self.name)
        mat, scale = _child(state, "mat", self.name), state.get("scale")
        if type(scale) is not float or not np.isfinite(scale):
            raise StateError(f"{self.name}: scale must be a finite float, not {shown(scale)}")
        return la.BaseMatrix.__rmul__(mat, scale)


def operator_serializers() -> list[Serializer]:
    """Fresh instances of the operator serializers (exact types: their order does not matter)."""
    return [
        IdentityMatrixSerializer(),
        ProjectorSerializer(),
        SumMatrixSerializer(),
        ProductMatrixSerializer(),
        TransposeMatrixSerializer(),
        ScaleMatrixSerializer(),
    ]
