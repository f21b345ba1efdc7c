"""Top-level models for the serving-scenario figures (worker processes import them by name)."""

from __future__ import annotations

import time
from typing import Any

SERVICE_S = 0.005
STALL_EVERY_S = 2.0
STALL_S = 0.3


def spin(seconds: float) -> None:
    """Busy-wait on perf_counter (holds the core like compute, unlike sleep)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


class Spin5ms:
    """A fixed 5 ms of busy work per call: an M/D/1 server at one copy, one worker."""

    def __call__(self, x: Any) -> Any:
        spin(SERVICE_S)
        return x


class StallingModel:
    """5 ms per call, and once every 2 s of wall time one call stalls for 300 ms."""

    def __init__(self) -> None:
        self.next_stall = time.perf_counter() + STALL_EVERY_S

    def __call__(self, x: Any) -> Any:
        now = time.perf_counter()
        if now >= self.next_stall:
            self.next_stall = now + STALL_EVERY_S
            spin(STALL_S)
        spin(SERVICE_S)
        return x
