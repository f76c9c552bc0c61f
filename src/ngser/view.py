"""Read-only views of files: list what is inside, load one object, read arrays lazily.

>>> with ngser.open("result.h5") as view:
...     view.objects()                      # [(id, type name, version), ...]
...     view.arrays()                       # [ArrayInfo(id, label, dtype, shape, nbytes), ...]
...     u = view.load("u")                  # one object, by path from the root (or by node id)
...     points = view.array("netgen.Mesh/points")   # one array, without building any object

Arrays are read lazily where the layout allows it: HDF5 datasets and msgpack array payloads
are read from the file only when asked for. Pickle files are read as a whole (pickle has no
index). An array's checksum is verified when it is read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from .api import PathLike, decode, read_graph_lazily, sniff_file
from .backends import DEFAULT_LIMITS, Limits
from .errors import NotFoundError
from .graph import ArrayNode, Graph, ObjectNode, PairsDict, Ref, iter_refs
from .graph._decoder import Unknown
from .serializers import Registry

__all__ = ["open", "FileView", "ArrayInfo"]


@dataclass(frozen=True)
class ArrayInfo:
    """What a file says about one array, without reading it."""

    id: int
    label: str | None
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    nbytes: int


class FileView:
    """A read-only view of an ngser file; make one with :func:`ngser.open`."""

    def __init__(self, path: PathLike, *, trusted: bool = False, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = os.fspath(path)
        self.trusted = trusted
        self.format = sniff_file(self.path)
        self.graph, closer = read_graph_lazily(self.path, limits=limits)
        self._closer: Callable[[], None] | None = closer
        self._nodes = {node.id: node for node in self.graph.nodes}
        self._arrays = {array.id: array for array in self.graph.arrays}

    # -- what is inside ---------------------------------------------------------------
    @property
    def writers(self) -> dict[str, int]:
        """Type names in the file and the serializer versions that wrote them."""
        return dict(self.graph.writers)

    @property
    def meta(self) -> dict[str, Any]:
        """Header fields: the writing ngser version and the format version."""
        return dict(self.graph.meta)

    def objects(self) -> list[tuple[int, str, int]]:
        """``(id, type name, version)`` of every object node, in table order."""
        return [(node.id, node.name, node.version) for node in self.graph.nodes]

    def arrays(self) -> list[ArrayInfo]:
        """Every array, described without reading it."""
        return [ArrayInfo(a.id, a.label, a.dtype, a.shape, a.nbytes) for a in self.graph.arrays]

    # -- reading ------------------------------------------------------------------------
    def array(self, key: int | str) -> np.ndarray:
        """Read one array, by node id or by label (``"netgen.Mesh/points"``)."""
        node = self._array_node(key)
        data = node.load()
        return data if isinstance(data, np.ndarray) and not isinstance(data, np.memmap) else np.array(data)

    def load(
        self, key: int | str | None = None, *, unknown: Unknown = "error", registry: Registry | None = None
    ) -> Any:
        """Build the root (``key=None``), the object with node id ``key``, or the value at the
        path ``key`` from the root (``"u"``, ``"results/0"``): only what it refers to is built."""
        target = self._target(key)
        graph = _subgraph(self.graph, target)
        return decode(graph, trusted=self.trusted, unknown=unknown, registry=registry, source=self.path)

    def _array_node(self, key: int | str) -> ArrayNode:
        if isinstance(key, int) and key in self._arrays:
            return self._arrays[key]
        matches = [a for a in self.graph.arrays if a.label == key or (a.label or "").endswith(f"/{key}")]
        exact = [a for a in matches if a.label == key]
        found = exact or matches
        if len(found) != 1:
            labels = ", ".join(sorted({str(a.label) for a in self.graph.arrays}))[:400]
            what = "no array" if not found else f"{len(found)} arrays"
            raise NotFoundError(f"{self.path}: {what} called {key!r}; labels in the file: {labels}")
        return found[0]

    def _target(self, key: int | str | None) -> Any:
        if key is None:
            return self.graph.root
        if isinstance(key, int):
            if key not in self._nodes and key not in self._arrays:
                raise NotFoundError(f"{self.path}: no node with id {key}")
            return Ref(key)
        value = self.graph.root
        for part in [p for p in key.split("/") if p]:
            value = self._step(value, part, key)
        return value

    def _step(self, value: Any, part: str, path: str) -> Any:
        if type(value) is Ref:
            node = self._nodes.get(value.id)
            value = node.state if node is not None else value
        if isinstance(value, dict) and part in value:
            return value[part]
        if isinstance(value, PairsDict):
            for k, v in value.pairs:
                if str(k) == part:
                    return v
        if isinstance(value, (list, tuple)) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            return value[int(part)]
        raise NotFoundError(f"{self.path}: nothing at {part!r} in the path {path!r}")

    # -- lifetime -----------------------------------------------------------------------
    def close(self) -> None:
        """Release the file (open HDF5 handles). Closing twice is harmless."""
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> FileView:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<ngser.FileView {self.path!r}: {self.format}, {len(self.graph.nodes)} objects, "
            f"{len(self.graph.arrays)} arrays>"
        )


def _subgraph(graph: Graph, root: Any) -> Graph:
    """The part of ``graph`` reachable from the value ``root``, in table order."""
    nodes = {node.id: node for node in graph.nodes}
    seen: set[int] = set()
    stack = [root]
    while stack:
        for ref, _ in iter_refs(stack.pop()):
            if ref.id not in seen:
                seen.add(ref.id)
                node = nodes.get(ref.id)
                if node is not None:
                    stack.append(node.state)
    kept: list[ObjectNode] = [node for node in graph.nodes if node.id in seen]
    arrays = [array for array in graph.arrays if array.id in seen]
    return Graph(root, kept, arrays, graph.writers, graph.meta)


def open(path: PathLike, *, trusted: bool = False, limits: Limits = DEFAULT_LIMITS) -> FileView:
    """Open an ngser file read-only: list its objects and arrays, load parts of it.

    >>> with ngser.open("result.msgpack") as view:
    ...     print(view.objects()[:3], view.arrays()[:3])
    ...     mesh = view.load("mesh")
    """
    return FileView(path, trusted=trusted, limits=limits)
