"""The code that runs inside one model process.

It applies its placement (CPU affinity, environment, thread pools), loads the model, warms it
up, reports ``ready``, waits for the parent's common start time, drives the model from
``spec.workers`` threads until the common stop time, and sends every call's timing back on its
pipe. It imports only the framework adapter it is told to use and the message codec; stdout and
stderr go to a log file whose tail the parent reports if this process fails (SIGUSR1 writes every
thread's stack there, for a timeout's report). It is tied to the parent by ``lifeline``.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import functools
import importlib
import inspect
import os
import queue
import signal
import sys
import threading
import time
import traceback
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from pytest_neuronperf.child import isolation, lifeline, token_driver
from pytest_neuronperf.child.copy_options import CopyHooks
from pytest_neuronperf.child.open_loop import serve
from pytest_neuronperf.child.profile_window import run_window
from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.frameworks.base import load_adapter, resolve_object
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import ImportRoot, WorkerSpec

AUTO_WARMUP_BLOCK_S = 0.025
AUTO_WARMUP_MIN_CALLS = 10
AUTO_WARMUP_STABLE_BLOCKS = 3
AUTO_WARMUP_TOLERANCE = 0.05


def main(conn: Connection, spec: WorkerSpec) -> None:
    """Entry point of a model process (the ``target`` of the spawned process)."""
    os.setpgid(0, 0)  # own process group: the parent kills it and anything it starts at once
    redirect_output(spec.log_path)
    try:
        apply_environment(spec.environ, spec.placement)
        apply_placement(spec.placement, spec.framework)
        run(conn, spec)
    except isolation.Refused as refusal:  # one sentence, not a traceback
        report_failure(conn, str(refusal))
        leave(1)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent
        # a model's refusal (messages.Refusal) shows its sentence first, its traceback apart
        report_failure(conn, traceback.format_exc(),
                       str(exc) if isinstance(exc, messages.Refusal) else None)
        leave(1)
    leave(0)


def leave(code: int) -> None:
    """Exit now, taking down whatever the model started (the parent cannot see it any more)."""
    sys.stdout.flush()
    sys.stderr.flush()
    lifeline.end_descendants()
    os._exit(code)


def redirect_output(log_path: str) -> None:
    """Send fd 1 and 2 to the log file, and dump a traceback there on a fatal signal."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)


def report_failure(conn: Connection, error: str, sentence: str | None = None) -> None:
    """Tell the parent why this copy failed (a refusal's ``sentence`` first, the traceback
    apart); the pipe may already be gone."""
    print(error, file=sys.stderr, flush=True)
    message = messages.Failed(error) if sentence is None else messages.Failed(sentence, error)
    try:
        messages.send(conn, message)
    except OSError:
        pass


def apply_environment(environ: dict[str, str], placement: Placement) -> None:
    """Take the parent's current environment, then the placement's variables on top."""
    if environ:
        os.environ.clear()
        os.environ.update(environ)
    os.environ.update(placement.env)


def apply_placement(placement: Placement, framework: str) -> None:
    """Pin this process and import the device runtime before any framework runtime starts."""
    if placement.cpu_affinity is not None:
        os.sched_setaffinity(0, placement.cpu_affinity)
    imports = placement.framework_runtime_imports.get(framework, placement.runtime_imports)
    for module in imports:
        importlib.import_module(module)


def run(conn: Connection, spec: WorkerSpec, exit_with_parent: bool = True) -> None:
    """Load, warm up, then for each ``go`` of the parent: measure and send the timings.

    A plain run sends one ``go``; a paired run one per slice of its schedule, and between two
    slices this copy blocks in ``next_order`` while the other side runs. A profile run sends
    ``profile`` orders instead, each answered with what its window recorded."""
    link = ParentLink(conn, exit_with_parent)
    if spec.imports is not None:
        spec = use_imports(spec, spec.imports)
    adapter = load_adapter(spec.adapter)
    adapter.set_threads(spec.placement.intra_op_threads)
    adapter.thread_setup()
    hooks = CopyHooks(spec)  # NeuronPerf's per-copy options (child.copy_options)
    hooks.before_load()

    started = time.perf_counter_ns()
    model = hooks.after_load(adapter.load(spec.model, spec.placement))
    check_imports(spec, model)
    if spec.generate is not None:  # requests of token streams (child/token_driver.py)
        token_driver.run(conn, link, spec, model, started, hooks, adapter.thread_setup,
                         lambda order, call: run_window(order, call, spec,
                                                        adapter.thread_setup, drive))
        return
    call = hooks.build_call(adapter, model, lambda: build_call(
        model, hooks.cast_inputs(adapter.prepare_inputs(spec.inputs, spec.batch_size,
                                                        spec.placement)),
        spec.preprocess_fn, spec.postprocess_fn, adapter.synchronizer(spec.placement)))
    load_ms = (time.perf_counter_ns() - started) / 1e6

    warmup_ms, warmup_calls = warm_up(call, spec.warmup, spec.max_warmup_s)
    hooks.warmed_up()
    check_imports(spec, model)  # again: the first calls may import more
    messages.send(conn, messages.Ready(os.getpid(), load_ms, warmup_ms, warmup_calls))

    while True:
        go = link.next_order()
        if isinstance(go, messages.Profile):  # a profile run's copy (child/profile_window.py)
            messages.send(conn, run_window(go, call, spec, adapter.thread_setup, drive))
            continue
        if spec.server is not None:  # the server scenario's open loop (child/open_loop.py)
            messages.send(conn, serve(call, spec.workers, go.start_ns, spec.server,
                                      adapter.thread_setup))
            return
        timings = hooks.drive(call, go, adapter.thread_setup, drive)
        messages.send(conn, dataclasses.replace(timings, cpu_s=time.process_time()))
        if go.last:
            messages.send(conn, hooks.stats())
            return


