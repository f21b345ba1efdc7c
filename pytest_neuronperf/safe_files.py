"""How a file is written safely: the one place every writer in the package goes through.

- ``write_text`` / ``write_bytes`` replace a regular file in one step (a temp file in the same
  folder, ``fsync``, ``os.replace``, ``fsync`` of the folder), so a reader sees the old content or
  the new, never half a file, and an interrupted or killed writer leaves the old file whole. A
  character device or FIFO (``/dev/null``, a pipe to another program) is written *into*, never
  renamed over; a block device, socket or folder is refused. A read-only file is refused instead
  of being replaced behind its mode's back. A symbolic link is followed (the link stays a link)
  only when its target's folder exists: nothing is created outside the link's folder silently.
- ``copy_atomically`` / ``publish`` put a finished file or folder in place so that the target
  appears complete or not at all.
- ``exclusive_lock`` / ``locked`` are the one cross-process lock (``filelock``: ``flock`` on Unix).
  A waiter says who holds the lock after ``notice_after`` seconds and gives up after
  ``give_up_after`` with an error naming the holder.

Where lock files live, and why they are never deleted: a ``flock`` lock belongs to the file's
inode, not its name. Deleting a lock file on release lets a waiter that already opened the old
inode lock it while a newcomer creates and locks a new file under the same name: two holders
(filelock 3.20.4-3.29.4 did this and reverted it). So the lock file stays, but out of sight:
``locked(file)`` uses ``.neuronperf-locks/<name>.lock`` in the file's own folder (with a
``.gitignore`` so it never shows in ``git status``). It stays on the file's filesystem on purpose:
a lock in the system temp folder would not be shared by containers or machines that share the
folder (parallel CI jobs on one disk, NFS). While held, ``<lock>.holder`` names the holding
process; it is removed on release (it is information, not the lock, so removing it is safe).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import filelock
import psutil

LOCK_FOLDER = ".neuronperf-locks"
"""The folder, beside the files it guards, that holds their lock files."""
CACHE_FOLDER = ".neuronperf-cache"
"""The plugin's cache under the rootdir: base revisions' trees, compiled artifacts."""
NOTICE_AFTER_S = 5.0
"""A waiter for a held lock says who holds it after this long..."""
GIVE_UP_AFTER_S = 120.0
"""...and gives up after this long (a save holds its lock for milliseconds)."""
FIFO_WAIT_S = 10.0
"""How long a FIFO may go without a reader before writing into it is given up."""

PathLike = str | os.PathLike[str]


class RefusedWrite(OSError):
    """A file this module will not write; the message names it and says what to do."""


class LockTimeout(TimeoutError):
    """A lock was held by another process for longer than the caller would wait."""


# --- Writing ---------------------------------------------------------------------------------


def write_text(path: PathLike, text: str, *, new_mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` safely (see the module docstring); the file written."""
    return write_bytes(path, text.encode("utf-8"), new_mode=new_mode)


