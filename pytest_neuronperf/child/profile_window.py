"""Inside a model copy: one profile window, answered with a ``profiled`` message (the child
side of ``pytest_neuronperf.profiling``).

``child.main`` calls :func:`run_window` for each ``profile`` order of the parent, after the
copy has loaded and warmed up; such a copy is never measured (profile runs use fresh copies
after the measurement). A window is either

- ``operators``: the framework's profiler around the end-to-end call, repeated for
  ``seconds`` or ``max_calls`` calls: torch's profiler (the autograd profiler that
  ``torch.profiler`` wraps, on Kineto; with shapes, CUDA activity on a GPU copy, and Python
  stacks in the window whose trace is kept), or TensorFlow's ``tf.profiler.experimental``.
  A plain Python model has none (a note says so).
- ``python``: cProfile around the copy's own measuring loop (``drive``, one thread), so that
  pre- and post-processing, the model's Python code and the harness are all attributed, with
  call counts. The loop is the one measurements use; only the profiler is added.

Why the autograd profiler rather than ``torch.profiler.profile``: the latter imports
``torch._dynamo`` when it first starts (3-6 s on a loaded 2-core machine, in every fresh copy),
the former records the same Kineto events in milliseconds. The trace is exported by Kineto
itself and read back here, rather than through the profiler's own Python summary, whose parse
costs about 0.4 ms per event.
"""

from __future__ import annotations

import cProfile
import glob
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pytest_neuronperf.child import profile_traces as traces
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import WorkerSpec

EVENT_BUDGET = 1500
"""Operator events one torch window may record (its export and reading grow with them: about
0.2 ms per event on a loaded 2-core machine); the per-call median needs few calls."""
STACKS_FACTOR = 3
"""A window with Python stacks records about this many events per operator event."""
NO_OPERATOR_PROFILER = ("the python framework has no operator profiler: Python frames only")

Drive = Callable[..., messages.Timings]


def run_window(order: messages.Profile, call: Callable[[], Any], spec: WorkerSpec,
               thread_setup: Callable[[], None], drive: Drive) -> messages.Profiled:
    """Profile one window of ``order.window`` and say what it recorded."""
    if order.window == "python":
        return python_window(order, call, thread_setup, drive)
    if order.window != "operators":
        raise ValueError(f"unknown profile window kind {order.window!r}")
    if spec.framework == "torch":
        return torch_window(order, call, spec.placement.synchronize == "cuda")
    if spec.framework == "tensorflow":
        return tensorflow_window(order, call)
    return messages.Profiled("operators", 0, 0.0, [], note=NO_OPERATOR_PROFILER)


def repeat(call: Callable[[], Any], seconds: float, max_calls: int,
           wrap: Callable[[int], Any] | None = None) -> tuple[int, float]:
    """Call ``call`` for ``seconds`` or ``max_calls`` times (at least once); (calls, seconds)."""
    clock = time.perf_counter_ns
    started = clock()
    deadline = started + int(seconds * 1e9)
    calls = 0
    while calls == 0 or (calls < max_calls and clock() < deadline):
        if wrap is None:
            call()
        else:
            with wrap(calls):
                call()
        calls += 1
    return calls, (clock() - started) / 1e9


def python_window(order: messages.Profile, call: Callable[[], Any],
                  thread_setup: Callable[[], None], drive: Drive) -> messages.Profiled:
    """cProfile around the measuring loop with one driver thread."""
    profiler = cProfile.Profile()
    start = time.perf_counter_ns()
    profiler.enable()
    timings = drive(call, 1, start, start + int(order.seconds * 1e9), thread_setup)
    profiler.disable()
    seconds = (time.perf_counter_ns() - start) / 1e9
    if order.trace_path:
        profiler.dump_stats(order.trace_path)
    table, stacks = traces.python_table(pstats.Stats(profiler).stats,  # type: ignore[attr-defined]
                                        sys.path, traces.qualified_names(profiler.getstats()))
    return messages.Profiled("python", int(sum(len(t) for t in timings.latency_ns)), seconds,
                             table, stacks, order.trace_path)


def torch_window(order: messages.Profile, call: Callable[[], Any],
                 cuda: bool) -> messages.Profiled:
    """torch's profiler (shapes, stacks; CUDA activity on a GPU copy) around ``call``."""
    from torch.autograd import profiler

    def profile(stacks: bool) -> Any:
        return profiler.profile(use_kineto=True, record_shapes=True, with_stack=stacks,
                                use_device="cuda" if cuda else None)

    with profile(False) as probe:  # starts Kineto and counts the events of one call
        call()
    per_call = max(1, count_events(probe))
    stacks = order.trace_path is not None  # the kept window has Python stacks: more events
    budget = EVENT_BUDGET // (STACKS_FACTOR if stacks else 1)
    max_calls = max(1, min(order.max_calls, budget // per_call))

    def mark(index: int) -> Any:
        return profiler.record_function(f"neuronperf::call {index}")

    with profile(stacks) as window:
        calls, seconds = repeat(call, order.seconds, max_calls, mark)
    path = order.trace_path or temporary_path(".json")
    try:
        window.export_chrome_trace(path)
        table = traces.torch_table(traces.read_chrome_trace(path))
    finally:
        if not order.trace_path:
            os.unlink(path)
    return messages.Profiled("operators", calls, seconds, table, [], order.trace_path)


def count_events(profile: Any) -> int:
    """Events a finished torch profile recorded (its Kineto results, when available)."""
    results = getattr(profile, "kineto_results", None)
    try:
        return len(results.events()) if results is not None else 1
    except (AttributeError, RuntimeError):
        return 1


def tensorflow_window(order: messages.Profile, call: Callable[[], Any]) -> messages.Profiled:
    """TensorFlow's profiler around ``call``; its XSpace is read back (and kept as a Chrome
    trace and the raw ``.xplane.pb`` when ``trace_path`` is set)."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="neuronperf-tf-profile-")
    try:
        options = tf.profiler.experimental.ProfilerOptions(
            host_tracer_level=2, python_tracer_level=0, device_tracer_level=1)
        tf.profiler.experimental.start(logdir, options=options)
        try:
            calls, seconds = repeat(call, order.seconds, order.max_calls)
        finally:
            tf.profiler.experimental.stop()
        found = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
        if not found:
            raise RuntimeError(f"TensorFlow's profiler wrote no .xplane.pb under {logdir}")
        space = xplane_pb2.XSpace()
        with open(found[-1], "rb") as stream:
            space.ParseFromString(stream.read())
        if order.trace_path:
            with open(order.trace_path, "w", encoding="utf-8") as stream:
                json.dump(traces.xspace_chrome_trace(space), stream)
            shutil.copyfile(found[-1], order.trace_path.removesuffix(".json") + ".xplane.pb")
        return messages.Profiled("operators", calls, seconds, traces.xspace_table(space), [],
                                 order.trace_path)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def temporary_path(suffix: str) -> str:
    """A fresh temporary file name (the file is created empty)."""
    handle, path = tempfile.mkstemp(prefix="neuronperf-profile-", suffix=suffix)
    os.close(handle)
    return path
