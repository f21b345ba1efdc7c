"""The parent side of the compile process: start it, follow its messages, restart it after a
crash or timeout of one configuration, record each result in the model index."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from pytest_neuronperf.compiling.cache import copy_atomically
from pytest_neuronperf.compiling.child import (
    PROTOCOL_VERSION,
    CompileJob,
    Task,
    compile_main,
    remove,
)
from pytest_neuronperf.engine.processes import ChildProcess, process_context
from pytest_neuronperf.model_index import IndexWriter
from pytest_neuronperf.reports import config_label

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
    deadline: float | None = began + max(STARTUP_TIMEOUT_S, timeout or 0.0)
    while True:
        remaining_s = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = wait([process.conn, process.process.sentinel], remaining_s)
        if not ready:
            if current is None:
                what, limit = "starting", max(STARTUP_TIMEOUT_S, timeout or 0.0)
            else:
                what, limit = f"compiling {describe_task(tasks[current])}", timeout or 0.0
            reason = f"compile process timed out after {limit:g} s while {what}; it was killed"
            return abandon(process, index, tasks, current, started, reason, began)
        message = receive(process.conn) if process.conn in ready or process.conn.poll() else None
        if message is None:
            reason = (
                f"the compile process died ({process.exit_description()})"
                + process.formatted_tail()
            )
            return abandon(process, index, tasks, current, started, reason, began)
        kind = message["kind"]
        if kind == "ready":
            started, deadline = True, None
        elif kind == "begin":
            current, began = message["position"], time.monotonic()
            deadline = began + timeout if timeout is not None else None
            log.info(
                "compiling %s %s with %s",
                job.source.name,
                describe_task(tasks[current]),
                job.compiler,
            )
        elif kind == "result":
            accept(message, index, tasks.pop(message["position"]), job, shared)
            current, deadline = None, None
        elif kind == "fatal":
            for position in tasks:
                index.finish(position, {**message, "status": "error", "compile_s": 0.0}, None)
            log.warning("  compile failed: %s", message["error"].splitlines()[0])
            return []
        else:  # done
            return []


def describe_task(task: Task) -> str:
    """``bs=8 p=1``."""
    return config_label({"batch_size": task.batch_size, "pipeline_size": task.pipeline_size})


def receive(conn: Connection) -> dict[str, Any] | None:
    """The next message from the compile process, or None if the pipe is closed or garbled."""
    try:
        message = json.loads(conn.recv_bytes())
    except (EOFError, OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(message, dict) or message.get("protocol") != PROTOCOL_VERSION:
        return None
    return message


def accept(
    message: Mapping[str, Any], index: IndexWriter, task: Task, job: CompileJob, shared: Path | None
) -> None:
    """Record one configuration's result (and store a new artifact in the shared cache)."""
    artifact = Path(job.directory) / message["filename"] if message.get("filename") else None
    if message["status"] == "ok":
        log.info("  done in %.2f s: %s", message["compile_s"], message["filename"])
        if shared is not None and artifact is not None:
            with contextlib.suppress(OSError):
                copy_atomically(artifact, shared / artifact.name)
    else:
        log.warning("  error: %s", str(message.get("error", "")).splitlines()[0])
    index.finish(task.position, message, artifact)


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
