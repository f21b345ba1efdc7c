"""Starting, watching and killing model processes.

Processes come from a forkserver: a fresh interpreter that preloads the worker module and the
framework (``import torch``, or ``import tensorflow, keras``; importing them starts no thread
pool or device runtime, and no operator ever runs there), then forks one child per model copy.
Each framework has a forkserver of its own, started on its first use and kept for the life of
this process, so a TensorFlow copy does not import TensorFlow itself and a torch copy does not
carry TensorFlow. That keeps per-configuration start-up well under a second without ever
forking a process that has a runtime initialised. Each child leads its own process group and is
tied to the run by the kernel (``lifeline``); killing a child kills its whole tree of
descendants.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import signal
import sys
import time
from collections.abc import Callable
from multiprocessing import context as mp_context
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import BaseContext
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import psutil

from pytest_neuronperf.child import lifeline
from pytest_neuronperf.child import main as worker
from pytest_neuronperf.protocol.specs import WorkerSpec

FORKSERVER_PRELOAD = ("pytest_neuronperf.child.main", "numpy")
"""Always preloaded; the framework's modules are added (see ``FRAMEWORK_PRELOAD``)."""
FRAMEWORK_PRELOAD: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "pytest_neuronperf.frameworks.torch"),
    "tensorflow": ("tensorflow", "keras", "pytest_neuronperf.frameworks.tensorflow"),
}
"""Per framework, what its forkserver imports (each only if installed). Other frameworks
(``python``) get torch when the caller has imported it, since their models may use it."""
STDERR_TAIL_LINES = 30
STACK_DUMP_WAIT_S = 0.5


def process_context(framework: str, generative: bool = False) -> BaseContext:
    """A forkserver context whose server has preloaded the worker module and ``framework``
    (and, for a ``generative`` model, the transformers model modules imported here)."""
    modules = FRAMEWORK_PRELOAD.get(framework)
    if modules is None:
        modules = FRAMEWORK_PRELOAD["torch"] if "torch" in sys.modules else ()
    if generative and "torch" in modules:
        modules = modules + transformers_preload()
    installed = tuple(m for m in modules if importlib.util.find_spec(m.split(".")[0]) is not None)
    return ServerContext(framework_server(FORKSERVER_PRELOAD + installed))


def transformers_preload() -> tuple[str, ...]:
    """The transformers model modules this process has imported (a generative model's class,
    usually): preloaded too, so that each copy does not spend seconds importing them again.
    Importing them defines classes and starts nothing, like importing torch."""
    return tuple(sorted(name for name in sys.modules if name == "transformers" or (
        name.startswith("transformers.models.") and ".modeling_" in name)))


@functools.cache
def framework_server(preload: tuple[str, ...]) -> forkserver.ForkServer:
    """The forkserver for one preload list (one per list and process, like multiprocessing's
    own forkserver); it starts when the first process is started from it."""
    server = forkserver.ForkServer()
    server.set_forkserver_preload(list(preload))
    return server


class ServerContext(mp_context.ForkServerContext):
    """multiprocessing's forkserver context, but forking from ``server`` instead of the
    process-wide forkserver."""

    def __init__(self, server: forkserver.ForkServer) -> None:
        self.server = server

    def Process(self, *args: Any, **kwargs: Any) -> ServerProcess:  # type: ignore[override]  # noqa: N802 - multiprocessing's name
        process = ServerProcess(*args, **kwargs)
        process.server = self.server
        return process


class ServerProcess(mp_context.ForkServerProcess):
    """A process forked by its context's forkserver."""

    server: forkserver.ForkServer | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("server", None)  # stays in the parent (it holds a lock and sockets)
        return state

    @staticmethod
    def _Popen(process_obj: Any) -> ServerPopen:  # noqa: N802 - multiprocessing's name
        return ServerPopen(process_obj, process_obj.server)