def use_imports(spec: WorkerSpec, imports: ImportRoot) -> WorkerSpec:
    """Import the user's code from the base tree (a paired run's base side: see
    ``child.isolation``), then resolve the functions that travelled by name."""
    isolation.install(imports)
    pre, post = (resolve_object(*ref) if ref else None
                 for ref in (imports.preprocess_fn, imports.postprocess_fn))
    return dataclasses.replace(spec, preprocess_fn=pre, postprocess_fn=post)


def check_imports(spec: WorkerSpec, model: Any) -> None:
    """Refuse to measure other code than this copy's side: a base copy must have imported
    the project from the base tree only, any copy its model's module from the caller's file."""
    if spec.imports is not None:
        isolation.check(spec.imports, spec.model.module, model)
    else:
        isolation.check_origin(spec.model.module, spec.model.origin)


def build_call(
    model: Callable[..., Any],
    args: tuple[Any, ...],
    preprocess_fn: Callable[..., Any] | None,
    postprocess_fn: Callable[..., Any] | None,
    synchronize: Callable[[], None] | None,
) -> Callable[[], Any]:
    """One end-to-end inference as a zero-argument callable, with as little wrapping as needed."""
    if preprocess_fn is None and postprocess_fn is None and synchronize is None:
        return functools.partial(model, *args)  # a C-level call: no extra Python frame

    pre = preprocess_fn or (lambda *a: a if len(a) != 1 else a[0])
    post = postprocess_fn or (lambda out: out)
    sync = synchronize or (lambda: None)

    def end_to_end() -> Any:
        prepared = pre(*args)
        out = model(*prepared) if isinstance(prepared, tuple) else model(prepared)
        out = post(out)
        sync()
        return out

    return end_to_end


def warm_up(call: Callable[[], Any], warmup: float | str, max_s: float) -> tuple[float, int]:
    """Run the model until warm; return (elapsed ms, calls).

    The first call's output is checked (:func:`check_output`). ``warmup`` in seconds runs that
    long (at least one call). ``"auto"`` runs blocks of
    ``AUTO_WARMUP_BLOCK_S`` until the last ``AUTO_WARMUP_STABLE_BLOCKS`` block rates agree within
    ``AUTO_WARMUP_TOLERANCE``, after at least ``AUTO_WARMUP_MIN_CALLS`` calls, or ``max_s`` passes.
    """
    clock = time.perf_counter_ns
    started = clock()
    check_output(call())
    calls = 1
    if warmup != "auto":
        deadline = started + int(float(warmup) * 1e9)
        while clock() < deadline:
            call()
            calls += 1
        return (clock() - started) / 1e6, calls

    deadline = started + int(max_s * 1e9)
    rates: list[float] = []
    block_ns = int(AUTO_WARMUP_BLOCK_S * 1e9)
    while True:
        block_start = clock()
        block_calls = 0
        now = block_start
        while now - block_start < block_ns or block_calls == 0:
            call()
            block_calls += 1
            now = clock()
        calls += block_calls
        rates.append(block_calls / (now - block_start))
        stable = (
            len(rates) >= AUTO_WARMUP_STABLE_BLOCKS
            and calls >= AUTO_WARMUP_MIN_CALLS
            and not any(
                rates[i] > max(rates[:i]) * (1 + AUTO_WARMUP_TOLERANCE)
                for i in range(len(rates) - AUTO_WARMUP_STABLE_BLOCKS + 1, len(rates))
            )
        )
        if stable or now >= deadline:
            return (now - started) / 1e6, calls


