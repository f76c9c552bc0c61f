"""Atomic file replacement: a failed save never damages the file that was there."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import threading
import zlib
from collections.abc import Callable
from typing import Any

from .errors import FileAccessError

if os.name == "posix":
    import fcntl

__all__ = ["atomic_write"]

TEMP_SUFFIX = ".ngser-tmp"
#: Each temporary file has a lock file beside it, flock()ed by its writer for the whole save.
LOCK_SUFFIX = ".ngser-lock"

#: Temporary files are named ``.NAME.HOST-PID.RANDOM.ngser-tmp`` (and their lock files
#: ``.NAME.HOST-PID.RANDOM.ngser-lock``): HOST is 8 hex digits, a hash of the host name.
_TEMP_TAG = re.compile(r"([0-9a-f]{8})-([0-9]+)\.[A-Za-z0-9_]+")


def _host_tag() -> str:
    import socket  # 3 ms of ``import ngser``: only when a file is saved

    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Call ``write(temp_path)``, then move the finished file over ``path``.

    A symbolic link is followed (through any chain of links): the file it points to is
    replaced, or created if missing, and the link stays. The temporary file lives in that
    file's folder (so the final rename stays on one file system), is flushed to disk with
    fsync before the rename, and is removed if anything fails, including
    ``KeyboardInterrupt``. The new file gets the owner, group and permission bits of the
    file it replaces as far as the saving user may set them (never setuid, setgid or
    sticky), or the umask's default for a new file. A file this process may not write
    (``os.access``) is refused with :class:`FileAccessError`, as ``open(path, "wb")`` would.
    """
    target = _resolve(os.path.abspath(os.fspath(path)))
    folder = os.path.dirname(target)
    old = _stat(target)
    if old is not None and stat.S_ISDIR(old.st_mode):
        raise FileAccessError(f"{target}: is a folder; give a file name to save to")
    if old is not None and not _may_write(target):
        raise FileAccessError(_read_only_message(target, old))
    remove_stale_temps(target)
    temp, lock = _create_temp(target, f".{os.path.basename(target)}.{_host_tag()}-{os.getpid()}.")
    held = None
    try:
        write(temp)
        _fsync(temp)
        _copy_owner_and_mode(temp, old)
        held = _hold(target)
        os.replace(temp, target)
    except BaseException as exc:
        _release(held)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError) and not isinstance(exc, FileAccessError):
            raise FileAccessError(
                f"{target}: saving failed: {exc.strerror or exc}; the previous file, if any, is unchanged"
            ) from exc
        raise
    finally:
        _unlock(lock)
    _fsync_dir(folder)
    _release(held, later=True)


# -- the file a path names ---------------------------------------------------------------------


def _resolve(path: str) -> str:
    """``path`` with every symbolic link resolved (a dangling one to the path it names)."""
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath stops at a loop, and returns a link
        raise FileAccessError(f"{path}: a loop of symbolic links; point the link at a file")
    return target


def _stat(target: str) -> os.stat_result | None:
    try:
        return os.stat(target)
    except OSError:
        return None


def _may_write(target: str) -> bool:
    """Whether this process may write ``target``, as ``open(target, "wb")`` decides
    (with the effective user and group; root may write any file)."""
    if os.access in os.supports_effective_ids:
        return os.access(target, os.W_OK, effective_ids=True)
    return os.access(target, os.W_OK)


def _read_only_message(target: str, old: os.stat_result) -> str:
    with contextlib.suppress(OSError, AttributeError):
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return f"{target}: the file is on a read-only file system; save to another path"
    return (
        f"{target}: the file is read-only for this user ({stat.filemode(old.st_mode)}, owner uid {old.st_uid}); "
        f"ngser does not replace a file you may not write, as open(path, 'wb') would not: make it writable "
        f"first (its owner can: chmod u+w {target}) or save to another path"
    )


def _copy_owner_and_mode(temp: str, old: os.stat_result | None) -> None:
    """Give the new file ``temp`` the owner, group and permission bits (``0o777``) of the
    file it replaces.

    Only root may give a file away: for other users the new file stays theirs (as with
    vim), keeping the old group if they belong to it. Where the group cannot be kept
    either, the group bits become those both the old group and everyone else had, so no
    member of the saver's group gains access the old file did not give them.
    """
    if old is None:
        os.chmod(temp, 0o666 & ~_umask())
        return
    mode = old.st_mode & 0o777
    new = os.stat(temp)
    if os.name == "posix" and (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        try:
            os.chown(temp, old.st_uid, old.st_gid)
        except OSError:
            try:
                os.chown(temp, -1, old.st_gid)
            except OSError:
                mode = (mode & ~0o070) | (mode & (mode << 3) & 0o070)
    os.chmod(temp, mode)


# -- temporary files and their locks -----------------------------------------------------------


def _create_temp(target: str, prefix: str) -> tuple[str, tuple[int, str] | None]:
    """Create the temporary file ``PREFIX.RANDOM.ngser-tmp`` beside ``target``; returns its path
    and its lock file's descriptor and path (``None`` on Windows), flock()ed and kept
    open until :func:`_unlock` after the rename.

    The lock file is made and locked first, so that any cleaner that sees the temporary
    file finds it locked. It is a separate file because HDF5 flock()s the file it writes:
    a lock of ours on the temporary file itself would make every HDF5 save fail.
    """
    folder = os.path.dirname(target)
    try:
        if os.name != "posix":
            fd, temp = _mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=folder)
            os.close(fd)
            return temp, None
        for _ in range(100):
            fd, lock = _mkstemp(prefix=prefix, suffix=LOCK_SUFFIX, dir=folder)
            temp = lock[: -len(LOCK_SUFFIX)] + TEMP_SUFFIX
            if _lock(fd, lock):
                try:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                    os.close(os.open(temp, flags, 0o600))
                    return temp, (fd, lock)
                except FileExistsError:  # a temporary file of an older ngser with the same name
                    pass
                except BaseException:
                    _unlock((fd, lock))
                    raise
            _unlock((fd, lock))
    except OSError as exc:
        raise FileAccessError(f"{target}: cannot create a file in {folder}: {exc.strerror or exc}") from exc
    raise FileAccessError(f"{target}: cannot create a temporary file in {folder} (names taken)")


