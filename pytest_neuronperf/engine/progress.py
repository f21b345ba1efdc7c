"""How far a ``benchmark`` call has got: which configuration runs, of how many, and about how
many seconds are left. The engine reports it; the library logs it, the plugin draws it. And
the library's log line for each configuration's outcome (``ErrorLog``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_neuronperf.logs import printable
from pytest_neuronperf.reports import config_label

log = logging.getLogger("pytest_neuronperf")

FIRST_OVERHEAD_S = 1.0
"""Guess of a configuration's load + warm-up time before one has been measured."""


@dataclass(frozen=True)
class Progress:
    """One configuration about to be measured."""

    model: str
    index: int
    """1-based position of this configuration."""
    total: int
    label: str
    """``bs=1 n=2 w=1 p=1``."""
    seconds_left: float
    """Estimate for this configuration and the ones after it."""


ProgressCallback = Callable[[Progress], None]


class Estimate:
    """Seconds left, from the measured duration plus the load/warm-up time seen so far."""

    def __init__(self, total: int, duration: float, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.duration = duration
        self._clock = clock
        self._overheads: list[float] = []
        self._started: float | None = None

    def start(self, index: int) -> float:
        """Configuration ``index`` (1-based) starts now; seconds left including it."""
        self._started = self._clock()
        overhead = (sum(self._overheads) / len(self._overheads) if self._overheads
                    else FIRST_OVERHEAD_S)
        return (self.total - index + 1) * (self.duration + overhead)

    def finish(self) -> None:
        """The configuration started last is done: learn its overhead."""
        if self._started is not None:
            self._overheads.append(max(0.0, self._clock() - self._started - self.duration))
            self._started = None


def log_progress(progress: Progress) -> None:
    """The library's progress line (shown at ``verbosity=1``)."""
    log.info("Benchmarking %r %s (configuration %d of %d), ~%.0f seconds remaining",
             progress.model, progress.label, progress.index, progress.total,
             progress.seconds_left)


class ErrorLog:
    """One line per configuration's outcome; an error that repeats is said once, with a count
    at the end, instead of once per configuration."""

    def __init__(self) -> None:
        self._repeats: dict[str, int] = {}

    def outcome(self, report: Mapping[str, Any]) -> None:
        """Log one configuration's outcome (nothing yet for return_timers' raw results)."""
        if "throughput_avg" not in report and report.get("status") == "ok":
            return
        if report["status"] == "ok":
            log.info("  throughput %.1f/s, p50 %.3f ms, p99 %.3f ms", report["throughput_avg"],
                     report["latency_ms_p50"], report["latency_ms_p99"])
            return
        first = (report.get("error") or "no reason given").strip().splitlines()
        line = printable(first[-1] if first else "no reason given")  # a traceback's last line
        if line in self._repeats:
            self._repeats[line] += 1
            return
        self._repeats[line] = 1
        log.warning("error in %s: %s", config_label(report), line)

    def close(self) -> None:
        """Say how often each repeated error happened."""
        for line, count in self._repeats.items():
            if count > 1:
                log.warning("the same error in %d more configuration(s): %s", count - 1, line)
