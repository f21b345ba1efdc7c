"""Top-level models with a known amount of work per call, for the paired tests (workers import
them by name)."""

from __future__ import annotations

from typing import Any

import numpy as np

MATRIX = np.random.default_rng(0).standard_normal((96, 96))


def _work(x: np.ndarray, repeats: int) -> np.ndarray:
    out = x
    for _ in range(repeats):
        out = np.tanh(out @ MATRIX)
    return out


class OneUnit:
    """One unit of work per call."""

    def __call__(self, x: np.ndarray) -> Any:
        return _work(x, 4)


class ThreeUnits:
    """Three times OneUnit's work per call."""

    def __call__(self, x: np.ndarray) -> Any:
        return _work(x, 12)


class HangsWhileMeasuring:
    """OneUnit's work, until 0.4 s after its first call: then every call hangs (a base that
    deadlocks in the middle of a paired run)."""

    first_call: float | None = None

    def __call__(self, x: np.ndarray) -> Any:
        import time

        now = time.monotonic()
        if HangsWhileMeasuring.first_call is None:
            HangsWhileMeasuring.first_call = now
        if now - HangsWhileMeasuring.first_call > 0.4:
            time.sleep(3600)
        return _work(x, 4)
