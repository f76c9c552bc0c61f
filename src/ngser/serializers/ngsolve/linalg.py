"""Sparse matrices and their factorizations: ``SparseMatrixd`` and ``SparseCholesky``.

- ``ngsolve.SparseMatrix``: ``{"shape": [h, w], "indptr": int64 (h + 1,), "indices": int32 (nze,),
  "data": float64 (nze,), "symmetric": bool}``, NGSolve's own CSR storage (``mat.CSR()``): row
  ``i`` holds the columns ``indices[indptr[i]:indptr[i + 1]]``, strictly increasing, explicit
  zeros of the sparsity pattern included. ``symmetric`` marks a ``SparseMatrixSymmetricd``
  (``BilinearForm(..., symmetric=True, symmetric_storage=True)``), which stores only the lower
  triangle (column <= row). Rebuilt with ``SparseMatrixd.CreateFromCOO`` after every array is
  checked; NGSolve has no Python constructor of ``SparseMatrixSymmetricd``, so a symmetric one
  loads as a ``SparseMatrixd`` holding both triangles (the same entries and products).
- ``ngsolve.SparseCholesky`` (trusted only): ``{"scalar": "float64"|"complex128", "shape": [h, w],
  "data", "version_stored", "version_needed"}``, NGSolve's archive of the factorization, as native
  pickle stores it. NGSolve gives no way back to the factored matrix or its free dofs (its archive
  holds the factor, not the matrix), so it cannot be factored again on load.

Complex, single-precision and block-entry sparse matrices, other inverses and the operators
:mod:`.linalg_ops` does not cover are refused with an :class:`~ngser.UnsupportedTypeError` that
says why (:class:`UnsupportedMatrixSerializer`).
"""

from __future__ import annotations

from typing import Any

import ngsolve.la as la
import numpy as np

from ...errors import StateError, UnsupportedTypeError, shown
from ..base import Serializer
from ._checks import int_in, require_dict
from .native import archive_state, check_bytes, restore_archive

__all__ = [
    "SparseCholeskySerializer",
    "SparseMatrixSerializer",
    "UnsupportedMatrixSerializer",
    "linalg_serializers",
    "operator_info",
]

_INT32 = 2**31 - 1
_SCALAR_CLASSES = {"float64": la.SparseCholesky_d, "complex128": la.SparseCholesky_c}


def operator_info(obj: Any) -> str:
    """The first line of NGSolve's description of an operator (``"SumMatrix, h = 5, w = 5"``)."""
    try:
        lines = str(obj.GetOperatorInfo()).strip().splitlines()
    except Exception:  # NGSolve raises for operators without a size (an IdentityMatrix "of any format")
        return type(obj).__name__
    return lines[0].strip() if lines else type(obj).__name__


def _shape(value: Any, what: str) -> tuple[int, int]:
    if type(value) not in (list, tuple) or len(value) != 2:
        raise StateError(f"{what}: shape must be a list [height, width], not {shown(value)}")
    return int_in(value[0], 0, _INT32, f"{what}: the height"), int_in(value[1], 0, _INT32, f"{what}: the width")


def _int_array(state: dict[str, Any], key: str, what: str) -> np.ndarray[Any, Any]:
    value = state.get(key)
    if not (isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim == 1):
        got = f"a {value.dtype} array of {value.ndim} dimensions" if isinstance(value, np.ndarray) else shown(value)
        raise StateError(f"{what}: {key} must be a 1-dimensional integer array, not {got}")
    return value


