"""Write-behind flushing (ngser.backends._writeback): data reaches the disk while the rest is written,
the helper thread never outlives the descriptor, and a flush error is not lost."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

import ngser
from ngser.backends._writeback import WriteBehind, WriteBehindStream


def _helpers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ngser-write-behind"]


def test_a_large_stream_is_flushed_behind_and_written_whole(tmp_path: Path) -> None:
    chunk = np.random.default_rng(0).integers(0, 256, 4 * 2**20, dtype=np.uint8)
    path = tmp_path / "data.bin"
    with open(path, "wb") as raw, WriteBehind(raw.fileno(), every=8 * 2**20) as behind:
        stream = WriteBehindStream(raw, behind)
        for _ in range(16):
            stream.write(memoryview(chunk))
        stream.write(b"end")
        assert stream.tell() == 16 * chunk.nbytes + 3  # other attributes reach the file
    assert behind.flushes >= 1  # flushed while writing (a busy helper may merge requests into one flush)
    assert _helpers() == []
    data = path.read_bytes()
    assert len(data) == 16 * chunk.nbytes + 3 and data[-3:] == b"end"
    assert data[: chunk.nbytes] == chunk.tobytes()


def test_small_writes_start_no_flush(tmp_path: Path) -> None:
    with open(tmp_path / "small.bin", "wb") as raw, WriteBehind(raw.fileno()) as behind:
        WriteBehindStream(raw, behind).write(b"x" * 1000)
    assert behind.flushes == 0


@pytest.mark.skipif(not hasattr(os, "pipe"), reason="needs pipes")
def test_a_failing_flush_is_raised_when_the_writer_finishes() -> None:
    read_end, write_end = os.pipe()  # fsync/fdatasync of a pipe fails with EINVAL
    try:
        behind = WriteBehind(write_end, every=1)
        behind.wrote(10)
        with pytest.raises(OSError):
            behind.finish()
        behind.finish()  # reported once
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.skipif(not hasattr(os, "pipe"), reason="needs pipes")
def test_the_writers_own_error_wins_and_the_thread_is_joined() -> None:
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(KeyError), WriteBehind(write_end, every=1) as behind:
            behind.wrote(10)
            raise KeyError("the writer failed first")
        assert _helpers() == []
    finally:
        os.close(read_end)
        os.close(write_end)


def test_large_saves_flush_behind_in_every_format(tmp_path: Path, fmt: str) -> None:
    data = {"values": np.arange(12 * 2**20 // 8, dtype=np.float64)}
    path = tmp_path / f"big{ngser.backends.get_backend(fmt).extensions[0]}"
    started = []
    original = WriteBehind.wrote

    def counting(self: WriteBehind, nbytes: int) -> None:
        original(self, nbytes)
        started.append(self.flushes)

    WriteBehind.wrote = counting  # type: ignore[method-assign]
    try:
        ngser.save(data, path)
    finally:
        WriteBehind.wrote = original  # type: ignore[method-assign]
    assert started, f"the {fmt} writer never reported its progress to the write-behind flusher"
    np.testing.assert_array_equal(ngser.load(path)["values"], data["values"])
