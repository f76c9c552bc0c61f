"""The operations of a structured CoefficientFunction node: how each is read and rebuilt.

Every operation ngser stores structurally is one :class:`Op`: the C++ classes it is read
from (when saving), the parameters it keeps besides its arguments, and how NGSolve's Python API
rebuilds it (when loading). Loading only ever calls the ``build`` functions of this table with
arguments that :mod:`.expressions` has checked; nothing from a file is evaluated or passed to
NGSolve's archive reader.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ngsolve

from ...errors import StateError, shown

__all__ = ["BINARY", "OPS", "SIMPLE_CLASSES", "SIMPLE_PREFIXES", "UNARY", "Op", "dims_of"]

Build = Callable[[list[Any], dict[str, Any]], Any]


def dims_of(cf: Any) -> tuple[int, ...]:
    """A node's shape as a tuple: ``()`` for scalars (NGSolve gives some scalars the shape ``(1,)``)."""
    shape = tuple(int(d) for d in cf.dims)
    return () if shape == (1,) else shape


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


@dataclass(frozen=True)
class Op:
    """One structured operation: ``arity`` arguments (None: any number), the parameter keys its
    state holds besides ``op`` and ``args``, and ``build(args, params) -> CoefficientFunction``."""

    name: str
    arity: int | None
    params: tuple[str, ...]
    build: Build


#: Unary functions by the name NGSolve records in ``cl_UnaryOpCF`` (``"sin"``) and the Python
#: function that builds them; only the names this NGSolve exports.
UNARY: dict[str, Callable[[Any], Any]] = {
    name: getattr(ngsolve, py)
    for name, py in {
        "sin": "sin",
        "cos": "cos",
        "tan": "tan",
        "sinh": "sinh",
        "cosh": "cosh",
        "asinh": "asinh",
        "acosh": "acosh",
        "exp": "exp",
        "log": "log",
        "atan": "atan",
        "acos": "acos",
        "asin": "asin",
        "sqrt": "sqrt",
        "erf": "erf",
        "floor": "floor",
        "ceil": "ceil",
        "conj": "Conj",
    }.items()
    if hasattr(ngsolve, py)
}

#: Binary operators by the name NGSolve records in ``cl_BinaryOpCF``.
BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "pow": lambda a, b: ngsolve.pow(a, b),
    "atan2": lambda a, b: ngsolve.atan2(a, b),
}


def _require_shape(value: Any, what: str) -> tuple[int, ...]:
    if type(value) is not list or len(value) > 2 or not all(type(d) is int and 1 <= d <= 1_000_000 for d in value):
        raise StateError(f"{what} must be a list of at most two positive integers, not {shown(value)}")
    return tuple(value)


def _scalar(args: list[Any], what: str) -> None:
    for arg in args:
        if dims_of(arg):
            raise StateError(f"{what} takes scalar arguments, got one of shape {dims_of(arg)}")


def _square(arg: Any, what: str) -> int:
    shape = dims_of(arg)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise StateError(f"{what} takes a square matrix, got shape {shape}")
    return shape[0]


def _matrix(arg: Any, what: str) -> tuple[int, ...]:
    shape = dims_of(arg)
    if len(shape) != 2:
        raise StateError(f"{what} takes a matrix, got shape {shape}")
    return shape


def _same_shape(args: list[Any], what: str) -> None:
    shapes = {dims_of(a) for a in args}
    if len(shapes) > 1:
        raise StateError(f"{what} takes arguments of one shape, got {sorted(shapes)}")


def _coordinate(args: list[Any], p: dict[str, Any]) -> Any:
    axis = p["axis"]
    if type(axis) is not int or not 0 <= axis <= 2:
        raise StateError(f"a coordinate's axis must be 0, 1 or 2, not {shown(axis)}")
    return (ngsolve.x, ngsolve.y, ngsolve.z)[axis]


def _constant(args: list[Any], p: dict[str, Any]) -> Any:
    value = p["value"]
    if type(value) not in (float, complex):
        raise StateError(f"a constant's value must be a float or complex, not {shown(value)}")
    return ngsolve.CF(value)


