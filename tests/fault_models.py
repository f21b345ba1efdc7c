"""Top-level models for the fault tests: each misbehaves in one way a real model can."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class FaultInSecondThread(Exception):
    """What FailsOffTheMainThread raises."""


class BaseFault(BaseException):
    """Not an Exception: escapes ``except Exception``."""


class FailsOffTheMainThread:
    """Works on the first driver thread; every other thread fails ($FAULT_KIND says how)."""

    def __call__(self, x: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            return x
        kind = os.environ.get("FAULT_KIND", "raise")
        if kind == "exit":
            sys.exit("second thread called sys.exit")
        if kind == "base":
            raise BaseFault("second thread raised a BaseException")
        raise FaultInSecondThread("second thread raised an exception")


class HoldsTheGil:
    """Writes $FAULT_DIR/copy-<pid>, then runs a regex that backtracks for hours, GIL held."""

    def __call__(self, x: Any) -> Any:
        fault_dir = os.environ.get("FAULT_DIR")
        if fault_dir:
            (Path(fault_dir) / f"copy-{os.getpid()}").write_text("")
        self.backtrack_for_hours()
        return x

    @staticmethod
    def backtrack_for_hours() -> None:
        re.match(r"(a+)+$", "a" * 40 + "b")


class HoldsTheGilOnBuild:
    """Its constructor (run by the compile process) writes $FAULT_DIR/build-<pid>, then
    backtracks for hours with the GIL held."""

    def __init__(self) -> None:
        (Path(os.environ["FAULT_DIR"]) / f"build-{os.getpid()}").write_text("")
        HoldsTheGil.backtrack_for_hours()


class StartsSessionLeader:
    """Starts a process that leaves the copy's process group (setsid); its pid goes to a file.

    ``$FAULT_HANG=1`` also makes every call after the first few hang, so the copy is killed at
    the timeout while it runs.
    """

    def __init__(self) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(600)"])
        (Path(os.environ["FAULT_DIR"]) / f"leader-{child.pid}").write_text("")
        self.calls = 0

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        if os.environ.get("FAULT_HANG") == "1" and self.calls > 5:
            time.sleep(600)
        return x


class HangsInANamedPlace:
    """Answers a few calls, then waits forever in ``wait_for_a_lock_never_released``."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.lock.acquire()

    def __call__(self, x: Any) -> Any:
        self.calls += 1
        if self.calls > 5:
            self.wait_for_a_lock_never_released()
        return x

    def wait_for_a_lock_never_released(self) -> None:
        self.lock.acquire()


class ReturnsAGenerator:
    """A streaming forward: the work happens only when the generator is consumed."""

    def __call__(self, x: Any) -> Iterator[Any]:
        for _ in range(3):
            time.sleep(0.001)
            yield x


class ReturnsACoroutine:
    """An ``async`` forward: calling it only creates a coroutine."""

    async def __call__(self, x: Any) -> Any:
        return x


def consume(outputs: Iterator[Any]) -> list[Any]:
    """A postprocess function that consumes a streaming forward."""
    return list(outputs)