def check_output(output: Any) -> None:
    """Refuse a forward whose work has not happened when it returns (a generator, a coroutine).

    Timing it would measure only the creation of the generator: a number that looks fine and
    means nothing. Consuming it here would guess at what the user wants measured.
    """
    for what, test in (("generator", inspect.isgenerator), ("async generator", inspect.isasyncgen),
                       ("coroutine", inspect.iscoroutine)):
        if test(output):
            if what == "coroutine":
                output.close()  # never awaited, on purpose: no RuntimeWarning
            raise TypeError(
                f"the model returned a {what}, so a timed call would measure only its creation, "
                f"not the work: pass postprocess_fn that consumes it (for example "
                f"postprocess_fn=list, a top-level function) to time the whole stream, make "
                f"the forward return its result, or measure it token by token with "
                f"scenario='generate'")


class ParentLink:
    """Listens to the parent on a daemon thread: queues each ``go`` (or ``profile``); exits on
    abort or parent loss."""

    def __init__(self, conn: Connection, exit_with_parent: bool = True) -> None:
        self._conn = conn
        self._exit = exit_with_parent
        self._gos: queue.SimpleQueue[messages.Go | messages.Profile | None] = queue.SimpleQueue()
        threading.Thread(target=self._listen, name="neuronperf-parent-link", daemon=True).start()

    def _listen(self) -> None:
        try:
            while True:
                message = messages.receive(self._conn)
                if not isinstance(message, messages.Go | messages.Profile):
                    break
                self._gos.put(message)
        except (EOFError, OSError, messages.ProtocolError):
            pass
        self._gos.put(None)  # wakes a copy waiting for a go that will never come
        if self._exit:  # in the caller's process (multiprocess=False) the caller stays
            # not the protocol, or the parent is gone (the kernel ends this process then, but
            # not what the model started: end that while this thread can still run)
            leave(lifeline.PARENT_GONE_EXIT_CODE)

    def next_order(self) -> messages.Go | messages.Profile:
        """Block (no spinning) until the parent sends the next start time (or profile window)."""
        go = self._gos.get()
        if go is None:
            raise RuntimeError("the parent aborted this copy before the measurement started")
        return go


def drive(
    call: Callable[[], Any],
    workers: int,
    start_ns: int,
    end_ns: int,
    thread_setup: Callable[[], None],
) -> messages.Timings:
    """Call the model from ``workers`` threads between the common start and stop times.

    A fault in any thread (an exception, ``sys.exit``, any ``BaseException``) fails the copy
    with that thread's traceback; the others finish their window first.
    """
    ends = [array("q") for _ in range(workers)]
    lats = [array("q") for _ in range(workers)]
    faults: dict[int, str] = {}

    def guarded(index: int) -> None:
        try:
            drive_thread(call, start_ns, end_ns, ends[index], lats[index], thread_setup)
        except BaseException:  # noqa: BLE001 - reported with the copy's failure below
            faults[index] = traceback.format_exc()

    threads = [
        threading.Thread(target=guarded, args=(i,), name=f"neuronperf-driver-{i}")
        for i in range(1, workers)
    ]
    for thread in threads:
        thread.start()
    drive_thread(call, start_ns, end_ns, ends[0], lats[0], lambda: None)
    for thread in threads:
        thread.join()
    if faults:
        index = min(faults)
        raise DriverThreadFailed(
            f"driver thread {index + 1} of {workers} failed:\n{faults[index].rstrip()}")
    return messages.Timings(
        [np.frombuffer(e, dtype=np.int64) for e in ends],
        [np.frombuffer(lat, dtype=np.int64) for lat in lats],
    )


class DriverThreadFailed(RuntimeError):
    """A driver thread other than the first raised; its traceback is the message."""


def drive_thread(
    call: Callable[[], Any],
    start_ns: int,
    end_ns: int,
    ends: array[int],
    lats: array[int],
    thread_setup: Callable[[], None],
) -> None:
    """The measured loop, from the common start until the first call that ends after the stop."""
    thread_setup()
    clock = time.perf_counter_ns
    sleep_s = (start_ns - clock()) / 1e9 - 0.002
    if sleep_s > 0:
        time.sleep(sleep_s)
    while clock() < start_ns:
        pass
    add_end = ends.append
    add_lat = lats.append
    while True:
        t0 = clock()
        call()
        t1 = clock()
        add_end(t1)
        add_lat(t1 - t0)
        if t1 > end_ns:  # the call that overran the window is kept: its share of the work
            return       # inside the window counts towards throughput
