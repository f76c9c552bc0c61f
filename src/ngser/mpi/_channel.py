"""Collective calls that end: the ranks agree on what they do before the first collective step,
and a failure on one rank becomes an error on every rank.

:func:`agree` is the handshake. Every rank sends rank 0 a digest of what it was called with
(the call's name, the file, the shape of the objects) and its call number; rank 0 polls for them
until a deadline and answers each rank with the verdict. Nothing blocks without a deadline, so a
rank that calls alone, or ranks that pass different objects, get a :class:`~ngser.CollectiveError`
within about ``timeout`` (rank 0) or three times it (the others). A rank whose message rank 0
never took back cancels it where MPI can; otherwise later calls see the call numbers differ and
fail the same way (the ranks are out of step: end the job).

:func:`together` runs a step whose failures are local (checks, rank 0 writing the file) and
shares the outcome: every rank raises when any rank failed, the failing rank its own error and
the others an error of the same class naming the rank.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mpi4py import MPI

from .. import errors
from ..errors import ArgumentError, CollectiveError, NgserError

__all__ = ["RootSteps", "agree", "as_comm", "on_root", "together"]

T = TypeVar("T")
_TAG_JOIN, _TAG_VERDICT = 0x6E67, 0x6E68
_POLL = 0.002
#: This process's collective calls so far (every rank counts its own).
_CALLS = itertools.count()
#: Communicators this process made collective calls on (drained at exit).
_USED: list[MPI.Comm] = []


@atexit.register  # registered after mpi4py's own handler, so it runs before MPI_Finalize
def _drain() -> None:
    """Receive the handshakes no call took (from a rank that called alone): MPICH may kill a
    process that finalizes with such a message pending."""
    if not MPI.Is_initialized() or MPI.Is_finalized():
        return
    for comm in [MPI.COMM_WORLD, *_USED]:
        try:
            status = MPI.Status()
            for tag in (_TAG_JOIN, _TAG_VERDICT):
                while comm.Iprobe(source=MPI.ANY_SOURCE, tag=tag, status=status):
                    comm.recv(source=status.Get_source(), tag=tag)
        except MPI.Exception:
            continue  # freed meanwhile


def as_comm(comm: Any) -> MPI.Comm:
    """An ``mpi4py`` communicator for ``comm`` (an ``mpi4py`` one, or NGSolve's ``mesh.comm``)."""
    if isinstance(comm, MPI.Comm):
        return comm
    inner = getattr(comm, "mpi4py", None)  # NGSolve's MPI_Comm wraps one
    if isinstance(inner, MPI.Comm):
        return inner
    raise ArgumentError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), not {type(comm).__name__}")


def _wait(comm: MPI.Comm, source: int, tag: int, deadline: float) -> MPI.Status | None:
    status = MPI.Status()
    while not comm.Iprobe(source=source, tag=tag, status=status):
        if time.monotonic() > deadline:
            return None
        time.sleep(_POLL)
    return status


def agree(comm: MPI.Comm, what: str, shape: str, timeout: float) -> None:
    """Return when every rank of ``comm`` called this with the same ``what`` and ``shape``;
    otherwise raise :class:`~ngser.CollectiveError` on every rank that called, within a bounded
    time (see the module docs)."""
    call = next(_CALLS)
    digest = hashlib.sha256(f"{what}\0{shape}".encode()).hexdigest()
    if comm.size == 1:
        return
    if not any(used is comm for used in _USED):
        _USED.append(comm)
    if comm.rank == 0:
        verdict = _collect(comm, call, digest, what, shape, timeout)
    else:
        verdict = _join(comm, (call, digest, shape[:300]), what, timeout)
    if verdict:
        raise CollectiveError(f"{what}: {verdict}")