class ServerPopen(popen_forkserver.Popen):
    """Starts a process as multiprocessing's forkserver Popen does, from a given server."""

    def __init__(self, process_obj: Any, server: forkserver.ForkServer) -> None:
        self.server = server
        super().__init__(process_obj)

    def _launch(self, process_obj: Any) -> None:
        prepared, pickled = io.BytesIO(), io.BytesIO()
        mp_context.set_spawning_popen(self)
        try:  # the preparation data and the process object, with fds to pass
            reduction.dump(process_obj, pickled)
            data = spawn.get_preparation_data(process_obj._name)
            if b"__main__" not in pickled.getvalue():
                # nothing sent refers to the main module: do not run it again in the child
                # (under the ``pytest`` script that would import pytest in every copy)
                data.pop("init_main_from_path", None)
                data.pop("init_main_from_name", None)
            reduction.dump(data, prepared)
        finally:
            mp_context.set_spawning_popen(None)
        self.sentinel, data_fd = self.server.connect_to_new_process(
            self._fds  # type: ignore[attr-defined]
        )
        # a duplicate of the data pipe stays open here: the child watches it for our death
        watched = os.dup(data_fd)
        self.finalizer = util.Finalize(
            self, util.close_fds, (watched, self.sentinel)  # type: ignore[attr-defined]
        )
        with open(data_fd, "wb", closefd=True) as stream:
            stream.write(prepared.getbuffer())
            stream.write(pickled.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class ChildProcess:
    """A process started from the forkserver, and the parent's end of its duplex pipe.

    ``target`` is called as ``target(child_conn, *args)`` once the child is tied to the run
    (:func:`lifeline.start`); it should lead its own process group (``os.setpgid(0, 0)``) and
    write its output to ``log_path``.
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
            target=lifeline.start,
            args=(target, os.getpid(), child_conn, bytes(ForkingPickler.dumps(args))),
            name=name, daemon=daemon,
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
        pid: int | None = self.process.pid
        return pid

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

    def formatted_tail(self, lines: int = STDERR_TAIL_LINES) -> str:
        """The last output lines as an error-message suffix (empty when there is none)."""
        tail = self.output_tail(lines)
        return f"\n--- last output of the {self.role} ---\n{tail}" if tail else ""

    def dump_stacks(self, wait_s: float = STACK_DUMP_WAIT_S) -> None:
        """Have the process write every thread's Python stack to its log (it is hung).

        The child's ``faulthandler`` answers SIGUSR1 from its C signal handler, so it answers
        even while a C call holds the GIL. Waits until the log stops growing, at most ``wait_s``.
        """
        if self.pid is None or self.log_path is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + wait_s
        size = -1
        while time.monotonic() < deadline:
            time.sleep(0.05)
            with contextlib.suppress(OSError):
                now = self.log_path.stat().st_size
                if now == size:
                    return
                size = now

    def kill(self, join_timeout: float = 5.0) -> None:
        """Kill the process, its process group and every descendant, then reap it.

        Descendants are listed before anything is killed: one that left the group (``setsid``)
        is found through its parent while that still lives. A child that has already exited
        ended its own (``lifeline.end_descendants``).
        """
        pid = self.pid
        if pid is not None:
            kill_tree(pid, with_descendants=self.process.exitcode is None)
        self.process.join(timeout=join_timeout)
        with contextlib.suppress(OSError):
            self.conn.close()


def kill_tree(pid: int, with_descendants: bool = True) -> None:
    """SIGKILL ``pid``, its process group (it leads one) and, listed first, every descendant
    (one that left the group with ``setsid`` is found through its parent while that lives)."""
    descendants = descendants_of(pid) if with_descendants else []
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)
    for descendant in descendants:
        with contextlib.suppress(psutil.Error):
            descendant.kill()


def descendants_of(pid: int) -> list[psutil.Process]:
    """Every live descendant of ``pid`` (none if it is gone)."""
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


class ModelProcess(ChildProcess):
    """One model copy's process (``worker.main``)."""

    def __init__(self, context: BaseContext, spec: WorkerSpec) -> None:
        self.spec = spec
        super().__init__(context, worker.main, (spec,),
                         f"neuronperf-copy-{spec.placement.copy_index}", spec.log_path, True,
                         "model process")

    @property
    def label(self) -> str:
        return f"copy {self.spec.placement.copy_index}"