def write_bytes(path: PathLike, data: bytes, *, new_mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` safely; returns the file written (a link's target).

    A new file gets ``new_mode`` (default: what ``open()`` gives under the umask); a replaced
    file keeps its mode.
    """
    special = special_file(path)
    if special is not None:
        _write_into(Path(path), data, special)
        return Path(path)
    target = resolve(path)
    mode = _replaceable_mode(target)
    _replace(target, data, new_mode if mode is None else mode)
    return target


def special_file(path: PathLike) -> str | None:
    """``"character device"`` or ``"FIFO"`` when ``path`` is one (links followed), else None."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISDIR(mode):
        raise RefusedWrite(f"{path} is a folder: give a file name inside it.")
    if not stat.S_ISREG(mode):
        kind = "block device" if stat.S_ISBLK(mode) else "socket" if stat.S_ISSOCK(mode) else (
            "special file")
        raise RefusedWrite(f"{path} is a {kind}, not a file pytest-neuronperf writes: "
                           "give a regular file's path.")
    return None


def resolve(path: PathLike) -> Path:
    """The real file ``path`` names; a symbolic link whose target's folder is missing is refused.

    Following such a link would create files outside the link's folder without saying so.
    """
    given = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    if real != given and not real.parent.is_dir():
        raise RefusedWrite(
            f"{path} is a symbolic link to {real}, whose folder {real.parent} does not exist: "
            f"create {real.parent}, or point the option at a regular file instead of the link."
        )
    return real


def check_replaceable(path: PathLike) -> Path:
    """Raise ``RefusedWrite`` now if writing ``path`` later would be refused; the real file."""
    if special_file(path) is not None:
        return Path(path)
    target = resolve(path)
    _replaceable_mode(target)
    return target


def _replaceable_mode(target: Path) -> int | None:
    """The mode of an existing ``target`` (None if new); a read-only file is refused."""
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return None
    if not mode & 0o222 or not os.access(target, os.W_OK):
        raise RefusedWrite(
            f"{target} is read-only (mode {mode & 0o777:04o}); it was left untouched: make it "
            f"writable (chmod u+w {target}) to replace it."
        )
    return mode


def _replace(target: Path, data: bytes, mode: int | None) -> None:
    """Same-folder temp file, fsync, rename over ``target``, fsync of the folder."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    fsync_folder(target.parent)


def _write_into(path: Path, data: bytes, kind: str) -> None:
    """Write into a character device or FIFO (never create, truncate or rename it).

    A FIFO is opened without blocking, retried for ``FIFO_WAIT_S`` until a reader opens it: a
    FIFO nobody reads gives an error instead of a run that never ends.
    """
    flags = os.O_WRONLY | (os.O_NONBLOCK if kind == "FIFO" else 0)
    deadline = time.monotonic() + FIFO_WAIT_S
    while True:
        try:
            fd = os.open(path, flags)
            break
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
            if time.monotonic() > deadline:
                raise RefusedWrite(
                    f"{path} is a FIFO that no process opened for reading within "
                    f"{FIFO_WAIT_S:.0f} s: start the reader first."
                ) from None
            time.sleep(0.05)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every filesystem allows it)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def copy_atomically(source: Path, target: Path) -> Path:
    """Copy a file or folder so that ``target`` appears complete or not at all."""
    scratch = scratch_path(target)
    try:
        if source.is_dir():
            shutil.copytree(source, scratch)
        else:
            shutil.copy2(source, scratch)
        publish(scratch, target)
    except BaseException:
        remove(scratch)
        raise
    return target


def scratch_path(target: Path, suffix: str = "") -> Path:
    """A unique hidden name beside ``target`` to build it under before :func:`publish`."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp{suffix}")


def publish(scratch: Path, target: Path) -> None:
    """Move a finished file or folder into place, replacing an older ``target``."""
    if not scratch.is_dir() or scratch.is_symlink():
        os.replace(scratch, target)
        fsync_folder(target.parent)
        return
    aside = None
    if target.exists() or target.is_symlink():
        aside = scratch_path(target, ".old")
        os.rename(target, aside)
    os.rename(scratch, target)
    fsync_folder(target.parent)
    if aside is not None:
        remove(aside)


def remove_leftovers(target: Path) -> None:
    """Delete temp files a killed writer left beside ``target``; call only under the lock
    every writer of ``target`` takes (then no live writer has one)."""
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):
        remove(leftover)


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with suppress(OSError):
            path.unlink()


# --- Locking ---------------------------------------------------------------------------------


def lock_path_for(file: Path) -> Path:
    """Where the lock of ``file``'s writers lives: ``.neuronperf-locks/<name>.lock`` beside it."""
    return file.parent / LOCK_FOLDER / f"{file.name}.lock"


@contextmanager
def locked(
    file: Path,
    *,
    notice_after: float | None = NOTICE_AFTER_S,
    give_up_after: float | None = GIVE_UP_AFTER_S,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the lock every writer of ``file`` takes (see :func:`exclusive_lock`)."""
    lock_file = lock_path_for(file)
    with exclusive_lock(lock_file, notice_after=notice_after, give_up_after=give_up_after,
                        on_wait=on_wait, guarding=file):
        yield


@contextmanager
def exclusive_lock(
    lock_file: Path,
    *,
    notice_after: float | None = None,
    give_up_after: float | None = None,
    on_wait: Callable[[str], None] | None = None,
    guarding: Path | None = None,
    name_holder: bool = True,
) -> Iterator[None]:
    """Hold an exclusive cross-process lock on ``lock_file`` (created, never deleted).

    Waits without limit when ``give_up_after`` is None; otherwise ``on_wait`` is told who holds
    the lock after ``notice_after`` seconds and ``LockTimeout`` is raised after
    ``give_up_after``. The lock is released when the block ends, or by the kernel when the
    process dies. ``name_holder=False`` skips the holder note (locks nobody waits on with a
    limit: the note is for the waiter's message).
    """
    lock = filelock.FileLock(str(lock_file))
    _acquire(lock, lock_file, notice_after, give_up_after, on_wait, guarding or lock_file)
    holder = Path(f"{lock_file}.holder")
    try:
        if name_holder:
            _note_holder(holder)
        yield
    finally:
        if name_holder:
            with suppress(OSError):
                holder.unlink()
        lock.release()


def _note_holder(holder: Path) -> None:
    """Say who holds the lock, for waiters (a plain small write: information, not the lock;
    a waiter that reads it half-written says "another process")."""
    with suppress(OSError):
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(holder, flags, 0o666)  # no link planted in a shared folder is followed
        with os.fdopen(fd, "w") as stream:
            stream.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))


def _acquire(
    lock: object,
    lock_file: Path,
    notice_after: float | None,
    give_up_after: float | None,
    on_wait: Callable[[str], None] | None,
    guarding: Path,
) -> None:
    """Take ``lock``, telling ``on_wait`` who holds it after ``notice_after`` seconds."""
    assert isinstance(lock, filelock.BaseFileLock)
    if give_up_after is None:
        _take(lock, lock_file, None)
        return
    first = give_up_after if notice_after is None else min(notice_after, give_up_after)
    try:
        _take(lock, lock_file, first)
        return
    except filelock.Timeout:
        if first >= give_up_after:
            raise _timeout(lock_file, give_up_after, guarding) from None
    if on_wait is not None:
        on_wait(f"waiting for the lock on {guarding} ({lock_file}), held by "
                f"{holder_of(lock_file)}; giving up after {give_up_after:.0f} s")
    try:
        _take(lock, lock_file, give_up_after - first)
    except filelock.Timeout:
        raise _timeout(lock_file, give_up_after, guarding) from None


def _take(lock: object, lock_file: Path, timeout: float | None) -> None:
    """``lock.acquire`` that re-creates the lock's folder if someone removed it meanwhile."""
    for _ in range(100):
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        if lock_file.parent.name == LOCK_FOLDER:
            ignore_in_git(lock_file.parent, LOCK_NOTE)
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)  # type: ignore[attr-defined]
            return
        except FileNotFoundError:
            continue  # the folder was removed between mkdir and open: make it again
    raise FileNotFoundError(errno.ENOENT, "the lock's folder keeps disappearing", str(lock_file))


def _timeout(lock_file: Path, waited: float, guarding: Path) -> LockTimeout:
    return LockTimeout(
        f"gave up after {waited:.0f} s waiting for the lock on {guarding}, held by "
        f"{holder_of(lock_file)}: wait for that process to finish or stop it, then run again "
        f"(a lock held by a process that has ended is released by the system)."
    )


def holder_of(lock_file: Path) -> str:
    """Who holds ``lock_file``, as its holder note says: ``process 123 (cmd)`` or a vaguer text."""
    try:
        note = json.loads(Path(f"{lock_file}.holder").read_text())
        pid, host = int(note["pid"]), str(note["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
    if host != socket.gethostname():
        return f"process {pid} on host {host}"

    if not psutil.pid_exists(pid):
        return "another process"
    return f"process {pid}" + _command_of(pid)


def _command_of(pid: int) -> str:
    """`` (its command line)`` where ``/proc`` shows it, else nothing."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    command = " ".join(raw.replace(b"\0", b" ").decode("utf-8", "replace").split())
    return f" ({command[:120]})" if command else ""


LOCK_NOTE = "pytest-neuronperf locks (safe to delete when no run is active)"
CACHE_NOTE = "pytest-neuronperf cache: base revisions and compiled models (safe to delete)"


def cache_folder(rootdir: PathLike) -> Path:
    """The plugin's cache folder under ``rootdir``, created, and hidden from ``git status``."""
    folder = Path(rootdir) / CACHE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    ignore_in_git(folder, CACHE_NOTE)
    return folder


def ignore_in_git(folder: Path, note: str) -> None:
    """A ``.gitignore`` in ``folder`` that hides it, and all it holds, from ``git status``."""
    ignore = folder / ".gitignore"
    if ignore.exists():
        return
    with suppress(FileExistsError, OSError):
        fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w") as stream:
            stream.write(f"# {note}\n*\n")
