"""The parent side of the compile process: start it, follow its messages, restart it after a
crash or timeout of one configuration, record each result in the model index."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import replace
from multiprocessing.context import BaseContext
from pathlib import Path

from pytest_neuronperf.compiling.cache import copy_atomically
from pytest_neuronperf.compiling.child import CompileJob, Task, compile_main
from pytest_neuronperf.engine.processes import ChildProcess, process_context
from pytest_neuronperf.engine.supervise import Deadline, ProcessLost, next_messages
from pytest_neuronperf.model_index import IndexWriter
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.reports import config_label
from pytest_neuronperf.safe_files import remove

log = logging.getLogger("pytest_neuronperf")

STARTUP_TIMEOUT_S = 600.0
"""Seconds the compile process may take to start and build the model (before any timeout)."""
EXIT_GRACE_S = 10.0
"""Seconds a compile process that has finished may take to exit before it is killed."""


class CompileProcess(ChildProcess):
    """The compile process (``compile_main``) and the parent's end of its pipe."""

    def __init__(self, context: BaseContext, job: CompileJob) -> None:
        self.job = job
        super().__init__(context, compile_main, (job,), "neuronperf-compile", job.log_path,
                         daemon=False, role="compile process")

    def kill(self, join_timeout: float = 10.0) -> None:
        """Kill the process group, reap it, and delete its unfinished artifacts."""
        pid = self.pid
        super().kill(join_timeout)
        if pid is not None:
            for leftover in Path(self.job.directory).glob(f".*.tmp-{pid}*"):
                remove(leftover)


def run_compile(
    job: CompileJob, index: IndexWriter, timeout: float | None, shared: Path | None
) -> None:
    """Compile every task, restarting the process after a crash or timeout of one task."""
    context = process_context(job.framework)
    remaining = list(job.tasks)
    while remaining:
        process = CompileProcess(context, replace(job, tasks=tuple(remaining)))
        try:
            remaining = supervise(process, index, timeout, shared)
            process.process.join(timeout=EXIT_GRACE_S)
        finally:
            process.kill()


def supervise(
    process: CompileProcess, index: IndexWriter, timeout: float | None, shared: Path | None
) -> list[Task]:
    """Follow one compile process; return the tasks a fresh process should retry."""
    job = process.job
    tasks = {task.position: task for task in job.tasks}
    started = False
    current: int | None = None
    began = time.monotonic()
    deadline: Deadline | None = Deadline.after(max(STARTUP_TIMEOUT_S, timeout or 0.0))
    phase = "starting"
    while True:
        try:
            [(_, message)] = next_messages({0: process}, deadline, phase)
        except ProcessLost as lost:
            return abandon(process, index, tasks, current, started, str(lost), began)
        match message:
            case messages.Built():
                started, deadline, phase = True, None, "between configurations"
            case messages.Compiling(position=position) if position in tasks:
                current, began = position, time.monotonic()
                deadline = Deadline.after(timeout) if timeout is not None else None
                phase = f"compiling {describe_task(tasks[current])}"
                log.info("compiling %s %s with %s", job.source.name,
                         describe_task(tasks[current]), job.compiler)
            case messages.Compiled(position=position) if position in tasks:
                accept(message, index, tasks.pop(position), job, shared)
                current, deadline, phase = None, None, "between configurations"
            case messages.Failed():
                for position in tasks:
                    index.finish(position, {"status": "error", "error": message.error,
                                            "traceback": message.traceback, "compile_s": 0.0},
                                 None)
                log.warning("  compile failed: %s", message.error.splitlines()[0])
                return []
            case messages.Done():
                return []
            case _:
                reason = (f"{process.label} sent {type(message).__name__} while {phase}, "
                          "which is not a compile process message")
                return abandon(process, index, tasks, current, started, reason, began)


def describe_task(task: Task) -> str:
    """``bs=8 p=1``."""
    return config_label({"batch_size": task.batch_size, "pipeline_size": task.pipeline_size})


def accept(
    message: messages.Compiled, index: IndexWriter, task: Task, job: CompileJob,
    shared: Path | None,
) -> None:
    """Record one configuration's result (and store a new artifact in the shared cache)."""
    artifact = Path(job.directory) / message.filename if message.filename else None
    if message.status == "ok":
        log.info("  done in %.2f s: %s", message.compile_s, message.filename)
        if shared is not None and artifact is not None:
            with contextlib.suppress(OSError):
                copy_atomically(artifact, shared / artifact.name)
    else:
        log.warning("  error: %s", str(message.error or "").splitlines()[0])
    index.finish(task.position, dataclasses.asdict(message), artifact)


def abandon(
    process: CompileProcess,
    index: IndexWriter,
    tasks: dict[int, Task],
    current: int | None,
    started: bool,
    reason: str,
    began: float,
) -> list[Task]:
    """After a crash or timeout: fail the current task (or all), return the rest to retry."""
    process.kill()
    log.warning("  error: %s", reason.splitlines()[0])
    if started and current is not None:
        index.fail(current, reason, time.monotonic() - began)
        return [task for position, task in tasks.items() if position != current]
    for position in tasks:
        index.fail(position, reason)
    return []


# --- inside the compile process --------------------------------------------------------------
