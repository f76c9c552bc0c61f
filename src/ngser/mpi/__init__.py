"""One file from a parallel NGSolve run, loaded again on any number of ranks.

>>> from mpi4py import MPI
>>> ngser.save({"mesh": mesh, "u": gfu, "t": t}, "run.h5", comm=MPI.COMM_WORLD)   # every rank
>>> state = ngser.load("run.h5", comm=MPI.COMM_WORLD)                              # any number of ranks
>>> state = ngser.load("run.h5")                                                   # serially: global objects

A collective save writes an ordinary ngser file: the global mesh (netgen's global vertex numbers,
the volume elements sorted by their vertices, so the file does not depend on the partition), the
spaces rebuilt on it and each GridFunction's global dof vector; other leaves of the objects are
rank 0's. A collective load reads it on rank 0, distributes each mesh with netgen's
``Distribute`` and gives every rank its part of each dof vector. Meshes, the spaces ngser
rebuilds from their parts (leaf spaces, products, ``V**n``, ``Discontinuous``) and GridFunctions
are distributed; they may sit in dicts, lists and tuples. Everything is gathered on rank 0,
which needs the memory of the global mesh and vectors (``docs/distributed.md``).

Every rank must make the same call with the same objects: the ranks first agree on it, so a rank
calling alone, or ranks passing different objects, get a :class:`~ngser.CollectiveError` within
about ``timeout`` seconds instead of hanging, and a failure on one rank is raised on all.
"""

from __future__ import annotations

import os
from typing import Any

from .. import api
from ..backends import DEFAULT_LIMITS, Limits
from ..errors import ArgumentError
from ..graph._decoder import Unknown
from ..serializers import Registry, default_registry
from ._channel import agree, as_comm, on_root, together
from ._gather import Globalizer
from ._objects import check, describe
from ._scatter import Distributor

__all__ = ["load", "save"]

#: Seconds the ranks wait for each other to make a collective call.
TIMEOUT = 60.0


def _target(path: Any, what: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError(f"a collective {what} needs a file name, not {type(path).__name__}")
    return os.path.abspath(os.fspath(path))


def save(
    obj: Any,
    path: str | os.PathLike[str],
    comm: Any,
    *,
    format: api.Format | None = None,
    registry: Registry | None = None,
    timeout: float = TIMEOUT,
    **options: Any,
) -> None:
    """Save the distributed objects ``obj`` to the one file ``path``; every rank of ``comm``
    calls it. Rank 0 writes the file atomically (it appears complete or not at all) with
    :func:`ngser.save` and the ``format`` and backend ``options`` given; the call returns on
    every rank when it is written, or raises on every rank.

    >>> ngser.mpi.save({"u": gfu}, "run.h5", MPI.COMM_WORLD)
    """
    comm = as_comm(comm)
    target = _target(path, "save")
    registry = registry or default_registry
    what = f"the collective save to {target!r}"
    agree(comm, "ngser.save", f"{target} {format!r} {sorted(options)} {describe(obj)}", timeout)
    together(comm, what, lambda: check(obj, comm.size, registry))
    globalizer = Globalizer(comm, registry)
    structure = globalizer.structure(obj)
    together(comm, what, globalizer.raise_failure)
    on_root(comm, what, lambda: api.save(structure, target, format=format, registry=registry, **options))


def load(
    path: str | os.PathLike[str],
    comm: Any,
    *,
    trusted: bool = False,
    unknown: Unknown = "error",
    registry: Registry | None = None,
    limits: Limits = DEFAULT_LIMITS,
    timeout: float = TIMEOUT,
) -> Any:
    """Load the file ``path`` on every rank of ``comm`` (any number of ranks): rank 0 reads it
    with :func:`ngser.load`, meshes come back distributed over ``comm`` with their spaces and
    GridFunctions, other values as they are on every rank.

    >>> state = ngser.mpi.load("run.h5", MPI.COMM_WORLD)
    """
    comm = as_comm(comm)
    source = _target(path, "load")
    registry = registry or default_registry
    what = f"the collective load of {source!r}"
    agree(comm, "ngser.load", source, timeout)
    loaded = together(
        comm,
        what,
        lambda: (
            api.load(source, trusted=trusted, unknown=unknown, registry=registry, limits=limits)
            if comm.rank == 0
            else None
        ),
    )
    distributor = Distributor(comm, registry)
    plan = on_root(comm, what, lambda: distributor.plan(loaded))
    result = distributor.build(plan)
    together(comm, what, distributor.raise_failure)
    return result