def checked_csr(state: dict[str, Any], what: str) -> tuple[int, int, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(height, width, rows, indices)`` of a CSR state, every array checked against the others:
    ``indptr`` starts at 0, never decreases and ends at the number of entries; ``indices`` are
    columns ``0 .. width - 1``, strictly increasing in each row. ``rows`` is the row of each entry
    (int32, as ``CreateFromCOO`` takes it)."""
    height, width = _shape(state.get("shape"), what)
    indptr, indices = _int_array(state, "indptr", what), _int_array(state, "indices", what)
    nze = len(indices)
    if len(indptr) != height + 1:
        raise StateError(f"{what}: indptr has {len(indptr)} entries, but a matrix of {height} rows needs {height + 1}")
    if int(indptr[0]) != 0 or int(indptr[-1]) != nze:
        raise StateError(
            f"{what}: indptr must run from 0 to the number of entries ({nze}), not from {int(indptr[0])} to "
            f"{int(indptr[-1])}"
        )
    counts = np.diff(indptr.astype(np.int64))  # within 0..nze now, so int64 holds every value
    if counts.size and int(counts.min()) < 0:
        raise StateError(f"{what}: indptr decreases at row {int(np.argmax(counts < 0))}")
    if nze and (int(indices.min()) < 0 or int(indices.max()) >= width):
        raise StateError(
            f"{what}: the column numbers run from {int(indices.min())} to {int(indices.max())}, but the matrix has "
            f"{width} columns (0 to {width - 1})"
        )
    rows = np.repeat(np.arange(height, dtype=np.int32), counts)
    columns = indices.astype(np.int32)
    same_row = rows[1:] == rows[:-1]
    if bool((same_row & (columns[1:] <= columns[:-1])).any()):
        row = int(rows[1:][same_row & (columns[1:] <= columns[:-1])][0])
        raise StateError(f"{what}: the columns of row {row} are not strictly increasing (sorted, each once)")
    return height, width, rows, columns


class SparseMatrixSerializer(Serializer):
    """``SparseMatrixd`` (``bfa.mat``, ``SparseMatrixd.CreateFromCOO(...)``) and
    ``SparseMatrixSymmetricd`` as NGSolve's CSR arrays (see the module docstring)."""

    name = "ngsolve.SparseMatrix"
    version = 1
    types = (la.SparseMatrixd, la.SparseMatrixSymmetricd)

    def dump(self, obj: Any) -> Any:
        if tuple(obj.entrysizes) != (1, 1):  # not for SparseMatrixd; kept as a guard
            raise UnsupportedTypeError(f"a sparse matrix with {tuple(obj.entrysizes)} block entries cannot be saved")
        values, indices, indptr = obj.CSR()
        return {
            "shape": [int(obj.height), int(obj.width)],
            "indptr": np.asarray(indptr).astype(np.int64),
            "indices": np.array(indices, dtype=np.int32),
            "data": np.array(values, dtype=np.float64),
            "symmetric": isinstance(obj, la.SparseMatrixSymmetricd),
        }

    def load(self, state: Any) -> Any:
        what = self.name
        state = require_dict(state, what)
        height, width, rows, columns = checked_csr(state, what)
        data, symmetric = state.get("data"), state.get("symmetric", False)
        if not (isinstance(data, np.ndarray) and data.ndim == 1 and data.dtype.kind in "fi"):
            got = f"a {data.dtype} array of {data.ndim} dimensions" if isinstance(data, np.ndarray) else shown(data)
            raise StateError(f"{what}: data must be a 1-dimensional array of real numbers, not {got}")
        if len(data) != len(columns):
            raise StateError(f"{what}: {len(columns)} column numbers but {len(data)} values")
        if type(symmetric) is not bool:
            raise StateError(f"{what}: symmetric must be true or false, not {shown(symmetric)}")
        values = data.astype(np.float64)
        if symmetric:
            if height != width:
                raise StateError(f"{what}: a symmetric matrix must be square, not {height} x {width}")
            if bool((columns > rows).any()):
                raise StateError(f"{what}: a symmetric matrix stores only its lower triangle (column <= row)")
            strict = columns < rows
            rows, columns = np.concatenate([rows, columns[strict]]), np.concatenate([columns, rows[strict]])
            values = np.concatenate([values, values[strict]])
        matrix = la.SparseMatrixd.CreateFromCOO(rows, columns, values, height, width)
        if matrix.nze != len(values):  # cannot happen after the checks above: the pattern is NGSolve's own
            raise StateError(f"{what}: NGSolve built {matrix.nze} entries from {len(values)}")
        return matrix


class SparseCholeskySerializer(Serializer):
    """``SparseCholesky_d``/``_c`` (``mat.Inverse(freedofs, inverse="sparsecholesky")``): NGSolve's
    archive of the factorization, as native pickle stores it (trusted only, version-bound)."""

    name = "ngsolve.SparseCholesky"
    version = 1
    types = (la.SparseCholesky_d, la.SparseCholesky_c)
    trusted_only = True
    trusted_reason = (
        "it holds NGSolve's own archive bytes of a sparse Cholesky factorization, which NGSolve's archive reader "
        "trusts (crafted bytes can crash the process); NGSolve gives no way back to the factored matrix and free "
        "dofs to factor again from"
    )

    def dump(self, obj: Any) -> Any:
        state = archive_state(obj, f"the sparse Cholesky factorization {operator_info(obj)!r}")
        if state["children"]:
            raise UnsupportedTypeError(
                "this NGSolve archives a sparse Cholesky factorization with Python objects ngser does not know; "
                "save the matrix and factor it again after loading"
            )
        return {
            "scalar": "complex128" if isinstance(obj, la.SparseCholesky_c) else "float64",
            "shape": [int(obj.height), int(obj.width)],
            "data": state["data"],
            "version_stored": state["version_stored"],
            "version_needed": state["version_needed"],
        }

    def load(self, state: Any) -> Any:
        what = self.name
        state = require_dict(state, what)
        scalar = state.get("scalar")
        if type(scalar) is not str or scalar not in _SCALAR_CLASSES:
            raise StateError(f"{what}: scalar must be one of {', '.join(_SCALAR_CLASSES)}, not {shown(scalar)}")
        height, width = _shape(state.get("shape"), what)
        check_bytes(state, what)
        inverse = restore_archive(_SCALAR_CLASSES[scalar], {**state, "children": []}, what)
        if (int(inverse.height), int(inverse.width)) != (height, width):
            raise StateError(
                f"{what}: NGSolve's bytes hold a {inverse.height} x {inverse.width} factorization, the state says "
                f"{height} x {width}"
            )
        return inverse


def _refusal(obj: Any) -> str:
    """Why ``obj`` (a BaseMatrix no other serializer handles) cannot be saved, and what to do instead."""
    kind, info = type(obj).__name__, operator_info(obj)
    if isinstance(obj, la.BaseSparseMatrix):
        if getattr(obj, "is_complex", False):
            why = (
                "complex sparse matrices cannot be rebuilt: NGSolve's Python API has no constructor for them "
                "(CreateFromCOO of a complex matrix takes an Array of complex numbers Python cannot make)"
            )
        elif "Mat" in kind:
            why = (
                "sparse matrices with block entries (spaces with dim=2 or 3, such as H1(mesh, dim=2)) cannot be "
                "rebuilt: NGSolve's Python API has no constructor for them; VectorH1 or H1(mesh)**2 assemble "
                "scalar matrices, which ngser saves"
            )
        else:
            why = "only double-precision scalar sparse matrices (SparseMatrixd) can be rebuilt from Python"
        return f"the sparse matrix {kind} ({info}) cannot be saved: {why}; save its arrays from mat.CSR() instead"
    if "SparseBlockMatrix" in info:
        return (
            f"the sparse matrix {info!r} (block entries of size 4 or more) cannot be saved: NGSolve's Python API "
            "has no constructor for it"
        )
    if "inverse" in info.lower() or "umfpack" in info.lower() or "pardiso" in info.lower():
        return (
            f"the inverse {info!r} cannot be saved: NGSolve cannot store this solver's factorization and gives no "
            "way back to its matrix; save the matrix and its free dofs and call Inverse again after loading "
            "(sparsecholesky inverses can be saved, trusted only)"
        )
    return (
        f"the operator {kind} ({info}) cannot be saved: ngser stores SparseMatrixd, SparseCholesky, IdentityMatrix, "
        "Projector and sums, differences, products, transposes and real multiples of these; NGSolve offers no way "
        "to read this one's parts back"
    )


class UnsupportedMatrixSerializer(Serializer):
    """Every other ``BaseMatrix``: saving raises an :class:`~ngser.UnsupportedTypeError` saying why.
    Registered after every other matrix serializer (subclass matching is ordered)."""

    name = "ngsolve.BaseMatrix"
    version = 1
    types = (la.BaseMatrix,)
    subclasses = True

    def dump(self, obj: Any) -> Any:
        raise UnsupportedTypeError(_refusal(obj))

    def load(self, state: Any) -> Any:
        raise StateError("ngsolve.BaseMatrix nodes are never written by ngser; the file is damaged or hand-made")


def linalg_serializers() -> list[Serializer]:
    """Fresh instances of the matrix serializers, the :class:`UnsupportedMatrixSerializer` fallback last."""
    from .linalg_ops import operator_serializers

    return [
        SparseMatrixSerializer(),
        SparseCholeskySerializer(),
        *operator_serializers(),
        UnsupportedMatrixSerializer(),
    ]
