"""What ties every process we start (model copies, the compile process) to the run.

The kernel does the work, so it holds whatever the process is doing, even inside a C call that
never releases the GIL (where no Python thread or signal handler runs again):

- ``PR_SET_PDEATHSIG``: SIGKILL when the parent (the forkserver) dies. The forkserver lives
  exactly as long as pytest once each child lets go of the forkserver's "alive" pipe, which
  every forked child inherits and which would otherwise keep the forkserver (and so the child)
  alive after pytest is gone.
- ``PR_SET_CHILD_SUBREAPER``: a process the child's descendants leave behind (a daemon that
  called ``setsid()``) is re-parented to the child, not to init, so it stays in the child's
  tree, which the parent kills as a whole.

Linux only; elsewhere :func:`tie_to_parent` only lets go of the forkserver pipe.

What the child itself started is not covered by the kernel when the parent dies: a thread that
reads the parent's pipe (the model copy's parent link, :func:`watch_parent` in the compile
process) ends those descendants when the pipe closes, if it gets to run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import psutil

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_GONE_EXIT_CODE = 3


def start(target: Callable[..., None], origin_pid: int, conn: Connection, payload: bytes) -> None:
    """Entry point of every child: tie it to the run, then unpickle its arguments and run it.

    The arguments travel pickled so that nothing they import (a user's pre/post-process module,
    a framework for tensors) runs before the child is tied to its parent.
    """
    tie_to_parent(origin_pid)
    target(conn, *pickle.loads(payload))


def tie_to_parent(origin_pid: int) -> None:
    """Die with the parent, by the kernel; exit now if the run is already gone."""
    parent = os.getppid()
    prctl = _libc_prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _release_forkserver()
    # the parent may have died before the death signal was armed: then it never comes
    if os.getppid() != parent or not _alive(origin_pid):
        os._exit(PARENT_GONE_EXIT_CODE)


def end_descendants() -> None:
    """SIGKILL every process this one started (and what they started, or left to it)."""
    if not _has_children():
        return  # the usual case, without importing psutil (30 ms) or reading /proc

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()


def watch_parent(conn: Connection) -> None:
    """For a child that never reads its pipe: end its descendants and exit when it closes."""

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                conn.recv_bytes()
        end_descendants()
        os._exit(PARENT_GONE_EXIT_CODE)

    threading.Thread(target=watch, daemon=True, name="neuronperf-parent-watch").start()


def _has_children() -> bool:
    """Whether this process has a child, running or exited (one system call).

    A subreaper has a descendant only if it has a child: orphans are re-parented to it.
    """
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    # the interpreter's own symbols include libc's (find_library would run ldconfig: ~10 ms)
    libc = ctypes.CDLL(None, use_errno=True)
    prctl: Callable[..., int] = libc.prctl
    return prctl


def _release_forkserver() -> None:
    """Close the forkserver's "alive" pipe this child inherited (it never uses it)."""
    forkserver: Any = sys.modules.get("multiprocessing.forkserver")
    server: Any = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None and getattr(server, "_forkserver_pid", None) is None:
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie (exited, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): a signal that reached it is all we know
    return state not in (b"Z", b"X")
