"""What a save does to the file it replaces: permissions, owner, symbolic links, read-only
files, and the temporary files of other writers (see "Replacing a file" in docs/reliability.md).

Behaviour that differs for users other than root runs in a forked child that switched to
uid/gid 65534 ("nobody"), on files in a folder that user can write.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import ngser
from helpers import EXTENSION
from ngser import atomic
from ngser.backends import available

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions, owners, links and locks")

NOBODY = 65534
ROOT = os.name == "posix" and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (to change owners and switch users)")


def _leftovers(*folders: Path) -> list[str]:
    """Temporary and lock files of ngser saves in ``folders``."""
    return sorted(p.name for f in folders for p in f.iterdir() if ".ngser-" in p.name)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    """A folder user 65534 can reach and write (``tmp_path``'s parents are root's only)."""
    folder = Path(tempfile.mkdtemp(prefix="ngser-semantics-"))
    folder.chmod(0o777)  # not sticky: its users may replace each other's files
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _warm_up(folder: Path) -> None:
    """Import everything a save and a load need while the modules can still be read (user 65534
    cannot read the interpreter's standard library under /root)."""
    for fmt, ext in EXTENSION.items():
        if fmt in available():
            ngser.save({"warm": [1.0]}, folder / f"warm{ext}")
            ngser.load(folder / f"warm{ext}")
            (folder / f"warm{ext}").unlink()


def as_nobody(run: Callable[[], Any], folder: Path) -> Any:
    """``run()`` in a forked child running as uid/gid 65534; returns its result, or raises
    ``AssertionError`` with the child's exception. Runs ``run()`` here when not root."""
    if not ROOT:
        return run()
    _warm_up(folder)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read)
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                result: Any = ("ok", run())
            except BaseException as exc:
                result = ("raised", type(exc).__name__, str(exc))
            with os.fdopen(write, "wb") as stream:
                pickle.dump(result, stream)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        data = stream.read()
    os.waitpid(pid, 0)
    outcome = pickle.loads(data)
    assert outcome[0] == "ok", f"the child running as user {NOBODY} raised {outcome[1]}: {outcome[2]}"
    return outcome[1]


def test_switching_to_another_user_works_here(shared: Path) -> None:
    """The harness itself: the child really is another user, for whom a 0444 file is read-only."""
    path = shared / "ro.txt"
    path.write_text("x")
    path.chmod(0o444)

    def child() -> tuple[int, bool, str]:
        try:
            open(path, "wb").close()
            refused = "no"
        except PermissionError:
            refused = "yes"
        return os.geteuid(), os.access(path, os.W_OK), refused

    uid, writable, refused = as_nobody(child, shared)
    assert (writable, refused) == (False, "yes")
    assert uid == (NOBODY if ROOT else os.geteuid())


# -- 1. read-only files ------------------------------------------------------------------------


def test_a_read_only_file_is_refused_for_a_non_root_user(shared: Path, fmt: str) -> None:
    path = shared / f"ro{EXTENSION[fmt]}"
    ngser.save({"generation": "old"}, path)
    if ROOT:
        os.chown(path, NOBODY, NOBODY)  # the user's own file, made read-only with chmod a-w
    path.chmod(0o444)
    old = path.read_bytes()
    before = sorted(p.name for p in shared.iterdir())

    def child() -> tuple[str, str]:
        try:
            ngser.save({"generation": "new"}, path)
        except ngser.FileAccessError as exc:
            return "FileAccessError", str(exc)
        return "saved", ""

    outcome, message = as_nobody(child, shared)
    assert outcome == "FileAccessError", "a read-only file was replaced"
    assert str(path) in message and "read-only" in message and "chmod" in message
    assert path.read_bytes() == old and stat.S_IMODE(path.stat().st_mode) == 0o444
    assert sorted(p.name for p in shared.iterdir()) == before, "something was written"


def test_a_read_only_file_is_not_refused_through_a_symlink_to_a_writable_file(shared: Path) -> None:
    """The permission that counts is the file's, not the link's."""
    (shared / "real.msgpack").write_bytes(b"")
    (shared / "real.msgpack").chmod(0o666)
    (shared / "link.msgpack").symlink_to("real.msgpack")
    as_nobody(lambda: ngser.save([1], shared / "link.msgpack"), shared)
    assert ngser.load(shared / "real.msgpack") == [1]


@needs_root
def test_root_replaces_a_read_only_file_as_open_would(tmp_path: Path) -> None:
    path = tmp_path / "ro.msgpack"
    ngser.save(1, path)
    path.chmod(0o444)
    ngser.save(2, path)  # os.access (like open) lets root write any file
    assert ngser.load(path) == 2 and stat.S_IMODE(path.stat().st_mode) == 0o444


# -- 2. symbolic links -------------------------------------------------------------------------


