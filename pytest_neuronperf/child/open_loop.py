"""The open-loop (server scenario) driver that runs inside a model process, and its arrivals.

Queries arrive on a pre-generated Poisson schedule whether or not the model keeps up. The
copy's worker threads take them from one shared queue in arrival order; each query records its
scheduled arrival, the start and the end of the call that served it, so latency counts the time
spent queueing behind a slow call (no coordinated omission). Imports only numpy and the message
codec: it runs beside a framework runtime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_neuronperf.protocol import messages
from pytest_neuronperf.protocol.specs import ServerSpec

SPIN_NS = 300_000
"""Sleep until this close to an arrival, then spin (the OS wakes a sleeper ~0.1 ms late)."""


def arrival_offsets_ns(rate: float, duration_s: float, seed: int, copy_index: int) -> np.ndarray:
    """Poisson arrival times (ns after the common start) of one copy's stream, in ``[0, d)``.

    Each copy's stream is independent and reproducible: numpy's Generator seeded with
    ``(seed, copy_index)``, exponential gaps of mean ``1 / rate``.
    """
    if rate <= 0:
        raise ValueError(f"the arrival rate must be positive, got {rate!r}")
    rng = np.random.default_rng([seed, copy_index])
    expected = rate * duration_s
    count = int(expected + 10 * np.sqrt(expected) + 10)
    times = np.cumsum(rng.exponential(1.0 / rate, size=count))
    while times[-1] < duration_s:  # never in practice (10 sigma), but never wrong either
        more = times[-1] + np.cumsum(rng.exponential(1.0 / rate, size=count))
        times = np.concatenate([times, more])
    return (times[times < duration_s] * 1e9).astype(np.int64)


def sleep_until(deadline_ns: int, clock: Callable[[], int] = time.perf_counter_ns) -> None:
    """Sleep until ``SPIN_NS`` before ``deadline_ns``, then spin; returns at once if it passed."""
    remaining = deadline_ns - clock()
    if remaining > SPIN_NS:
        time.sleep((remaining - SPIN_NS) / 1e9)
    while clock() < deadline_ns:
        pass


class ArrivalQueue:
    """The copy's queue: queries in arrival order, handed out one group at a time.

    One worker at a time forms a group (under the lock, as one Triton batcher does): it waits
    for the next query's arrival, then, with dynamic batching, takes every query already
    waiting and those that arrive until the group is full or ``max_queue_delay_ns`` after the
    first one's arrival.
    """

    def __init__(self, arrivals_ns: np.ndarray, group_size: int, max_delay_ns: int | None,
                 stop_ns: int, clock: Callable[[], int] = time.perf_counter_ns,
                 wait: Callable[[int], None] = sleep_until) -> None:
        self.arrivals = arrivals_ns
        self._group_size = group_size if max_delay_ns is not None else 1
        self._max_delay_ns = max_delay_ns or 0
        self._stop_ns = stop_ns
        self._clock = clock
        self._wait = wait
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> range:
        """The next group of query indices to serve (empty: none left, or draining is over)."""
        with self._lock:
            first = self._next
            if first >= len(self.arrivals) or self._clock() > self._stop_ns:
                return range(0)
            self._wait(int(self.arrivals[first]))
            last = first + 1
            if self._group_size > 1:
                deadline = int(self.arrivals[first]) + self._max_delay_ns
                while last - first < self._group_size and last < len(self.arrivals):
                    arrival = int(self.arrivals[last])
                    if arrival > self._clock():  # not here yet: wait only within the delay
                        if arrival > deadline:
                            break
                        self._wait(arrival)
                    last += 1
            self._next = last
            return range(first, last)


def serve(
    call: Callable[[], Any],
    workers: int,
    start_ns: int,
    spec: ServerSpec,
    thread_setup: Callable[[], None],
) -> messages.Served:
    """Serve the copy's Poisson stream from ``workers`` threads; every query's timestamps."""
    offsets = arrival_offsets_ns(spec.rate, spec.duration_s, spec.seed, spec.copy_index)
    arrivals = offsets + start_ns
    stop_ns = start_ns + int((spec.duration_s + spec.drain_s) * 1e9)
    queue = ArrivalQueue(arrivals, spec.batch_size, spec.max_queue_delay_ns, stop_ns)
    began = np.full(len(arrivals), -1, dtype=np.int64)
    ended = np.full(len(arrivals), -1, dtype=np.int64)

    def worker(setup: Callable[[], None]) -> None:
        setup()
        clock = time.perf_counter_ns
        while True:
            group = queue.take()
            if not group:
                return
            t0 = clock()
            call()
            t1 = clock()
            began[group.start:group.stop] = t0
            ended[group.start:group.stop] = t1

    threads = [threading.Thread(target=worker, args=(thread_setup,),
                                name=f"neuronperf-server-{i}") for i in range(1, workers)]
    for thread in threads:
        thread.start()
    worker(lambda: None)
    for thread in threads:
        thread.join()
    return messages.Served(arrivals, began, ended)
