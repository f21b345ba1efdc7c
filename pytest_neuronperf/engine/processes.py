"""Starting, watching and killing model processes.

Processes come from a forkserver: a fresh interpreter that preloads the worker module and the
framework (``import torch`` only; it never runs an operator, so no thread pool or device runtime
exists to be inherited), then forks one child per model copy. That keeps per-configuration
start-up well under a second without ever forking a process that has a runtime initialised.
Each child leads its own process group; killing the group also kills anything it started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from pytest_neuronperf.engine.specs import WorkerSpec

FORKSERVER_PRELOAD = ("pytest_neuronperf.engine.child", "numpy")
"""Always preloaded; torch is added for torch work (its import starts no runtime)."""
PRELOADABLE_FRAMEWORKS = ("torch",)
STDERR_TAIL_LINES = 30


def process_context(framework: str) -> BaseContext:
    """The forkserver context, preloaded with the worker module and the framework if it can be.

    The preload list only counts when the forkserver starts (the first benchmark of a process);
    a framework that was not preloaded is imported by each model process itself.
    """
    context = multiprocessing.get_context("forkserver")
    preload = list(FORKSERVER_PRELOAD)
    preload += [
        module for module in PRELOADABLE_FRAMEWORKS
        if (module == framework or module in sys.modules)
        and importlib.util.find_spec(module) is not None
    ]
    context.set_forkserver_preload(preload)
    return context


class ChildProcess:
    """A process started from the forkserver, and the parent's end of its duplex pipe.

    ``target`` is called as ``target(child_conn, *args)``; it should lead its own process group
    (``os.setpgid(0, 0)``) and write its output to ``log_path``.
    """

    def __init__(
        self,
        context: BaseContext,
        target: Callable[..., None],
        args: tuple[Any, ...],
        name: str,
        log_path: str | None,
        daemon: bool,
        role: str,
    ) -> None:
        self.role = role
        """What the process is, for error messages (``model process``, ``compile process``)."""
        self.log_path = Path(log_path) if log_path else None
        self.conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(  # type: ignore[attr-defined]
            target=target, args=(child_conn, *args), name=name, daemon=daemon
        )
        self.process.start()
        child_conn.close()

    @property
    def label(self) -> str:
        """How error messages name the process (``copy 0``, ``the compile process``)."""
        return f"the {self.role}"

    @property
    def sentinel(self) -> int:
        """Becomes ready when the process exits."""
        return int(self.process.sentinel)

    @property
    def pid(self) -> int | None:
        """The process id (None before start)."""
        return self.process.pid

    def exit_description(self) -> str:
        """How the process ended, e.g. ``exit code 1`` or ``killed by SIGSEGV``."""
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def output_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        """The last lines the process wrote to stdout/stderr."""
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def formatted_tail(self) -> str:
        """The last output lines as an error-message suffix (empty when there is none)."""
        tail = self.output_tail()
        return f"\n--- last output of the {self.role} ---\n{tail}" if tail else ""

    def kill(self, join_timeout: float = 5.0) -> None:
        """Kill the process and its whole process group, then reap it."""
        pid = self.pid
        if pid is not None:
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        self.process.join(timeout=join_timeout)
        with contextlib.suppress(OSError):
            self.conn.close()


class ModelProcess(ChildProcess):
    """One model copy's process (``worker.main``)."""

    def __init__(self, context: BaseContext, spec: WorkerSpec) -> None:
        from pytest_neuronperf.engine import child as worker

        self.spec = spec
        super().__init__(context, worker.main, (spec,),
                         f"neuronperf-copy-{spec.placement.copy_index}", spec.log_path, True,
                         "model process")

    @property
    def label(self) -> str:
        return f"copy {self.spec.placement.copy_index}"