def _zero(args: list[Any], p: dict[str, Any]) -> Any:
    shape = _require_shape(p["shape"], "the shape of a zero")
    return ngsolve.CF(0.0) if not shape else ngsolve.CF((0.0,) * _size(shape), dims=shape)


def _scale(args: list[Any], p: dict[str, Any]) -> Any:
    factor = p["factor"]
    if type(factor) not in (float, complex):
        raise StateError(f"a scaling's factor must be a float or complex, not {shown(factor)}")
    return factor * args[0]


def _unary(args: list[Any], p: dict[str, Any]) -> Any:
    function = UNARY.get(p["function"]) if type(p["function"]) is str else None
    if function is None:
        raise StateError(f"unknown unary function {shown(p['function'])}; known: {', '.join(sorted(UNARY))}")
    return function(args[0])


def _binary(args: list[Any], p: dict[str, Any]) -> Any:
    operator = BINARY.get(p["operator"]) if type(p["operator"]) is str else None
    if operator is None:
        raise StateError(f"unknown binary operator {shown(p['operator'])}; known: {', '.join(sorted(BINARY))}")
    if p["operator"] in ("+", "-"):
        _same_shape(args, f"the operator {p['operator']}")
    else:
        _scalar(args, f"the operator {p['operator']}")
    return operator(args[0], args[1])


def _reshape(args: list[Any], p: dict[str, Any]) -> Any:
    shape = _require_shape(p["shape"], "the shape of a reshape")
    if _size(shape) != _size(dims_of(args[0])):
        raise StateError(f"cannot reshape a node of shape {dims_of(args[0])} to {shape}")
    return args[0] if shape == dims_of(args[0]) else args[0].Reshape(shape)


def _vector(args: list[Any], p: dict[str, Any]) -> Any:
    shape = _require_shape(p["shape"], "the shape of a vector")
    if not args or sum(_size(dims_of(a)) for a in args) != _size(shape):
        raise StateError(f"the parts of a vector of shape {shape} have {sum(_size(dims_of(a)) for a in args)} values")
    return ngsolve.CF(tuple(args), dims=shape)


def _component(args: list[Any], p: dict[str, Any]) -> Any:
    shape = dims_of(args[0])
    index = p["index"]
    if type(index) is not int or not 0 <= index < _size(shape) or not shape:
        raise StateError(f"component {shown(index)} does not exist in a node of shape {shape}")
    return args[0][index] if len(shape) == 1 else args[0][divmod(index, shape[1])]


def _ifpos(args: list[Any], p: dict[str, Any]) -> Any:
    _scalar(args[:1], "the condition of IfPos")
    _same_shape(args[1:], "IfPos")
    return ngsolve.IfPos(*args)


def _regions(args: list[Any], p: dict[str, Any]) -> Any:
    from ._regions import region_wise

    return region_wise(args, p["region"])


def _inner(args: list[Any], p: dict[str, Any]) -> Any:
    _same_shape(args, "InnerProduct")
    return ngsolve.InnerProduct(args[0], args[1])


def _cross(args: list[Any], p: dict[str, Any]) -> Any:
    if dims_of(args[0]) != (3,) or dims_of(args[1]) != (3,):
        raise StateError("Cross takes two vectors of length 3")
    return ngsolve.Cross(args[0], args[1])


def _matmul(args: list[Any], p: dict[str, Any]) -> Any:
    a, b = (dims_of(arg) for arg in args)
    if not (len(a) == 2 and len(b) in (1, 2) and a[1] == b[0]):
        raise StateError(f"cannot multiply a matrix of shape {a} with a node of shape {b}")
    return args[0] * args[1]


def _scalvec(args: list[Any], p: dict[str, Any]) -> Any:
    _scalar(args[:1], "a scalar times a vector")
    return args[0] * args[1]


def _transpose(args: list[Any], p: dict[str, Any]) -> Any:
    _matrix(args[0], "trans")
    return args[0].trans


def _identity(args: list[Any], p: dict[str, Any]) -> Any:
    size = p["size"]
    if type(size) is not int or not 1 <= size <= 1000:
        raise StateError(f"the size of an identity matrix must be from 1 to 1000, not {shown(size)}")
    return ngsolve.Id(size)