def _save_recording(path: Path, data: bytes) -> str:
    """Save ``data`` through :func:`atomic.atomic_write`; returns the temporary file's folder."""
    seen = []

    def write(temp: str) -> None:
        seen.append(os.path.dirname(temp))
        with open(temp, "wb") as stream:
            stream.write(data)

    atomic.atomic_write(path, write)
    return seen[0]


def test_saving_through_a_symlink_to_another_folder_writes_the_file_it_points_to(tmp_path: Path, fmt: str) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    real = there / f"data{EXTENSION[fmt]}"
    ngser.save({"generation": "old"}, real)
    real.chmod(0o640)
    link = here / f"link{EXTENSION[fmt]}"
    link.symlink_to(f"../there/{real.name}")
    ngser.save({"generation": "new"}, link)
    assert link.is_symlink() and os.readlink(link) == f"../there/{real.name}"
    assert ngser.load(real) == {"generation": "new"} == ngser.load(link)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert _save_recording(link, b"bytes") == str(there), "the temporary file was not made beside the target"
    assert real.read_bytes() == b"bytes"
    assert _leftovers(here, there) == []


def test_saving_through_a_chain_of_symlinks(tmp_path: Path) -> None:
    a, b, c = (tmp_path / name for name in "abc")
    for folder in (a, b, c):
        folder.mkdir()
    real = c / "data.msgpack"
    ngser.save("old", real)
    (b / "second.msgpack").symlink_to("../c/data.msgpack")  # relative, to a third folder
    (a / "first.msgpack").symlink_to(b / "second.msgpack")  # absolute
    ngser.save("new", a / "first.msgpack")
    assert os.readlink(a / "first.msgpack") == str(b / "second.msgpack")
    assert os.readlink(b / "second.msgpack") == "../c/data.msgpack"
    assert ngser.load(real) == "new"
    assert _save_recording(a / "first.msgpack", b"x") == str(c)
    assert _leftovers(a, b, c) == []


def test_saving_through_a_dangling_symlink_creates_the_file_it_points_to(tmp_path: Path) -> None:
    (tmp_path / "there").mkdir()
    link = tmp_path / "link.msgpack"
    link.symlink_to("there/new.msgpack")
    ngser.save([1, 2], link)
    assert link.is_symlink() and os.readlink(link) == "there/new.msgpack"
    assert ngser.load(tmp_path / "there" / "new.msgpack") == [1, 2]
    assert stat.S_IMODE((tmp_path / "there" / "new.msgpack").stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_symlink_into_a_missing_folder_or_a_loop_is_an_error_and_stays(tmp_path: Path) -> None:
    dangling = tmp_path / "dangling.msgpack"
    dangling.symlink_to("no/such/folder/file.msgpack")
    with pytest.raises(ngser.FileAccessError, match="cannot create a file in"):
        ngser.save(1, dangling)
    assert os.readlink(dangling) == "no/such/folder/file.msgpack"
    (tmp_path / "loop1.msgpack").symlink_to("loop2.msgpack")
    (tmp_path / "loop2.msgpack").symlink_to("loop1.msgpack")
    with pytest.raises(ngser.FileAccessError, match="symbolic links"):
        ngser.save(1, tmp_path / "loop1.msgpack")
    assert os.readlink(tmp_path / "loop1.msgpack") == "loop2.msgpack"
    assert os.readlink(tmp_path / "loop2.msgpack") == "loop1.msgpack"
    (tmp_path / "folder").mkdir()
    (tmp_path / "to-folder.msgpack").symlink_to("folder")
    with pytest.raises(ngser.FileAccessError, match="is a folder"):
        ngser.save(1, tmp_path / "to-folder.msgpack")
    assert (tmp_path / "to-folder.msgpack").is_symlink()
    assert _leftovers(tmp_path) == []


# -- 3. setuid and setgid ----------------------------------------------------------------------


@pytest.mark.parametrize(("before", "after"), [(0o6755, 0o755), (0o4700, 0o700), (0o2640, 0o640), (0o1644, 0o644)])
def test_setuid_setgid_and_sticky_bits_are_not_copied(tmp_path: Path, fmt: str, before: int, after: int) -> None:
    path = tmp_path / f"mode{EXTENSION[fmt]}"
    ngser.save(1, path)
    path.chmod(before)
    assert stat.S_IMODE(path.stat().st_mode) == before
    ngser.save(2, path)
    assert stat.S_IMODE(path.stat().st_mode) == after
    assert ngser.load(path) == 2


# -- 4. owner and group ------------------------------------------------------------------------


@needs_root
def test_root_saving_a_users_file_keeps_its_owner_and_group(shared: Path, fmt: str) -> None:
    path = shared / f"users{EXTENSION[fmt]}"
    ngser.save({"generation": "old"}, path)
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o600)
    ngser.save({"generation": "new"}, path)
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o600)
    assert as_nobody(lambda: ngser.load(path), shared) == {"generation": "new"}, "the user was locked out"


