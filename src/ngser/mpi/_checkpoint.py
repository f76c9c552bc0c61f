"""``Checkpoint(path, comm=comm)``: a time series of a parallel run in one checkpoint file.

Rank 0 holds the :class:`~ngser.Checkpoint` (and its writer's lock); every rank calls each
method. ``append`` gathers the step's distributed objects to rank 0 as :func:`ngser.mpi.save`
does and appends the global objects; meshes and spaces are gathered once, so the checkpoint
stores them once while later steps store their dof vectors. ``load`` distributes a step as
:func:`ngser.mpi.load` does; the meshes and spaces of steps loaded from one open checkpoint are
distributed once and shared.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import ArgumentError
from ..serializers import default_registry
from ._channel import agree, as_comm, on_root, together
from ._gather import Globalizer
from ._objects import check, describe
from ._scatter import Distributor

__all__ = ["DistributedCheckpoint"]


class DistributedCheckpoint:
    """The collective :class:`~ngser.Checkpoint` (``Checkpoint(path, comm=comm)``, every rank)."""

    def __init__(
        self, path: str | os.PathLike[str], mode: str = "a", *, comm: Any, timeout: float = 60.0, **kwargs: Any
    ) -> None:
        from ..checkpoint import Checkpoint

        self.comm = as_comm(comm)
        if not isinstance(path, (str, os.PathLike)):
            raise ArgumentError(f"a collective checkpoint needs a file name, not {type(path).__name__}")
        self.path = os.path.abspath(os.fspath(path))
        self.mode = mode
        self.timeout = timeout
        if kwargs.get("vtk"):
            raise ArgumentError("a collective checkpoint has no VTK view yet: pass vtk=False")
        what = f"opening the collective checkpoint {self.path!r}"
        agree(self.comm, "ngser.Checkpoint", f"{self.path} {mode!r} {sorted(kwargs)}", timeout)
        self._inner: Any = together(
            self.comm,
            what,
            lambda: Checkpoint(self.path, mode, **kwargs) if self.comm.rank == 0 else None,  # type: ignore[arg-type]
        )
        registry = kwargs.get("registry") or default_registry
        self._globalizer = Globalizer(self.comm, registry)
        self._distributor = Distributor(self.comm, registry)

    def __enter__(self) -> DistributedCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r}, mode={self.mode!r}, comm=<{self.comm.size} ranks>)"

    def _root(self, what: str, step: Any) -> Any:
        return on_root(self.comm, f"{what} of the collective checkpoint {self.path!r}", step)

    def close(self) -> None:
        """Close the file on rank 0 (every rank calls it)."""
        self._root("closing", lambda: self._inner.close())

    def __len__(self) -> int:
        return int(self._root("len()", lambda: len(self._inner)))

    @property
    def times(self) -> list[float]:
        """The time of every step kept, oldest first (on every rank)."""
        return list(self._root("times", lambda: self._inner.times))

    def append(self, obj: Any, *, time: float | None = None) -> int:
        """Store the distributed objects ``obj`` as a new step (every rank calls it); the step's
        index. When this returns the step is on disk."""
        what = f"appending to the collective checkpoint {self.path!r}"
        agree(self.comm, "Checkpoint.append", f"{self.path} {time!r} {describe(obj)}", self.timeout)
        together(self.comm, what, lambda: check(obj, self.comm.size, self._globalizer.registry))
        structure = self._globalizer.structure(obj)
        together(self.comm, what, self._globalizer.raise_failure)
        return int(self._root("append", lambda: self._inner.append(structure, time=time)))

    def load(self, step: int = -1) -> Any:
        """Step ``step`` distributed over the ranks (every rank calls it)."""
        what = f"loading step {step} of the collective checkpoint {self.path!r}"
        agree(self.comm, "Checkpoint.load", f"{self.path} {step!r}", self.timeout)
        loaded = together(self.comm, what, lambda: self._inner.load(step) if self.comm.rank == 0 else None)
        plan = on_root(self.comm, what, lambda: self._distributor.plan(loaded))
        result = self._distributor.build(plan)
        together(self.comm, what, self._distributor.raise_failure)
        return result