def _mkstemp(prefix: str, suffix: str, dir: str) -> tuple[int, str]:
    import tempfile  # 5 ms of ``import ngser`` (shutil, lzma, bz2, random): only when a file is saved

    return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=dir)


def _lock(fd: int, lock: str) -> bool:
    """Lock the new lock file ``fd``; False if a cleaner got to it first (it may be gone)."""
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o644)  # any user's cleaner may test the lock (holds nothing)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # no locks on this file system: cleaners fall back to the process id
    return _names(fd, lock)


def _names(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except OSError:
        return False


def _unlock(lock: tuple[int, str] | None) -> None:
    """Remove a lock file of :func:`_create_temp` (while still locked), then close it."""
    if lock is None:
        return
    fd, path = lock
    if _names(fd, path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    _close_quietly(fd)


def remove_stale_temps(target: str) -> list[str]:
    """Remove the temporary files (and their lock files) that earlier saves of ``target`` left
    behind because their process was killed (SIGKILL, out-of-memory killer, power loss);
    returns their paths.

    Only files of this host name are considered, since another machine sharing the folder
    (NFS) may be saving now. Of those, a file is kept while its lock file is locked, which
    any live writer on this kernel does, whatever its PID namespace (containers sharing a
    volume). Where the lock cannot be tested (no lock file: a save of an older ngser; no
    locks on the file system), a file is kept while a process with the id in its name exists.
    """
    if os.name != "posix":
        return []
    folder, base = os.path.split(target)
    prefix = f".{base}."
    host = _host_tag()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    writers: dict[str, int] = {}  # RANDOM tag -> process id
    for name in names:
        for suffix in (TEMP_SUFFIX, LOCK_SUFFIX):
            if name.startswith(prefix) and name.endswith(suffix):
                match = _TEMP_TAG.fullmatch(name[len(prefix) : -len(suffix)])
                if match is not None and match.group(1) == host:
                    writers[match.group(0)] = int(match.group(2))
    removed = []
    for tag, pid in sorted(writers.items()):
        stem = os.path.join(folder, prefix + tag)
        removed += _remove_if_gone(stem + TEMP_SUFFIX, stem + LOCK_SUFFIX, pid)
    return removed


def _remove_if_gone(temp: str, lock: str, pid: int) -> list[str]:
    """Remove ``temp`` and ``lock`` unless their writer may still be running."""
    fd = None
    with contextlib.suppress(OSError):
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        gone = _unlocked(fd) if fd is not None else None
        if gone is False or (gone is None and _alive(pid)):
            return []
        removed = []
        for path in (temp, lock):  # the lock file last, while we hold its lock
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
        return removed
    finally:
        if fd is not None:
            _close_quietly(fd)


def _unlocked(fd: int) -> bool | None:
    """Whether no process holds the lock of the lock file ``fd`` (``None``: cannot tell).

    A shared lock is enough to see a writer's exclusive one, and it works on a descriptor
    opened read-only, so a cleaner may test the lock files of other users' saves.
    """
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


#: Replaced files at least this large are released on a helper thread (see :func:`_hold`).
RELEASE_LATER = 16 * 2**20


def _hold(target: str) -> int | None:
    """An open descriptor of the file ``target`` names now, if it is large (POSIX only).

    Replacing a file frees its blocks and cached pages inside ``rename``: about 35 ms per
    200 MB on ext4, on the caller's time. Holding the old file open moves that work to the
    last ``close``, which :func:`_release` runs on a helper thread once the new file is in
    place. Nothing is left behind: the old file has no name any more, and if the process
    ends first the kernel closes the descriptor.
    """
    if os.name != "posix":  # Windows cannot replace a file that is open
        return None
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(target, flags)  # O_NONBLOCK: opening a FIFO must not wait for a writer
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size >= RELEASE_LATER:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _release(fd: int | None, later: bool = False) -> None:
    """Close a descriptor from :func:`_hold`, on a helper thread when ``later``."""
    if fd is None:
        return
    if later:
        threading.Thread(target=_close_quietly, args=(fd,), name="ngser-release", daemon=True).start()
    else:
        _close_quietly(fd)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
