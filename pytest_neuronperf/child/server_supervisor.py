"""The process between the run and a server command it starts (``engine.server_command``).

Run as ``python -m pytest_neuronperf.child.server_supervisor ORIGIN_PID GRACE -- COMMAND...``. It
ties itself to the run by the kernel, as model copies are (``lifeline``), except that the death
signal is SIGTERM, which it can answer:

- ``PR_SET_CHILD_SUBREAPER``: whatever the server starts and leaves behind (workers, a daemon
  that called ``setsid()``) is re-parented here, so every process of the server stays a
  descendant of this one;
- ``PR_SET_PDEATHSIG`` = SIGTERM: when the run dies, even by SIGKILL, the kernel tells this
  process, which kills every descendant and exits.

SIGTERM, SIGINT and SIGHUP all end it that way: SIGTERM to every descendant, SIGKILL to those
left after GRACE seconds. When the command exits by itself, what it left is killed too and its
exit code is this process's. Nothing of the plugin but ``lifeline`` is imported (a server's
start must not wait on it); psutil is imported at start, never inside the signal handler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from types import FrameType

import psutil

from pytest_neuronperf.child import lifeline

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
grace_s = 3.0
"""Seconds the server's processes get between SIGTERM and SIGKILL (set from the command line)."""


def main(argv: list[str]) -> int:
    """Start the command under this process; end everything it started when told to stop."""
    global grace_s
    origin, grace, separator, *command = argv
    if separator != "--" or not command:
        print("usage: server_supervisor ORIGIN_PID GRACE -- COMMAND...", file=sys.stderr)
        return 2
    grace_s = float(grace)
    prctl = lifeline._libc_prctl()
    if prctl is not None:
        prctl(lifeline.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        prctl(lifeline.PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(origin):  # the run died before the death signal was armed
        return lifeline.PARENT_GONE_EXIT_CODE
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    try:
        server = subprocess.Popen(command)
    except OSError as exc:
        print(f"cannot start {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        return 127
    code = server.wait()
    lifeline.end_descendants()
    return code


def stop(signum: int, frame: FrameType | None) -> None:
    """SIGTERM every descendant (the subreaper's orphans included), SIGKILL what is left after
    ``grace_s``, then exit. Runs once: a second signal (the kernel's death signal can follow a
    SIGTERM from the run) is ignored rather than interrupting the first."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(psutil.Error):
        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        psutil.wait_procs(children, timeout=grace_s)
    lifeline.end_descendants()
    os._exit(128 + signum)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