def _collect(comm: MPI.Comm, call: int, digest: str, what: str, shape: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    joined: dict[int, tuple[int, str, str]] = {}
    while len(joined) < comm.size - 1:
        status = _wait(comm, MPI.ANY_SOURCE, _TAG_JOIN, deadline)
        if status is None:
            break
        joined[status.Get_source()] = comm.recv(source=status.Get_source(), tag=_TAG_JOIN)
    problems = []
    missing = sorted(set(range(1, comm.size)) - set(joined))
    if missing:
        problems.append(
            f"ranks {missing} did not join within {timeout:g} s: every rank of the communicator must make this call"
        )
    for rank, (their_call, their_digest, their_shape) in sorted(joined.items()):
        if their_call != call:
            problems.append(
                f"rank {rank} is at its collective call {their_call}, rank 0 at {call}: an earlier collective call "
                "failed on some ranks only, so the ranks are out of step (end the job)"
            )
        elif their_digest != digest:
            problems.append(f"rank {rank} passed {their_shape}, rank 0 passed {shape[:300]}: pass the same objects")
    verdict = "; ".join(problems)
    requests = [comm.isend(verdict, dest=rank, tag=_TAG_VERDICT) for rank in joined]
    MPI.Request.Waitall(requests)
    return verdict


def _join(comm: MPI.Comm, message: tuple[int, str, str], what: str, timeout: float) -> str:
    request = comm.isend(message, dest=0, tag=_TAG_JOIN)
    # rank 0 answers within `timeout` of its own arrival: wait for it to arrive, then for that
    status = _wait(comm, 0, _TAG_VERDICT, time.monotonic() + 2 * timeout)
    if status is None:
        request.Cancel()
        cancelled = MPI.Status()
        request.Wait(cancelled)
        if not cancelled.Is_cancelled():  # maybe taken by rank 0, which then answers soon
            status = _wait(comm, 0, _TAG_VERDICT, time.monotonic() + timeout)
        if status is None:
            return f"rank 0 did not join within {2 * timeout:g} s: every rank of the communicator must make this call"
    verdict: str = comm.recv(source=0, tag=_TAG_VERDICT)
    request.Wait()
    return verdict


def together(comm: MPI.Comm, what: str, step: Callable[[], T]) -> T:
    """Run ``step`` on every rank; when it raised on any rank, raise on all (see the module docs).
    ``step`` must not make collective calls itself: a rank that fails before one would leave the
    others waiting in it."""
    try:
        result, failure = step(), None
    except Exception as exc:
        result, failure = None, exc
    outcomes = comm.allgather(None if failure is None else (type(failure).__name__, str(failure)))
    _raise_first(outcomes, failure, what)
    return result  # type: ignore[return-value]


def on_root(comm: MPI.Comm, what: str, step: Callable[[], T]) -> T:
    """Run ``step`` on rank 0 and give its result (picklable) to every rank, or its error."""
    result: Any = None
    failure: Exception | None = None
    if comm.rank == 0:
        try:
            result = step()
        except Exception as exc:
            failure = exc
    outcome = comm.bcast((None if failure is None else (type(failure).__name__, str(failure)), result), root=0)
    _raise_first([outcome[0]], failure, what)
    return outcome[1]  # type: ignore[no-any-return]


def _raise_first(outcomes: list[tuple[str, str] | None], own: Exception | None, what: str) -> None:
    if own is not None:
        raise own
    for rank, outcome in enumerate(outcomes):
        if outcome is None:
            continue
        name, message = outcome
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, NgserError)):
            cls = CollectiveError
        raise cls(f"{what} failed on rank {rank}: {message}")


class RootSteps:
    """A run of collective steps with shares for rank 0 alone: a failure in rank 0's share is
    kept, the collective steps go on (with empty data), and :meth:`raise_failure`, run with
    :func:`together` at the end, raises it on every rank."""

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.root = comm.rank == 0
        self.failure: Exception | None = None

    def on_root(self, step: Callable[..., T], *args: Any) -> T | None:
        """Rank 0: ``step(*args)``, or None once a share failed; other ranks: None."""
        if not self.root or self.failure is not None:
            return None
        try:
            return step(*args)
        except Exception as exc:
            self.failure = exc
            return None

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure
