"""Inside a model copy: the generate scenario's drivers, beside the closed loop
(``child.main.drive``) and the open loop (``child.open_loop.serve``).

A request is a batch of prompts (``token_streams.plan_batches``, dealt round-robin) whose
tokens a :class:`~pytest_neuronperf.child.token_streams.TokenStream` timestamps as they come.
Each driver thread keeps its own :class:`RequestLog` of ``array("q")`` columns: per request its
arrival, start, end and counts, and every token's ``perf_counter_ns``. Nothing crosses the pipe
until the window is over; then one ``generated`` message carries every request.

- Closed loop (:func:`drive_requests`): each of ``workers`` threads sends its next request when
  the last one returned, from the common start until a request ends after the stop; arrival is
  the request's start.
- Open loop (:func:`serve_requests`): requests arrive on the server scenario's Poisson schedule
  (``open_loop``: seeded per copy, taken in arrival order) whether or not the model keeps up;
  arrival is the scheduled time, so TTFT and end-to-end latency count the queueing.

A request whose stream yields no token, or fewer than asked while ``ignore_eos`` holds, stops the
copy with a :class:`~pytest_neuronperf.protocol.messages.Refusal` that says which prompt and what
to do; the first request, in warm-up, finds most such faults before anything is measured.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from pytest_neuronperf.child.open_loop import ArrivalQueue, arrival_offsets_ns, sleep_until
from pytest_neuronperf.child.token_streams import Batch, TokenStream, plan_batches, stream_for
from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.messages import Refusal
from pytest_neuronperf.protocol.specs import GenerateSpec, ServerSpec, WorkerSpec

ProfileWindow = Callable[[messages.Profile, Callable[[], Any]], messages.Profiled]
"""Runs one profile window over a call (``child.profile_window.run_window``, bound by the copy)."""

AUTO_WARMUP_MIN_REQUESTS = 2
AUTO_WARMUP_TOLERANCE = 0.10
"""``warmup="auto"``: requests until two in a row take the same time per token within this."""


class RequestLog:
    """One driver thread's requests, column by column, and all their token timestamps."""

    COLUMNS = ("request", "arrival", "start", "end", "tokens", "prompt", "sequences", "counts")

    def __init__(self) -> None:
        self.columns = {name: array("q") for name in self.COLUMNS}
        self.stamps = array("q")

    def __len__(self) -> int:
        return len(self.columns["request"])


def run_request(stream: TokenStream, batches: Sequence[Batch], index: int, arrival: int | None,
                log: RequestLog, ignore_eos: bool, clock: Callable[[], int] = time.perf_counter_ns
                ) -> int:
    """Run request ``index`` (its batch: ``index`` modulo the plan), log it; its end (ns)."""
    batch = batches[index % len(batches)]
    before = len(log.stamps)
    start = clock()
    tokens, prompt = stream.run(batch.payload, batch.output_tokens, log.stamps.append)
    end = clock()
    stamped = len(log.stamps) - before
    check_tokens(batch, stamped, tokens, ignore_eos, getattr(stream, "source", "the model"))
    for name, value in zip(RequestLog.COLUMNS, (
            index, start if arrival is None else arrival, start, end, tokens,
            prompt if prompt >= 0 else batch.prompt_tokens, batch.sequences, stamped),
            strict=True):
        log.columns[name].append(value)
    return end


def check_tokens(batch: Batch, stamped: int, tokens: int, ignore_eos: bool,
                 source: str = "the model") -> None:
    """A request that produced no token, or fewer than asked (unless EOS may stop it), is a
    fault of the model or server (``source``), said in one sentence."""
    where = f"prompt {batch.first_prompt} (output_tokens={batch.output_tokens})"
    if stamped == 0 or tokens == 0:
        raise Refusal(
            f"{source} produced no token for {where}: its stream ended (or returned nothing) "
            f"before the first token, so there is no time to first token to measure")
    if tokens < batch.output_tokens and ignore_eos:
        raise Refusal(
            f"{source} produced {tokens} of the {batch.output_tokens} tokens asked for {where}: "
            f"it stopped early (end of sequence, or a shorter stream). Make it generate exactly "
            f"output_tokens (transformers: min_new_tokens; vLLM: ignore_eos), lower "
            f"output_tokens, or pass ignore_eos=False to measure outputs of any length")


def run(conn: Connection, link: Any, spec: WorkerSpec, model: Any, started_ns: int,
        hooks: Any, thread_setup: Callable[[], None], profile_window: ProfileWindow) -> None:
    """The generate scenario's part of ``child.run``: plan, warm up, then answer every ``go``
    with a ``generated`` message (the closed loop loops over a paired run's slices), and every
    ``profile`` order with a window in which one call is one request."""
    generate = spec.generate
    assert generate is not None
    stream = stream_for(model, generate)
    batches = plan_batches(stream, generate, spec.batch_size)
    load_ms = (time.perf_counter_ns() - started_ns) / 1e6
    warmup_ms, warmup_requests = warm_up(stream, batches, generate, spec.warmup,
                                         spec.max_warmup_s)
    hooks.warmed_up()
    messages.send(conn, messages.Ready(os.getpid(), load_ms, warmup_ms, warmup_requests))
    while True:
        go = link.next_order()
        if isinstance(go, messages.Profile):  # child/profile_window.py, a request per call
            messages.send(conn, profile_window(go, request_call(stream, batches, generate)))
            continue
        if spec.server is not None:
            messages.send(conn, serve_requests(stream, batches, generate, spec.workers,
                                               go.start_ns, spec.server, thread_setup))
            return

        def closed(_call: Any, workers: int, start_ns: int, end_ns: int,
                   setup: Callable[[], None]) -> messages.Generated:
            return drive_requests(stream, batches, generate, workers, start_ns, end_ns, setup)

        generated = hooks.drive(None, go, thread_setup, closed)
        messages.send(conn, dataclasses.replace(generated, cpu_s=time.process_time()))
        if go.last:
            messages.send(conn, hooks.stats())
            return


def request_call(stream: TokenStream, batches: Sequence[Batch],
                 spec: GenerateSpec) -> Callable[[], int]:
    """One request after another (the plan's batches in turn) as a zero-argument call: what a
    profile window repeats."""
    counter = itertools.count()

    def call() -> int:
        return run_request(stream, batches, next(counter), None, RequestLog(), spec.ignore_eos)

    return call


def warm_up(stream: TokenStream, batches: Sequence[Batch], spec: GenerateSpec,
            warmup: float | str, max_s: float) -> tuple[float, int]:
    """Run requests until warm; (elapsed ms, requests). The first request checks the stream.

    ``warmup`` in seconds runs requests that long (at least one). ``"auto"`` runs them until
    two in a row take the same time per token within ``AUTO_WARMUP_TOLERANCE`` (after at least
    ``AUTO_WARMUP_MIN_REQUESTS``, every prompt once if there are few), or ``max_s`` passes.
    """
    clock = time.perf_counter_ns
    log = RequestLog()
    started = clock()
    deadline = started + int((max_s if warmup == "auto" else float(warmup)) * 1e9)
    index = 0
    while True:
        run_request(stream, batches, index, None, log, spec.ignore_eos)
        index += 1
        if clock() >= deadline or (warmup == "auto" and settled(log, len(batches))):
            return (clock() - started) / 1e6, index


def settled(log: RequestLog, planned: int) -> bool:
    """Warm enough: the last two requests agree on time per token (and, with at most a few
    planned requests, each ran once)."""
    if len(log) < max(AUTO_WARMUP_MIN_REQUESTS, min(planned, 4)):
        return False
    columns = log.columns
    per_token = [(columns["end"][i] - columns["start"][i]) / max(columns["tokens"][i], 1)
                 for i in (-2, -1)]
    return abs(per_token[1] - per_token[0]) <= AUTO_WARMUP_TOLERANCE * max(per_token)


def wait_for(start_ns: int) -> None:
    """Sleep, then spin, until the common start."""
    sleep_until(start_ns)


