"""A one-line progress display for the command line: the phase, and while a file is written, its bytes.

``ngser convert`` shows, on a terminal::

    reading big.pkl ...
    writing big.h5 [#############                 ]  43%, 602.1 MB of 1.4 GB
    syncing big.h5 to disk ...

The bytes come from the file itself (its allocated blocks, polled by a thread), not from the
arrays handed to the writer: writers take every array before they write the first byte, so
counting arrays ran ahead of the disk.

>>> progress = Progress(sys.stderr)
>>> progress.phase("reading big.pkl")
>>> with progress.watching("big.h5.tmp", "writing big.h5", total=1_400_000_000):
...     backend.write_path(graph, "big.h5.tmp")
>>> progress.finish()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["Progress", "bytes_on_disk", "size_text"]

#: Seconds between two looks at the file being written.
INTERVAL = 0.1


def size_text(n: float) -> str:
    """``n`` bytes as text: ``"1.4 GB"``, ``"512 B"``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def bytes_on_disk(path: str) -> int:
    """The bytes of ``path`` written so far: its allocated blocks (so a sparse file, whose size
    HDF5 sets before it writes, counts what is there), at most its size; 0 if it is missing."""
    try:
        stat = os.stat(path)
    except OSError:
        return 0
    blocks = getattr(stat, "st_blocks", None)
    return stat.st_size if blocks is None else min(stat.st_size, blocks * 512)


class Progress:
    """A one-line display on ``stream``, redrawn with ``\\r``; it draws nothing unless ``enabled``
    (a terminal, by default)."""

    def __init__(self, stream: TextIO, enabled: bool | None = None) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.shown = False  # whether a line is on the screen

    def phase(self, text: str) -> None:
        """Show ``text ...`` (a phase without a measure: reading, syncing)."""
        self._draw(f"{text} ...")

    def bar(self, what: str, done: int, total: int) -> None:
        """Show ``what [###   ] 43%, done of total`` (bytes); below 100% until :meth:`finish`."""
        share = min(done / total, 0.99) if total else 0.0
        self._draw(f"{what} [{'#' * int(share * 30):<30}] {share:4.0%}, {size_text(done)} of {size_text(total)}")

    @contextmanager
    def watching(self, path: str, what: str, total: int) -> Iterator[None]:
        """While the block runs, show the bytes written to ``path`` of about ``total``."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(INTERVAL):
                self.bar(what, bytes_on_disk(path), total)

        self.bar(what, 0, total)
        thread = threading.Thread(target=poll, name="ngser-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        self.bar(what, bytes_on_disk(path), total)

    def finish(self) -> None:
        """Clear the line (what was done is for the caller to print)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def _draw(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\033[K{text}")
            self.stream.flush()
            self.shown = True