@needs_root
def test_a_user_saving_someone_elses_writable_file_becomes_its_owner(shared: Path) -> None:
    """chown is refused to non-root users: the new file is the saver's, as with vim; its group
    keeps no more permissions than the old file gave both its group and everyone else."""
    path = shared / "roots.msgpack"
    ngser.save({"generation": "old"}, path)
    path.chmod(0o676)  # root:root; writable for "other", so user 65534 may save it
    as_nobody(lambda: ngser.save({"generation": "new"}, path), shared)
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o666)
    assert ngser.load(path) == {"generation": "new"}


# -- 5. temporary files of other writers -------------------------------------------------------


def _dead_pid() -> int:
    """A process id that no process has now (as a writer in another PID namespace looks from here)."""
    with open("/proc/sys/kernel/pid_max") as stream:
        top = int(stream.read())
    for pid in range(top - 1, 1, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free process id")


#: A writer whose temporary file carries the process id ``argv[2]``, not its own: seen from
#: here, it is a writer in another PID namespace (another container on the same kernel and
#: host name). It writes part of the file, says so, and finishes when told.
FOREIGN_WRITER = textwrap.dedent(
    """
    import os, sys
    from ngser import atomic
    path, pid = sys.argv[1], int(sys.argv[2])
    os.getpid = lambda: pid
    def write(temp):
        with open(temp, "wb") as stream:
            stream.write(b"first half,")
            stream.flush()
            print("writing", os.path.basename(temp), flush=True)
            sys.stdin.readline()
            stream.write(b" second half")
    atomic.atomic_write(path, write)
    print("saved", flush=True)
    """
)


def _start_foreign_writer(path: Path, pid: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FOREIGN_WRITER, str(path), str(pid)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["writing"], f"the writer did not start: {line}"
    assert f"-{pid}." in line[1]
    return proc, line[1]


def _finish(proc: subprocess.Popen[str]) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = proc.stdout.read()
    proc.wait(timeout=30)
    return out


def test_a_live_writer_in_another_pid_namespace_keeps_its_temporary_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"shared{EXTENSION[fmt]}"
    ngser.save({"generation": "old"}, path)
    proc, temp = _start_foreign_writer(path, _dead_pid())
    try:
        ngser.save({"generation": "mine"}, path)  # cleans up stale temporary files first
        assert (tmp_path / temp).exists(), "the temporary file of a running save was deleted"
        assert ngser.load(path) == {"generation": "mine"}
        out = _finish(proc)
    finally:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == 0 and out.strip() == "saved", "the other writer's save failed"
    assert path.read_bytes() == b"first half, second half"
    assert _leftovers(tmp_path) == []


def test_temporary_files_of_killed_writers_are_removed_whatever_their_process_id(tmp_path: Path) -> None:
    """A writer killed with SIGKILL leaves its files; the next save removes them, also when the
    process id in their name belongs to a live process here (PID 1 in another container)."""
    path = tmp_path / "data.msgpack"
    ngser.save("old", path)
    writers = [_start_foreign_writer(path, pid) for pid in (_dead_pid(), 1)]  # both running at once
    for proc, _ in writers:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert all((tmp_path / temp).exists() for _, temp in writers)
    ngser.save("new", path)
    assert _leftovers(tmp_path) == [], "temporary files of killed writers were left behind"
    assert ngser.load(path) == "new"


def test_temporary_files_without_a_lock_file_fall_back_to_the_process_id(tmp_path: Path) -> None:
    """Files of writers that took no lock (older ngser versions): removed only when no process
    with the id in their name exists here."""
    path = tmp_path / "data.msgpack"
    ngser.save("old", path)
    host = atomic._host_tag()
    dead = tmp_path / f".data.msgpack.{host}-{_dead_pid()}.abc123.ngser-tmp"
    alive = tmp_path / f".data.msgpack.{host}-{os.getpid()}.abc123.ngser-tmp"
    elsewhere = tmp_path / f".data.msgpack.{int(host, 16) ^ 1:08x}-{_dead_pid()}.abc123.ngser-tmp"
    for temp in (dead, alive, elsewhere):
        temp.write_bytes(b"partial")
    ngser.save("new", path)
    assert _leftovers(tmp_path) == sorted([alive.name, elsewhere.name])


def _descriptors() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_every_format_saves_with_the_lock_held_and_leaks_no_descriptor(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"data{EXTENSION[fmt]}"
    ngser.save({"warm": 1}, path)
    before = _descriptors()
    for generation in range(3):
        ngser.save({"generation": generation, "values": list(range(1000))}, path)
    assert ngser.load(path)["generation"] == 2
    assert _descriptors() == before
    assert _leftovers(tmp_path) == []