def run_threads(target: Callable[[int], None], workers: int,
                thread_setup: Callable[[], None]) -> None:
    """``target(i)`` on ``workers`` threads (this one is thread 0); the first fault is raised
    again here once every thread is done (a refusal keeps its sentence)."""
    faults: dict[int, BaseException] = {}

    def guarded(index: int, setup: Callable[[], None]) -> None:
        try:
            setup()
            target(index)
        except BaseException as exc:  # noqa: BLE001 - raised again below
            faults[index] = exc

    threads = [threading.Thread(target=guarded, args=(i, thread_setup),
                                name=f"neuronperf-generate-{i}") for i in range(1, workers)]
    for thread in threads:
        thread.start()
    guarded(0, lambda: None)
    for thread in threads:
        thread.join()
    if faults:
        raise faults[min(faults)]


def drive_requests(stream: TokenStream, batches: Sequence[Batch], spec: GenerateSpec,
                   workers: int, start_ns: int, end_ns: int,
                   thread_setup: Callable[[], None]) -> messages.Generated:
    """The closed loop: each thread sends its next request when the last returned, until one
    ends after ``end_ns`` (that one is kept: its tokens inside the window count)."""
    logs = [RequestLog() for _ in range(workers)]
    numbers = itertools.count()  # next() is atomic under the GIL: each request once

    def loop(index: int) -> None:
        wait_for(start_ns)
        log = logs[index]
        while run_request(stream, batches, next(numbers), None, log, spec.ignore_eos) <= end_ns:
            pass

    run_threads(loop, workers, thread_setup)
    return generated(logs)


def serve_requests(stream: TokenStream, batches: Sequence[Batch], spec: GenerateSpec,
                   workers: int, start_ns: int, server: ServerSpec,
                   thread_setup: Callable[[], None]) -> messages.Generated:
    """The open loop: Poisson arrivals (the server scenario's), taken in arrival order by
    ``workers`` threads; arrivals never served by the end of draining stay in the message."""
    arrivals = arrival_offsets_ns(server.rate, server.duration_s, server.seed,
                                  server.copy_index) + start_ns
    stop_ns = start_ns + int((server.duration_s + server.drain_s) * 1e9)
    queue = ArrivalQueue(arrivals, 1, None, stop_ns)
    logs = [RequestLog() for _ in range(workers)]

    def loop(index: int) -> None:
        log = logs[index]
        while group := queue.take():
            run_request(stream, batches, group.start, int(arrivals[group.start]), log,
                        spec.ignore_eos)

    run_threads(loop, workers, thread_setup)
    return generated(logs, arrivals)


def generated(logs: Sequence[RequestLog], arrivals: np.ndarray | None = None
              ) -> messages.Generated:
    """Every thread's requests as one message; with ``arrivals`` (the open loop), one row per
    arrival in arrival order, never-served ones with start and end -1."""
    columns = {name: np.concatenate([np.frombuffer(log.columns[name], dtype=np.int64)
                                     for log in logs]) for name in RequestLog.COLUMNS}
    parts = [np.frombuffer(log.stamps, dtype=np.int64) for log in logs]
    offsets = np.concatenate([[0], np.cumsum(columns["counts"])[:-1]]).astype(np.int64)
    stamps = np.concatenate(parts) if parts else np.empty(0, np.int64)
    if arrivals is None:
        return messages.Generated(columns["arrival"], columns["start"], columns["end"],
                                  columns["tokens"], columns["prompt"], columns["sequences"],
                                  columns["counts"], stamps)
    rows = len(arrivals)
    out = {name: np.full(rows, -1 if name in ("start", "end", "prompt") else 0, np.int64)
           for name in ("start", "end", "tokens", "prompt", "sequences", "counts")}
    where = columns["request"]
    for name in out:
        out[name][where] = columns[name]
    order = np.argsort(where, kind="stable")
    pieces = [stamps[offsets[i]:offsets[i] + columns["counts"][i]] for i in order]
    return messages.Generated(
        np.asarray(arrivals, np.int64), out["start"], out["end"], out["tokens"], out["prompt"],
        out["sequences"], out["counts"],
        np.concatenate(pieces) if pieces else np.empty(0, np.int64))
