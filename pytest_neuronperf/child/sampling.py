"""``stats_interval``: a copy samples its own CPU use and resident memory during the window.

A daemon thread waits for the common start, notes the process's CPU time, then wakes every
``interval`` seconds until the copy stops and records its resident set size (``psutil``). The
copy reports its mean CPU use over the window (CPU seconds / wall seconds x 100: 100 = one
logical CPU busy the whole time) and its peak resident memory.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ResourceUse:
    """One copy's CPU use and resident memory during the window."""

    cpu_percent_avg: float
    memory_mb_peak: float
    samples: int


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class Sampler:
    """Samples this process from ``start_ns`` until :meth:`stop` (``perf_counter_ns`` clock)."""

    def __init__(self, interval: float, start_ns: int) -> None:
        self._interval = max(0.01, float(interval))
        self._start_ns = start_ns
        self._process = psutil.Process()
        self._rss: list[int] = []
        self._began: tuple[float, float] | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neuronperf-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait_s = (self._start_ns - time.perf_counter_ns()) / 1e9
        if wait_s > 0 and self._stopped.wait(wait_s):
            return
        self._began = (time.perf_counter(), _cpu_seconds(self._process))
        self._rss.append(self._process.memory_info().rss)
        while not self._stopped.wait(self._interval):
            self._rss.append(self._process.memory_info().rss)

    def stop(self) -> ResourceUse:
        """End sampling (with one last sample) and summarise."""
        self._stopped.set()
        self._thread.join()
        self._rss.append(self._process.memory_info().rss)
        cpu = math.nan
        if self._began is not None:
            wall = time.perf_counter() - self._began[0]
            if wall > 0:
                cpu = (_cpu_seconds(self._process) - self._began[1]) / wall * 100.0
        return ResourceUse(float(cpu), max(self._rss) / 2**20, len(self._rss))