def _gridfunction(args: list[Any], p: dict[str, Any]) -> Any:
    gf, operator = p["gridfunction"], p["operator"]
    if not isinstance(gf, ngsolve.GridFunction):
        raise StateError(f"a GridFunction operator must refer to a GridFunction, not {type(gf).__name__}")
    if operator == "deriv":
        return gf.Deriv()
    if operator == "trace":
        return gf.Trace()
    if type(operator) is not str or operator not in list(gf.Operators()):
        raise StateError(f"the GridFunction has no operator {shown(operator)}; it has {', '.join(gf.Operators())}")
    return gf.Operator(operator)


def _unchecked(function: Callable[..., Any], check: Callable[[Any, str], Any] | None = None) -> Build:
    def build(args: list[Any], p: dict[str, Any]) -> Any:
        if check is not None:
            check(args[0], getattr(function, "__name__", "the operation"))
        return function(*args)

    return build


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("coordinate", 0, ("axis",), _coordinate),
        Op("constant", 0, ("value",), _constant),
        Op("zero", 0, ("shape",), _zero),
        Op("scale", 1, ("factor",), _scale),
        Op("unary", 1, ("function",), _unary),
        Op("binary", 2, ("operator",), _binary),
        Op("reshape", 1, ("shape",), _reshape),
        Op("vector", None, ("shape",), _vector),
        Op("component", 1, ("index",), _component),
        Op("IfPos", 3, (), _ifpos),
        Op("regions", None, ("region",), _regions),
        Op("Norm", 1, (), _unchecked(ngsolve.Norm)),
        Op("trans", 1, (), _transpose),
        Op("real", 1, (), lambda a, p: a[0].real),
        Op("imag", 1, (), lambda a, p: a[0].imag),
        Op("InnerProduct", 2, (), _inner),
        Op("Cross", 2, (), _cross),
        Op("Det", 1, (), _unchecked(ngsolve.Det, _square)),
        Op("Inv", 1, (), _unchecked(ngsolve.Inv, _square)),
        Op("Sym", 1, (), _unchecked(ngsolve.Sym, _square)),
        Op("Skew", 1, (), _unchecked(ngsolve.Skew, _square)),
        Op("Trace", 1, (), _unchecked(ngsolve.Trace, _square)),
        Op("matmul", 2, (), _matmul),
        Op("scalvec", 2, (), _scalvec),
        Op("Id", 0, ("size",), _identity),
        Op("Compile", 1, (), lambda a, p: a[0].Compile()),
        Op("gridfunction", 0, ("gridfunction", "operator"), _gridfunction),
    )
}

#: Classes read without parameters: C++ class -> op name.
SIMPLE_CLASSES = {
    "ngfem::IfPosCoefficientFunction": "IfPos",
    "ngfem::NormCoefficientFunction": "Norm",
    "ngfem::NormCoefficientFunctionC": "Norm",
    "ngfem::TransposeCoefficientFunction": "trans",
    "ngfem::RealCF": "real",
    "ngfem::ImagCF": "imag",
    "ngfem::CrossProductCoefficientFunction": "Cross",
    "ngfem::SymmetricCoefficientFunction": "Sym",
    "ngfem::SkewCoefficientFunction": "Skew",
    "ngfem::TraceCoefficientFunction": "Trace",
    "ngfem::MultMatVecCoefficientFunction": "matmul",
    "ngfem::MultMatMatCoefficientFunction": "matmul",
    "ngfem::MultScalVecCoefficientFunction": "scalvec",
    "ngfem::CompiledCoefficientFunction": "Compile",
    "ngfem::MultVecVecCoefficientFunction": "InnerProduct",
}
#: Class name prefixes (templates over a size) read without parameters.
SIMPLE_PREFIXES = {
    "ngfem::T_MultVecVecCoefficientFunction<": "InnerProduct",
    "ngfem::DeterminantCoefficientFunction<": "Det",
    "ngfem::InverseCoefficientFunction<": "Inv",
}
