"""Checkpoints: a simulation's time series in one crash-safe HDF5 file.

>>> with ngser.Checkpoint("heat.h5") as ck:          # mode="a": create or append
...     for n in range(steps):
...         ...
...         ck.append({"u": gfu, "step": n}, time=t)
>>> ck = ngser.Checkpoint("heat.h5", mode="r")
>>> len(ck), ck.times
>>> state = ck.load(-1)                               # the last step

Objects whose serializer has a ``fingerprint`` (meshes, spaces, geometries) are stored once, as
a segment of their own, and later steps refer to that segment while the fingerprint is
unchanged: a step of a GridFunction on a fixed mesh costs its dof vector. Steps loaded from one
open checkpoint share those objects. ``keep=N`` keeps the last N steps and reuses the space of
dropped ones. See ``docs/checkpoints.md`` for the layout and the crash-safety argument.
"""

from __future__ import annotations

import fcntl
import math
import os
from typing import Any, Literal

from ..api import Fallback, _fallback, gc_paused
from ..backends import DEFAULT_LIMITS, Limits, get_backend
from ..backends.msgpack_format import MsgpackBackend
from ..errors import ArgumentError, FileAccessError, FormatError, NotFoundError
from ..graph._decoder import Decoder
from ..graph._encoder import Encoder
from ..serializers import Registry, SerializerRecord, default_registry
from ..serializers.stored import Stored, StoredSerializer, resolving
from ._layout import Capacity, create_file
from ._sampler import Sampler
from ._store import Append, Store

__all__ = ["Checkpoint"]

_MSGPACK = MsgpackBackend()  # segments are msgpack files: written from the arrays' memory
#: A step with this many bytes of arrays is written while its arrays' CRC32s are computed.
_OVERLAP_BYTES = 1 << 20
Mode = Literal["a", "w", "r"]
#: How deep stored objects may refer to stored objects (a mesh in a space in a space ...).
_MAX_NESTING = 64


