"""Read-only views of files: list what is inside, load one object, read arrays lazily.

>>> with ngser.open("result.h5") as view:
...     view.objects()                      # [(id, type name, version), ...]
...     view.arrays()                       # [ArrayInfo(id, label, dtype, shape, nbytes), ...]
...     u = view.load("u")                  # one object, by path from the root (or by node id)
...     points = view.array("netgen.Mesh/points")   # one array, without building any object

Arrays are read lazily where the layout allows it: HDF5 datasets and msgpack array payloads
are read from the file only when asked for. Pickle files are read as a whole (pickle has no
index). An array's checksum is verified when it is read.

A checkpoint is viewed one step at a time: ``ngser.open("heat.h5", step=3)`` (the last step
without ``step``). The view's graph is that step's own: objects stored once for several steps
(meshes, spaces) appear as ``ngser.Stored`` nodes, and loading builds them from their segments,
as :meth:`ngser.Checkpoint.load` does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from .api import PathLike, decode, read_graph_lazily, sniff_file
from .backends import DEFAULT_LIMITS, Limits, get_backend
from .errors import ArgumentError, NotFoundError, shown
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
    """A read-only view of an ngser file, or of one step of a checkpoint; make one with :func:`ngser.open`.

    :ivar step: for a checkpoint, the index of the viewed step among the kept ones (``None`` otherwise).
    :ivar time: for a checkpoint, the viewed step's time.
    """

    def __init__(
        self, path: PathLike, *, trusted: bool = False, limits: Limits = DEFAULT_LIMITS, step: int | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.trusted = trusted
        self.format = sniff_file(self.path)
        self.step: int | None = None
        self.time: float | None = None
        self._ckstep: _CheckpointStep | None = None
        if self.format == "hdf5" and _is_checkpoint(self.path):
            viewed = self._ckstep = _CheckpointStep(self.path, -1 if step is None else step, trusted, limits)
            self.graph, closer, self.step, self.time = viewed.graph, viewed.close, viewed.index, viewed.time
        elif step is not None:
            raise ArgumentError(
                f"{self.path}: step= views a step of a checkpoint; this {self.format} file holds one saved object: "
                "open it without step="
            )
        else:
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
        if self._ckstep is not None:
            return self._ckstep.decode(graph, unknown, registry)
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
        step = "" if self._ckstep is None else f" step {self.step} (time {self.time:g}) of a checkpoint,"
        return (
            f"<ngser.FileView {self.path!r}: {self.format},{step} {len(self.graph.nodes)} objects, "
            f"{len(self.graph.arrays)} arrays>"
        )


def _is_checkpoint(path: str) -> bool:
    from .checkpoint._layout import is_checkpoint_file

    return is_checkpoint_file(path)


class _CheckpointStep:
    """One step of a checkpoint: the graph of its root segment, and how to build parts of it.

    ``ngser.Stored`` nodes are resolved by the :class:`~ngser.Checkpoint` opened here (its
    ``_resolve``, which :meth:`~ngser.Checkpoint.load` uses too), so objects stored once are
    built once per view and shared by every load from it.
    """

    def __init__(self, path: str, step: Any, trusted: bool, limits: Limits) -> None:
        from .checkpoint import Checkpoint

        if type(step) is not int:
            raise ArgumentError(f"step= must be an int (an index into the checkpoint's steps), not {shown(step)}")
        self.path, self.trusted, self.limits = path, trusted, limits
        self.checkpoint = Checkpoint(path, mode="r", trusted=trusted, limits=limits)
        self._others: dict[int, tuple[Registry, Any]] = {}  # id(registry) -> it and a Checkpoint using it
        try:
            store = self.checkpoint._store
            steps = store.live_steps
            if not -len(steps) <= step < len(steps):
                raise NotFoundError(f"{path}: step {step} does not exist; the checkpoint has {len(steps)} steps")
            self.index = step % len(steps)
            self.time = store.step_time(steps[self.index])
            self.segment = store.step_segment(steps[self.index])
            self.graph = get_backend("msgpack").read_bytes(store.segment_bytes(self.segment), limits=limits)
        except BaseException:
            self.checkpoint.close()
            raise

    def decode(self, graph: Graph, unknown: Unknown, registry: Registry | None) -> Any:
        from .serializers.stored import resolving

        checkpoint = self._checkpoint(registry)
        with resolving(lambda target: checkpoint._resolve(target, self.segment)):
            return decode(
                graph,
                trusted=self.trusted,
                unknown=unknown,
                registry=checkpoint.registry,
                source=f"{self.path} (step {self.index}, segment {self.segment})",
            )

    def _checkpoint(self, registry: Registry | None) -> Any:
        """The checkpoint that builds stored objects with ``registry`` (the view's own for None)."""
        if registry is None or registry is self.checkpoint.registry:
            return self.checkpoint
        if id(registry) not in self._others:
            from .checkpoint import Checkpoint

            other = Checkpoint(self.path, mode="r", trusted=self.trusted, registry=registry, limits=self.limits)
            self._others[id(registry)] = (registry, other)
        return self._others[id(registry)][1]

    def close(self) -> None:
        for checkpoint in (self.checkpoint, *(other for _, other in self._others.values())):
            checkpoint.close()
        self._others.clear()


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


def open(
    path: PathLike, *, trusted: bool = False, limits: Limits = DEFAULT_LIMITS, step: int | None = None
) -> FileView:
    """Open an ngser file read-only: list its objects and arrays, load parts of it.

    >>> with ngser.open("result.msgpack") as view:
    ...     print(view.objects()[:3], view.arrays()[:3])
    ...     mesh = view.load("mesh")

    A checkpoint is viewed one step at a time: ``step`` is an index into its kept steps, as
    for :meth:`ngser.Checkpoint.load` (``-1``, the last step, without ``step``); ``view.step``
    and ``view.time`` say which. ``view.load()`` builds the step as ``Checkpoint.load`` does,
    and the objects stored once (meshes, spaces), shown as ``ngser.Stored`` nodes, are shared
    by all loads from the view. ``step`` on any other file is an :class:`~ngser.ArgumentError`.

    >>> with ngser.open("heat.h5", step=3) as view:
    ...     u = view.load("u")
    """
    return FileView(path, trusted=trusted, limits=limits, step=step)
