"""Nothing is lost: a save that fails or is killed leaves the previous file byte for byte as it was.

These tests kill real writer processes with SIGKILL in the middle of a large save,
fill real file systems (a 1 MB tmpfs when we may mount one, ``RLIMIT_FSIZE`` in a
subprocess otherwise) and make a save fail halfway through its own writing.

Kills that must land at a given point of a save do not rely on timing: the writer process
pauses there by itself (after a given number of bytes went into its temporary file), says
so on its stdout, and is killed while it waits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ngser
from helpers import EXTENSION
from ngser import atomic
from ngser.atomic import RELEASE_LATER
from ngser.graph import ArrayNode, Graph

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and resource limits")

#: Size of the array a killed writer is saving (large enough that the kill lands mid-write).
BIG = 96 * 2**20


def _temps(folder: Path) -> list[str]:
    """The temporary files ngser's atomic saves leave in ``folder``, if any."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".ngser-tmp"))


def _old_file(path: Path) -> bytes:
    ngser.save({"generation": "old", "values": np.arange(10.0)}, path)
    return path.read_bytes()


def _assert_old(path: Path, old: bytes) -> None:
    assert path.read_bytes() == old, "the previous file was changed by a failed save"
    loaded = ngser.load(path)
    assert loaded["generation"] == "old" and np.array_equal(loaded["values"], np.arange(10.0))


WRITER = textwrap.dedent(
    """
    import builtins, sys, numpy as np, ngser
    path, nbytes, pause_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = {"generation": "new", "values": np.full(nbytes // 8, 7.0)}

    class Pausing:
        # A temporary file of the save: written in pieces of 1 MiB; once pause_at bytes are in
        # it, the writer says "paused" and waits on stdin (for its SIGKILL) before going on.
        def __init__(self, stream):
            self._stream, self._written, self._paused = stream, 0, False

        def write(self, data):
            view = memoryview(data)
            try:
                view = view.cast("B")
            except TypeError:  # not contiguous: one piece
                view = memoryview(bytes(view))
            for begin in range(0, view.nbytes, 2**20):
                piece = view[begin : begin + 2**20]
                done = 0
                while done < piece.nbytes:
                    done += self._stream.write(piece[done:])
                self._written += piece.nbytes
                if self._written >= pause_at and not self._paused:
                    self._paused = True
                    self._stream.flush()
                    print("paused", flush=True)
                    sys.stdin.readline()
            return view.nbytes

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._stream.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self._stream, name)

    real_open = builtins.open

    def pausing_open(file, mode="r", *args, **kwargs):
        stream = real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if pause_at and writing and str(file).endswith(".ngser-tmp"):
            return Pausing(stream)
        return stream

    builtins.open = pausing_open
    print("ready", flush=True)
    sys.stdin.readline()
    ngser.save(data, path)
    print("saved", flush=True)
    """
)

#: Seconds to wait for an answer from a writer process: generous, for a busy machine.
PATIENCE = 120