class Checkpoint:
    """A time series of saved objects in one HDF5 file: ``append`` steps, ``load`` any of them.

    ``mode``: ``"a"`` (default) opens or creates the file for appending, ``"w"`` starts anew
    (the old file stays until the new, empty checkpoint is complete), ``"r"`` only reads.
    ``keep``: keep only the last ``keep`` steps (rolling restart files); the space of dropped
    steps is reused by later appends. ``vtk=True``: the file is also a VTKHDF time series that
    ParaView opens (name it ``.vtkhdf`` or ``.hdf`` for ParaView): every GridFunction of a step
    found under a name (a dict key) is point data of that name, sampled on Lagrange cells of the
    fields' order (``docs/checkpoints.md``; needs NGSolve). ``trusted``, ``fallback``, ``registry`` and ``limits``
    are those of :func:`ngser.save` and :func:`ngser.load`. ``comm=`` (an ``mpi4py`` communicator;
    every rank calls every method) gives the collective checkpoint of a parallel run: steps of
    distributed meshes and GridFunctions are appended as global objects and loaded distributed
    over any number of ranks (``docs/distributed.md``).

    >>> with ngser.Checkpoint("run.h5", keep=3) as ck:
    ...     ck.append({"u": gfu}, time=0.1)
    ...     ck.load(-1)["u"]
    """

    def __new__(cls, *args: Any, comm: Any = None, **kwargs: Any) -> Any:
        if comm is None:
            return super().__new__(cls)
        from ..mpi._checkpoint import DistributedCheckpoint

        return DistributedCheckpoint(*args, comm=comm, **kwargs)

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: Mode = "a",
        *,
        keep: int | None = None,
        vtk: bool = False,
        trusted: bool = False,
        fallback: Fallback = None,
        registry: Registry | None = None,
        limits: Limits = DEFAULT_LIMITS,
        comm: None = None,
    ) -> None:
        if mode not in ("a", "w", "r"):
            raise ArgumentError(f'mode must be "a", "w" or "r", not {mode!r}')
        if keep is not None and (type(keep) is not int or keep < 1):
            raise ArgumentError(f"keep must be a positive int or None, not {keep!r}")
        if vtk and mode == "r":
            raise ArgumentError("vtk=True adds steps to the file's VTK view: it needs mode='a' or 'w', not 'r'")
        self.path = os.fspath(path)
        self.mode: Mode = mode
        self.keep = keep
        self.trusted = trusted
        self.registry = registry if registry is not None else default_registry
        if self.registry.record_for_name(StoredSerializer.name) is None:  # a registry without ngser's own names
            self.registry.add(StoredSerializer())
        self.limits = limits
        self.vtk = bool(vtk)
        self._sampler = Sampler(self.registry, self.path)
        self._fallback = _fallback(fallback)
        self._objects: dict[int, Any] = {}  # segment -> object built from it (shared by loads)
        self._stable: dict[int, tuple[Any, Any, int]] = {}  # id(obj) -> (obj, fingerprint, segment)
        self._storing: set[int] = set()
        self._depth = 0
        self._append: Append | None = None
        self._lock = -1
        self._store = self._open()

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> Store:
        exists = os.path.exists(self.path)
        if self.mode == "r":
            if not exists:
                raise NotFoundError(f"{self.path}: no such checkpoint")
            return Store(self.path, writable=False)
        self._lock = _writer_lock(self.path)
        try:
            if self.mode == "w" or not exists:
                create_file(self.path, Capacity())  # "w": the old file is replaced only by a complete new one
            return Store(self.path, writable=True)
        except BaseException:
            os.close(self._lock)
            raise

    def close(self) -> None:
        """Close the file (loaded objects stay usable)."""
        self._store.close()
        if self._lock >= 0:
            os.close(self._lock)  # releases the writer's lock
            self._lock = -1

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({self.path!r}, mode={self.mode!r}, steps={len(self)})"

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._store.live_steps)

    @property
    def times(self) -> list[float]:
        """The time of every step kept, oldest first."""
        return self._store.times_of_live()

    def load(self, step: int = -1) -> Any:
        """The object appended as step ``step`` (an index into the steps kept: ``-1`` is the last)."""
        steps = self._store.live_steps
        if type(step) is not int:
            raise ArgumentError(f"the step must be an int, not {type(step).__name__}")
        if not -len(steps) <= step < len(steps):
            raise NotFoundError(f"{self.path}: step {step} does not exist; the checkpoint has {len(steps)} steps")
        segment = self._store.step_segment(steps[step])
        with gc_paused():
            return self._decode_segment(segment)

    def _decode_segment(self, segment: int) -> Any:
        data = self._store.segment_bytes(segment)
        graph = get_backend("msgpack").read_bytes(data, limits=self.limits)
        decoder = Decoder(self.registry, trusted=self.trusted, source=f"{self.path} (segment {segment})")
        with resolving(lambda target: self._resolve(target, segment)):
            return decoder.decode(graph)

    def _resolve(self, target: int, referrer: int) -> Any:
        found = self._objects.get(target)
        if found is not None:
            return found
        if not 0 <= target < referrer or target not in self._store.segment_deps(referrer):
            raise FormatError(
                f"{self.path}: segment {referrer} refers to segment {target}, which it does not list; the file is "
                "damaged"
            )
        if self._depth >= _MAX_NESTING:
            raise FormatError(f"{self.path}: stored objects nest more than {_MAX_NESTING} levels; the file is damaged")
        self._depth += 1
        try:
            obj = self._decode_segment(target)
        finally:
            self._depth -= 1
        self._objects[target] = obj
        record = self.registry.record_for_type(type(obj))
        if self.mode != "r" and record is not None and record.fingerprint is not None:
            self._stable[id(obj)] = (obj, record.fingerprint(obj), target)  # appending it again refers to it
        return obj

    # -- appending -----------------------------------------------------------------------
    def append(self, obj: Any, *, time: float | None = None) -> int:
        """Store ``obj`` as a new step at ``time`` (default: the step's number); the step's index.

        When this returns, the step is on disk: a process killed afterwards, or during a later
        append, leaves it loadable.
        """
        if self.mode == "r":
            raise ArgumentError(f"{self.path}: the checkpoint was opened with mode='r'; open it with mode='a'")
        store = self._store
        t = float(store.state.steps if time is None else time)
        if not math.isfinite(t):
            raise ArgumentError(f"the time of a step must be a finite number, not {time!r}")
        append = self._append = Append(store)
        self._stable = {k: v for k, v in self._stable.items() if v[2] in append.live}
        try:
            with gc_paused():
                root, _ = self._store_segment(obj, stable=False)
            arrays, grid = self._sampler.step(obj, store.state.steps, store.grid) if self.vtk else (None, None)
            self._store = append.commit(root, t, self.keep, arrays, grid)
        finally:
            self._append = None
        return len(self) - 1

    def _store_segment(self, obj: Any, *, stable: bool) -> tuple[int, Any]:
        """Encode ``obj`` (its stable parts as references) and write it as a segment."""
        refs: list[int] = []
        encoder = Encoder(self.registry, self._fallback, substitute=lambda o, r: self._substitute(o, r, refs))
        if stable:
            self._storing.add(id(obj))
        try:
            graph = encoder.encode(obj)
        finally:
            self._storing.discard(id(obj))
        append = self._append
        assert append is not None
        deps = sorted(set(refs))
        if not stable and sum(a.load().nbytes for a in graph.arrays) >= _OVERLAP_BYTES:
            return append.add_planned(_MSGPACK.plan(graph), deps), graph  # arrays written while checksummed
        pieces, length, crc = _MSGPACK.pieces(graph)
        if stable:  # stored before, by another process or as another object: refer to that segment
            same = append.find_segment(b"".join(pieces), crc)
            if same is not None:
                return same, graph
        return append.add_segment(pieces, length, crc, deps), graph

    def _substitute(self, obj: Any, record: SerializerRecord, refs: list[int]) -> Stored | None:
        if id(obj) in self._storing or record.fingerprint is None:
            return None
        fingerprint = record.fingerprint(obj)
        known = self._stable.get(id(obj))
        if known is not None and known[0] is obj and known[1] == fingerprint:
            segment = known[2]
        else:
            segment, _ = self._store_segment(obj, stable=True)
            self._stable[id(obj)] = (obj, fingerprint, segment)
        refs.append(segment)
        return Stored(segment)


def _writer_lock(path: str) -> int:
    """Take the lock that makes one process at a time append to ``path``: an ``flock`` on the lock
    file ``.NAME.ngser-writer`` beside it (not on the checkpoint itself: HDF5 readers such as
    ParaView ``flock`` the files they open, and must still open a checkpoint being written)."""
    folder, name = os.path.split(os.path.abspath(path))
    lock = os.path.join(folder, f".{name}.ngser-writer")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot create the writer's lock file {lock}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FileAccessError(
            f"{path}: another process is appending to this checkpoint; one writer at a time"
        ) from None
    except OSError:
        pass  # a file system without locks: nothing to take
    return fd
