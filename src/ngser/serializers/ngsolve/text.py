"""CoefficientFunction trees as text, read from a file's graph without NGSolve.

``ngser info`` shows each stored tree the way it would be typed (``x*u + sin(3*y)``) instead of
its nodes one by one. This module reads ``ngsolve.CF`` states only; it imports no NGSolve, so
``ngser info`` works on a machine without it. Texts are cut at :data:`MAX_TEXT` characters, so
a huge tree costs time linear in its nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...graph import ObjectNode, Ref

__all__ = ["MAX_TEXT", "TREE_NODE", "expression_texts"]

#: The type name of a structured CoefficientFunction node.
TREE_NODE = "ngsolve.CF"
#: The longest text shown for one node.
MAX_TEXT = 160

_ATOM, _POWER, _PRODUCT, _SUM = 4, 3, 2, 1
_AXES = ("x", "y", "z")
_FUNCTIONS = {"Norm", "Det", "Inv", "Sym", "Skew", "Trace", "Cross", "InnerProduct", "IfPos"}
_PRODUCTS = {"matmul", "scalvec"}


def _number(value: Any) -> str:
    if isinstance(value, complex):
        return f"({value.real:.6g}{value.imag:+.6g}j)"
    if isinstance(value, float):
        text = repr(value)
        return text if len(text) <= 10 else f"{value:.6g}"
    return str(value)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


class _Texts:
    def __init__(self, nodes: dict[int, ObjectNode]) -> None:
        self.nodes = nodes
        self.done: dict[int, tuple[str, int]] = {}

    def of(self, value: Any) -> tuple[str, int]:
        """Text and precedence of an argument: a tree node, another object or a literal."""
        if not isinstance(value, Ref):
            return ("None" if value is None else _number(value)), _ATOM
        found = self.done.get(value.id)
        if found is not None:
            return found
        node = self.nodes.get(value.id)
        if node is None:
            return f"#{value.id}", _ATOM
        state = node.state if isinstance(node.state, dict) else {}
        if node.name == "ngsolve.GridFunction" and isinstance(state.get("name"), str):
            return _cut(state["name"]), _ATOM
        if node.name == "ngsolve.Parameter":
            return f"Parameter({_number(state.get('value'))})", _ATOM
        if node.name == "ngsolve.CoefficientFunction":
            return f"<NGSolve bytes #{node.id}>", _ATOM
        return f"<{node.name} #{node.id}>", _ATOM

    def wrap(self, value: Any, below: int) -> str:
        text, prec = self.of(value)
        return f"({text})" if prec < below else text

    def node(self, state: dict[str, Any]) -> tuple[str, int]:
        op, args = state.get("op"), state.get("args") or []
        arg = [self.of(a)[0] for a in args]
        if op == "coordinate":
            axis = state.get("axis")
            return (_AXES[axis] if axis in (0, 1, 2) else "?"), _ATOM
        if op == "constant":
            return _number(state.get("value")), _ATOM
        if op == "zero":
            return "0", _ATOM
        if op == "scale" and args:
            return f"{_number(state.get('factor'))}*{self.wrap(args[0], _PRODUCT)}", _PRODUCT
        if op == "unary" and args:
            return f"{state.get('function')}({arg[0]})", _ATOM
        if op == "binary" and len(args) == 2:
            return self.binary(str(state.get("operator")), args)
        if op == "reshape" and args:
            return self.of(args[0])
        if op == "vector":
            return f"CF(({', '.join(arg)}))", _ATOM
        if op == "component" and args:
            return f"{self.wrap(args[0], _ATOM)}[{state.get('index')}]", _ATOM
        if op == "regions":
            kind = {"VOL": "MaterialCF", "BND": "BoundaryCF"}.get(str(state.get("region")), "CF")
            return f"{kind}([{', '.join(arg)}])", _ATOM
        if op in _FUNCTIONS:
            return f"{op}({', '.join(arg)})", _ATOM
        if op in ("trans", "real", "imag") and args:
            return f"{self.wrap(args[0], _ATOM)}.{op}", _ATOM
        if op in _PRODUCTS and len(args) == 2:
            return f"{self.wrap(args[0], _PRODUCT)}*{self.wrap(args[1], _POWER)}", _PRODUCT
        if op == "Id":
            return f"Id({state.get('size')})", _ATOM
        if op == "Compile" and args:
            return f"({arg[0]}).Compile()", _ATOM
        if op == "gridfunction":
            return self.gridfunction(state), _ATOM
        return f"{op}({', '.join(arg)})", _ATOM

    def binary(self, operator: str, args: list[Any]) -> tuple[str, int]:
        if operator in ("+", "-"):
            right = self.wrap(args[1], _PRODUCT if operator == "-" else _SUM)
            return f"{self.wrap(args[0], _SUM)} {operator} {right}", _SUM
        if operator in ("*", "/"):
            right = self.wrap(args[1], _POWER if operator == "/" else _PRODUCT)
            return f"{self.wrap(args[0], _PRODUCT)}{operator}{right}", _PRODUCT
        if operator == "pow":
            return f"{self.wrap(args[0], _ATOM)}**{self.wrap(args[1], _ATOM)}", _POWER
        return f"{operator}({self.of(args[0])[0]}, {self.of(args[1])[0]})", _ATOM

    def gridfunction(self, state: dict[str, Any]) -> str:
        gf, operator = self.of(state.get("gridfunction"))[0], state.get("operator")
        if operator == "deriv":
            return f"grad({gf})"
        if operator == "trace":
            return f"{gf}.Trace()"
        return f"{gf}.Operator({operator!r})"


def expression_texts(nodes: Iterable[ObjectNode]) -> dict[int, str]:
    """The text of every ``ngsolve.CF`` node of a graph, by node id.

    ``nodes`` in the file's order (a node's arguments come before it, as every ngser writer
    stores them); an argument met later shows as its id.
    """
    table = {node.id: node for node in nodes}
    texts = _Texts(table)
    for node in table.values():
        if node.name == TREE_NODE and isinstance(node.state, dict):
            text, prec = texts.node(node.state)
            texts.done[node.id] = (_cut(text), prec)
    return {nid: text for nid, (text, _) in texts.done.items()}
