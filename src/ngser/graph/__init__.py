"""The graph core: the value vocabulary, the object graph, and the walks between objects and graphs.

Public here: the vocabulary (:class:`Ref`, :class:`PairsDict`, :class:`Kind`, :func:`kind_of`,
:func:`children`, :func:`items`, :func:`iter_refs`, :func:`values_equal`) and the graph
(:class:`Graph`, :class:`ObjectNode`, :class:`ArrayNode`, :class:`RawNode`). The encoder
(objects -> graph) and decoder (graph -> objects) are private modules of this package; use
:func:`ngser.encode` and :func:`ngser.decode`.

>>> graph = ngser.encode({"a": np.arange(3)})
>>> graph.root, graph.arrays[0].data
({'a': Ref(0)}, array([0, 1, 2]))
"""

from ._model import FORMAT_VERSION, MAX_DEPTH, ArrayNode, Graph, NodeTuple, ObjectNode, RawNode, format_of, make_node
from ._tables import COLUMN_KINDS, Column, Table, make_column
from ._values import (
    ATOMIC_TYPES,
    CONTAINER_TYPES,
    KINDS,
    MAX_SAME_HASH,
    PLAIN_CONTAINERS,
    Kind,
    PairsDict,
    Ref,
    check_hash_spread,
    children,
    items,
    iter_refs,
    kind_of,
    values_equal,
)

__all__ = [
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "ArrayNode",
    "Graph",
    "NodeTuple",
    "ObjectNode",
    "RawNode",
    "make_node",
    "format_of",
    "COLUMN_KINDS",
    "Column",
    "Table",
    "make_column",
    "ATOMIC_TYPES",
    "CONTAINER_TYPES",
    "KINDS",
    "MAX_SAME_HASH",
    "check_hash_spread",
    "PLAIN_CONTAINERS",
    "Kind",
    "PairsDict",
    "Ref",
    "children",
    "items",
    "iter_refs",
    "kind_of",
    "values_equal",
]
