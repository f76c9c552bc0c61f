"""Reading the structure of a live CoefficientFunction node, when saving.

:func:`structure` names a node's operation and parameters from what NGSolve exposes: the C++
class and the fields at the start or end of its archive (:mod:`._archive_read`: the constant of
a ``ConstantCoefficientFunction``, the operator name of a ``cl_BinaryOpCF``), its children and
shape, and for GridFunction operators (``grad(gfu)``, ``gfu.Trace()``) NGSolve's own reduce
state ``(gridfunction, from_derivative, operator name)``. It returns None for a node it cannot
read exactly, which is then stored as NGSolve's archive bytes (trusted-only), never guessed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import ngsolve.comp as comp

from ...errors import UnsupportedTypeError
from ._archive_read import ArchiveFields, archive_fields
from ._expression_ops import BINARY, SIMPLE_CLASSES, SIMPLE_PREFIXES, UNARY, dims_of
from ._regions import MAX_REGIONS

__all__ = ["describe", "structure"]

_HINT = (
    "NGSolve has no stored form for it (trial and test functions, specialcf.normal, tangential, mesh_size, "
    "JacobianMatrix and other geometry-bound nodes). Save the GridFunctions and Parameters the expression is built "
    "from and build the expression again after loading."
)
_REGION_NAMES = {None: None, 0: "VOL", 1: "BND"}


def describe(cf: Any) -> str:
    """A short name of a CoefficientFunction node for messages: class and first line of its text."""
    try:
        text = str(cf).strip().splitlines()[0].strip()
    except Exception:
        text = ""
    if len(text) > 80:
        text = text[:77] + "..."
    kind = type(cf).__name__
    return f"{kind} node {text!r}" if text else f"{kind} node"


def _gridfunction_operator(cf: Any) -> dict[str, Any]:
    gf, from_derivative, operator = cf.__reduce_ex__(2)[2]
    if gf is None:
        # NGSolve 6.2.2501 keeps gfu.Trace() without the GridFunction it evaluates: a rebuilt
        # node would dereference nothing and crash the process when evaluated.
        raise UnsupportedTypeError(
            f"cannot save the CoefficientFunction {describe(cf)}: this NGSolve stores it without the GridFunction it "
            "evaluates, and the rebuilt node would crash when evaluated. Save the GridFunction and build the "
            "expression (e.g. gfu.Trace()) again after loading, or use a newer NGSolve"
        )
    name = str(operator) if operator else ("deriv" if from_derivative else "trace")
    return {"op": "gridfunction", "gridfunction": gf, "operator": name}


def _unary(cf: Any, fields: ArchiveFields, args: list[Any]) -> dict[str, Any] | None:
    name = fields.leading_string()
    if name == " ":  # GenericIdentity: a pass-through that may change the shape (Reshape)
        return {"op": "reshape", "args": args, "shape": list(dims_of(cf))}
    if name not in UNARY:  # applied component by component to vectors and matrices
        return None
    return {"op": "unary", "args": args, "function": name}


def _binary(cf: Any, fields: ArchiveFields, args: list[Any]) -> dict[str, Any] | None:
    name = fields.leading_string()
    if name not in BINARY:
        return None
    shapes = [dims_of(a) for a in args]
    if name in ("+", "-") and shapes[0] != shapes[1]:
        return None
    if name not in ("+", "-") and any(shapes):  # e.g. a component-wise product of vectors
        return None
    return {"op": "binary", "args": args, "operator": name}


def _read(cf: Any, fields: ArchiveFields, args: list[Any]) -> dict[str, Any] | None:
    cls, rest = fields.cls, fields.rest
    if cls == "ngfem::CoordCoefficientFunction":
        axis = fields.last_int()
        return {"op": "coordinate", "axis": axis} if axis in (0, 1, 2) and not args else None
    if cls == "ngfem::ConstantCoefficientFunction" and len(rest) == 8:
        return {"op": "constant", "value": fields.first_double()}
    if cls == "ngfem::ConstantCoefficientFunctionC" and len(rest) >= 16:
        return {"op": "constant", "value": fields.first_complex()}
    if cls == "ngfem::ZeroCoefficientFunction":
        return {"op": "zero", "shape": list(dims_of(cf))} if len(dims_of(cf)) <= 2 else None
    if cls == "ngfem::ScaleCoefficientFunction" and len(args) == 1:
        return {"op": "scale", "args": args, "factor": fields.last_double()}
    if cls == "ngfem::ScaleCoefficientFunctionC" and len(args) == 1:
        return {"op": "scale", "args": args, "factor": fields.last_complex()}
    if cls.startswith("ngfem::cl_UnaryOpCF<") and len(args) == 1:
        return _unary(cf, fields, args)
    if cls.startswith("ngfem::cl_BinaryOpCF<") and len(args) == 2:
        return _binary(cf, fields, args)
    if cls == "ngfem::VectorialCoefficientFunction" and args:
        return {"op": "vector", "args": args, "shape": list(dims_of(cf))} if len(dims_of(cf)) <= 2 else None
    if cls == "ngfem::ComponentCoefficientFunction" and len(args) == 1:
        index, shape = fields.last_int(), dims_of(args[0])
        if index is None or len(shape) not in (1, 2) or not 0 <= index < fields_size(shape):
            return None
        return {"op": "component", "args": args, "index": index}
    if cls == "ngfem::IdentityCoefficientFunction" and not args and len(dims_of(cf)) == 2:
        return {"op": "Id", "size": dims_of(cf)[0]}
    if cls == "ngfem::DomainWiseCoefficientFunction" and 0 < len(args) <= MAX_REGIONS:
        found = fields.region_kind(len(args))
        if found is None or found[1] not in _REGION_NAMES:
            return None
        return {"op": "regions", "args": args, "region": _REGION_NAMES[found[1]]}
    if cls.startswith(("ngfem::T_MultVecVecSameCoefficientFunction<", "ngfem::MultVecVecSameCoefficientFunction")):
        return {"op": "InnerProduct", "args": args * 2} if len(args) == 1 else None  # InnerProduct(a, a)
    op = SIMPLE_CLASSES.get(cls) or next((o for p, o in SIMPLE_PREFIXES.items() if cls.startswith(p)), None)
    return {"op": op, "args": args} if op is not None else None


def fields_size(shape: tuple[int, ...]) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def _family(cls: str) -> str:
    """A class name with its size template argument dropped (``T_MultVecVecCoefficientFunction<N>``)."""
    return re.sub(r"<\d+>$", "<N>", cls)


@functools.cache
def child_orders() -> dict[str, bool]:
    """For each class with several children: whether ``cf.data["childs"]`` lists them in reverse.

    NGSolve 6.2.2501 lists the operands of binary operators and ``IfPos`` last to first
    (6.2.2608 first to last). Learned once, from probe expressions whose children are known
    objects (NGSolve hands out the same Python wrapper for a C++ node while one is alive); a
    class missing here is stored as NGSolve's bytes rather than with a guessed order.
    """
    import ngsolve
    from ngsolve import CF, x, y, z

    v, w = CF((x, y)), CF((y, x))
    m, n = CF((x, y, 1, 2), dims=(2, 2)), CF((y, x, 2, 1), dims=(2, 2))
    a, b = CF((x, y, z)), CF((y, z, x))
    probes: list[tuple[Callable[[], Any], list[Any]]] = [
        (lambda: x + y, [x, y]),
        (lambda: x - y, [x, y]),
        (lambda: x * y, [x, y]),
        (lambda: x / y, [x, y]),
        (lambda: ngsolve.pow(x, y), [x, y]),
        (lambda: ngsolve.atan2(x, y), [x, y]),
        (lambda: ngsolve.IfPos(x, y, z), [x, y, z]),
        (lambda: CF((x, y, z)).data["childs"][0], [x, y, z]),
        (lambda: ngsolve.InnerProduct(v, w), [v, w]),
        (lambda: m * v, [m, v]),
        (lambda: m * n, [m, n]),
        (lambda: x * v, [x, v]),
        (lambda: ngsolve.Cross(a, b), [a, b]),
        (lambda: CF([x, y]).data["childs"][0], [x, y]),
    ]
    orders: dict[str, bool] = {}
    for make, expected in probes:
        try:
            probe = make()
            fields = archive_fields(bytes(probe.data["data"]))
            childs = list(probe.data["childs"])
        except Exception:  # a node this NGSolve cannot archive
            continue
        if fields is None or len(childs) != len(expected):
            continue
        if all(c is e for c, e in zip(childs, expected)):
            orders[_family(fields.cls)] = False
        elif all(c is e for c, e in zip(childs, reversed(expected))):
            orders[_family(fields.cls)] = True
    return orders


def structure(cf: Any) -> dict[str, Any] | None:
    """``{"op", "args", ...}`` of a CoefficientFunction node, or None when it has no structured form.

    Raises :class:`~ngser.UnsupportedTypeError` for nodes NGSolve cannot store at all.
    """
    if isinstance(cf, comp.GridFunctionCoefficientFunction):
        return _gridfunction_operator(cf)
    try:
        data = cf.data
    except Exception as exc:  # NGSolve raises NgException for nodes it cannot archive
        raise UnsupportedTypeError(f"cannot save the CoefficientFunction {describe(cf)}: {exc}. {_HINT}") from exc
    fields = archive_fields(bytes(data["data"]))
    if fields is None:
        return None
    args = list(data["childs"])
    if any(arg is None for arg in args) and fields.cls != "ngfem::DomainWiseCoefficientFunction":
        return None
    if len(args) > 1:
        reverse = child_orders().get(_family(fields.cls))
        if reverse is None:
            return None
        if reverse:
            args.reverse()
    return _read(cf, fields, args)
