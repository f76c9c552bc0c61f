"""What ``ngser info`` and ``ngser verify`` say about a checkpoint."""

from __future__ import annotations

import os

from ..backends import get_backend
from ..errors import FormatError
from ._layout import is_checkpoint_file

__all__ = ["is_checkpoint", "describe_checkpoint", "verify_checkpoint"]


def is_checkpoint(path: str) -> bool:
    """Whether ``path`` is an HDF5 file holding an ngser checkpoint (not a single saved object)."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
        return is_checkpoint_file(path)
    except (OSError, FormatError):
        return False


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def describe_checkpoint(path: str) -> str:
    """The steps of a checkpoint with their times and sizes, as ``ngser info`` prints them."""
    from . import Checkpoint

    with Checkpoint(path, mode="r") as ck:
        store = ck._store
        live = store.live_segments()
        steps = list(store.live_steps)
        used = sum(int(store._table[s, 1]) for s in live)
        lines = [
            f"file:           {path} ({_size(os.path.getsize(path))})",
            "format:         hdf5, ngser checkpoint (format version 1)",
            f"steps:          {len(steps)} kept of {store.state.steps} appended"
            + (f" (the first {store.state.first_live} dropped)" if store.state.first_live else ""),
            f"segments:       {len(live)} live, {_size(used)} (stored objects shared by steps: "
            f"{len(live) - len(steps)})",
        ]
        viewed = len(store.listing())
        if _has_view(path):
            lines.append(f"VTK view:       /VTKHDF, {viewed} of the kept steps (opens in ParaView)")
        lines.append("  index       time  segment        size  refers to")
        for index, step in enumerate(steps):
            segment = store.step_segment(step)
            deps = ", ".join(str(int(d)) for d in store.segment_deps(segment)) or "-"
            lines.append(
                f"  {index:>5} {store.step_time(step):>10.6g}  {segment:>7} {_size(int(store._table[segment, 1])):>11}"
                f"  {deps}"
            )
    return "\n".join(lines)


def _has_view(path: str) -> bool:
    import h5py

    from ._vtkview import GROUP, LOCATOR

    try:
        with h5py.File(path, "r", driver="sec2", locking=False) as file:
            return GROUP in file and LOCATOR in file
    except Exception:  # a damaged structure: info still lists the steps
        return False


def verify_checkpoint(path: str) -> str:
    """Check every live segment of a checkpoint (its CRC, and the checksums of the ngser document
    it holds) without building objects; a summary, or an :class:`~ngser.NgserError`."""
    from . import Checkpoint

    backend = get_backend("msgpack")
    with Checkpoint(path, mode="r") as ck:
        store = ck._store
        live = sorted(store.live_segments())
        for segment in live:
            graph = backend.read_bytes(store.segment_bytes(segment), limits=ck.limits)
            for array in graph.arrays:
                array.load()
        return f"OK (hdf5 checkpoint, {len(ck)} steps, {len(live)} segments; every checksum matches)"