def _line(proc: subprocess.Popen[str]) -> str:
    """The next line the writer prints ("" if it exited without one)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], PATIENCE)
    if not ready:
        proc.kill()
        proc.wait()
        pytest.fail(f"the writer process said nothing for {PATIENCE} s")
    return proc.stdout.readline().strip()


def _start_writer(path: Path, nbytes: int, pause_at: int = 0) -> subprocess.Popen[str]:
    """A writer process ready to save ``nbytes`` of new data over ``path`` once told "go"; with
    ``pause_at``, it pauses once that many bytes are in its temporary file (see :data:`WRITER`)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(nbytes), str(pause_at)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert _line(proc) == "ready"
    return proc


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _go_until_paused(proc: subprocess.Popen[str]) -> None:
    """Start the save and wait until the writer pauses in the middle of writing its file."""
    _go(proc)
    said = _line(proc)
    assert said == "paused", f"the writer did not pause in its temporary file (it said {said!r})"


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=PATIENCE)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_in_the_middle_of_a_large_save(tmp_path: Path, fmt: str) -> None:
    """SIGKILL while the temporary file is half written: the target is untouched and loads."""
    path = tmp_path / f"big{EXTENSION[fmt]}"
    old = _old_file(path)
    proc = _start_writer(path, BIG, pause_at=BIG // 4)
    _go_until_paused(proc)
    temps = _temps(tmp_path)
    assert len(temps) == 1, temps
    # bytes on disk, not the size: HDF5 sets the size before the data is written
    seen = (tmp_path / temps[0]).stat().st_blocks * 512
    _kill(proc)
    assert BIG // 4 <= seen < BIG, f"the kill did not land in the middle of the write ({seen} bytes written)"
    _assert_old(path, old)
    # A SIGKILLed process cannot clean up: its temporary file stays (see docs/reliability.md).
    leftovers = _temps(tmp_path)
    assert all(name.startswith(f".{path.name}.") for name in leftovers)


def test_sigkill_at_any_moment_leaves_old_or_complete_new_file(tmp_path: Path) -> None:
    """Kills spread over a whole save (writing, fsync, rename): the target is always the
    old file byte for byte or the complete new one, never a mixture. Some kills land at fixed
    points of the writing (the writer pauses there); the others at fractions of the time a
    whole save took, wherever those fall on this machine: each must find the old or the new file."""
    nbytes = 16 * 2**20
    path = tmp_path / "spread.msgpack"
    old = _old_file(path)
    proc = _start_writer(path, nbytes)
    start = time.monotonic()
    _go(proc)
    assert _line(proc) == "saved"
    duration = time.monotonic() - start
    proc.wait(timeout=PATIENCE)
    new = path.read_bytes()
    outcomes = set()
    moments: list[tuple[str, int | float]] = [("bytes", n) for n in (1, nbytes // 2, nbytes)]
    moments += [("time", fraction) for fraction in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 1.2)]
    for kind, moment in moments:
        path.write_bytes(old)
        if kind == "bytes":  # mid-write for sure: the old file must still be there
            proc = _start_writer(path, nbytes, pause_at=int(moment))
            _go_until_paused(proc)
            when = f"after {moment} bytes of"
        else:
            proc = _start_writer(path, nbytes)
            _go(proc)
            time.sleep(duration * moment)
            when = f"at {moment:.0%} of"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=PATIENCE)
        current = path.read_bytes()
        assert current in (old, new), f"killed {when} a save: the target is neither file"
        if kind == "bytes":
            assert current == old, f"killed {when} a save: the unfinished new file replaced the old one"
        outcomes.add("old" if current == old else "new")
        if current == old:
            _assert_old(path, old)
        else:
            assert ngser.load(path)["generation"] == "new"
        for name in _temps(tmp_path):
            (tmp_path / name).unlink()
    assert "old" in outcomes


def test_next_save_removes_temp_files_of_killed_writers(tmp_path: Path) -> None:
    path = tmp_path / "stale.msgpack"
    old = _old_file(path)
    proc = _start_writer(path, BIG, pause_at=1)
    _go_until_paused(proc)
    _kill(proc)
    _assert_old(path, old)
    assert _temps(tmp_path), "the killed writer left no temporary file to clean up"
    ngser.save({"generation": "next"}, path)
    assert _temps(tmp_path) == []


def test_unserializable_object_found_halfway(tmp_path: Path, fmt: str) -> None:
    class Unregistered:
        pass

    path = tmp_path / f"data{EXTENSION[fmt]}"
    old = _old_file(path)
    with pytest.raises(ngser.UnsupportedTypeError):
        ngser.save({"a": np.ones(100_000), "b": [1, 2, Unregistered()], "c": 3}, path)
    _assert_old(path, old)
    assert _temps(tmp_path) == []


class FailingData:
    """Array data read lazily (like an h5py dataset) whose reading fails with ``error``:
    the failure happens inside the backend, after the temporary file was opened."""

    def __init__(self, error: BaseException) -> None:
        self.dtype = np.dtype("f8")
        self.shape = (1000,)
        self.error = error

    def __getitem__(self, key: Any) -> Any:
        raise self.error

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


def _half_written_graph(error: BaseException) -> Graph:
    arrays = [ArrayNode(0, np.ones(200_000)), ArrayNode(1, FailingData(error))]
    return Graph({"a": ngser.graph.Ref(0), "b": ngser.graph.Ref(1)}, [], arrays)


def test_failure_inside_the_backend_write(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"data{EXTENSION[fmt]}"
    old = _old_file(path)
    with pytest.raises(ngser.FileAccessError, match=r"saving failed: .*the previous file.*unchanged") as info:
        ngser.write_graph(_half_written_graph(OSError(5, "Input/output error")), path)
    assert str(path) in str(info.value)
    _assert_old(path, old)
    assert _temps(tmp_path) == []


def test_keyboard_interrupt_inside_the_backend_write(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"data{EXTENSION[fmt]}"
    old = _old_file(path)
    with pytest.raises(KeyboardInterrupt):
        ngser.write_graph(_half_written_graph(KeyboardInterrupt()), path)
    _assert_old(path, old)
    assert _temps(tmp_path) == []


def test_new_file_not_created_when_save_fails(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"new{EXTENSION[fmt]}"
    with pytest.raises(ngser.FileAccessError):
        ngser.write_graph(_half_written_graph(OSError(28, "No space left on device")), path)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_file_access_error(tmp_path: Path) -> None:
    with pytest.raises(ngser.FileAccessError, match="cannot create a file in"):
        ngser.save([1], tmp_path / "no" / "such" / "folder.msgpack")


def test_permissions_of_replaced_file_kept(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"perm{EXTENSION[fmt]}"
    ngser.save(1, path)
    path.chmod(0o640)
    ngser.save(2, path)
    assert path.stat().st_mode & 0o777 == 0o640
    assert ngser.load(path) == 2


# -- full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A real 1 MB tmpfs (needs root; skipped where mounting is not allowed)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_tmpfs(small_disk: Path, fmt: str) -> None:
    path = small_disk / f"data{EXTENSION[fmt]}"
    old = _old_file(path)
    with pytest.raises(ngser.FileAccessError, match="No space left on device") as info:
        ngser.save({"big": np.ones(2**18)}, path)  # 2 MB into a 1 MB file system
    assert str(path) in str(info.value)
    _assert_old(path, old)
    assert _temps(small_disk) == []
    ngser.save({"generation": "old", "values": np.arange(10.0)}, path)  # space was given back
    assert path.read_bytes() == old


FSIZE_WRITER = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    import numpy as np, ngser
    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
    result = {}
    try:
        ngser.save({"big": np.ones(2**18)}, path)
        result["error"] = None
    except ngser.FileAccessError as exc:
        result["error"] = "FileAccessError"
        result["message"] = str(exc)
    except BaseException as exc:
        result["error"] = type(exc).__name__
        result["message"] = str(exc)
    print(json.dumps(result))
    """
)


def test_full_disk_rlimit_fsize(tmp_path: Path, fmt: str) -> None:
    """Writes beyond ``RLIMIT_FSIZE`` fail with EFBIG midway, as on a full disk."""
    path = tmp_path / f"data{EXTENSION[fmt]}"
    old = _old_file(path)
    out = subprocess.run(
        [sys.executable, "-c", FSIZE_WRITER, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] == "FileAccessError", result
    assert str(path) in result["message"] and "File too large" in result["message"]
    _assert_old(path, old)
    assert _temps(tmp_path) == []


def _open_deleted(path: Path) -> list[str]:
    """This process's descriptors of the deleted file that was at ``path``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == f"{path} (deleted)":
                found.append(fd)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_large_replaced_file_is_released_soon_after_the_save_returns(tmp_path: Path, fmt: str) -> None:
    """The old file's space is freed on a helper thread; the save itself is complete and durable."""
    path = tmp_path / f"big{EXTENSION[fmt]}"
    ngser.save({"generation": "old", "values": np.zeros(RELEASE_LATER // 8 + 1000)}, path)
    old_inode = path.stat().st_ino
    ngser.save({"generation": "new", "values": np.ones(10)}, path)
    assert path.stat().st_ino != old_inode
    assert ngser.load(path)["generation"] == "new"
    deadline = time.monotonic() + 60  # generous: only waits for the helper thread
    while _open_deleted(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _open_deleted(path) == [], "the replaced file was never closed"
    assert _temps(tmp_path) == []


def test_a_small_replaced_file_is_not_held(tmp_path: Path) -> None:
    path = tmp_path / "small.msgpack"
    ngser.save(np.zeros(10), path)
    assert atomic._hold(str(path)) is None
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(RELEASE_LATER))
    fd = atomic._hold(str(big))
    assert fd is not None
    atomic._release(fd)
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_saving_over_a_fifo_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "pipe.msgpack"
    os.mkfifo(path)
    done = []
    saver = threading.Thread(target=lambda: done.append(ngser.save([1, 2], path)), daemon=True)
    saver.start()
    saver.join(20)
    assert done, "the save hung opening the FIFO it replaces"
    assert ngser.load(path) == [1, 2]
