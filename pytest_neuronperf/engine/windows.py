"""Pure functions over one run's timings: latency percentiles and per-window series."""

from __future__ import annotations

import math

import numpy as np

PERCENTILES = (0, 50, 90, 95, 99, 100)
MAX_WINDOW_S = 1.0
MIN_WINDOWS = 10


def latency_summary(latency_ns: np.ndarray) -> dict[str, float]:
    """NeuronPerf's latency keys (ms): p0, p50, p90, p95, p99, p100 and the mean."""
    if latency_ns.size == 0:
        return {**{f"latency_ms_p{p}": math.nan for p in PERCENTILES}, "latency_ms_avg": math.nan}
    ms = latency_ns.astype(np.float64) / 1e6
    values = np.percentile(ms, PERCENTILES)
    summary = {f"latency_ms_p{p}": float(v) for p, v in zip(PERCENTILES, values, strict=True)}
    summary["latency_ms_avg"] = float(ms.mean())
    return summary


def window_length_s(duration_s: float) -> float:
    """1 s windows where the duration allows, shorter so that a run has at least ~10 of them."""
    return min(MAX_WINDOW_S, duration_s / MIN_WINDOWS)


def window_series(
    end_ns: np.ndarray,
    latency_ns: np.ndarray,
    start_ns: int,
    duration_s: float,
    batch_size: int,
) -> dict[str, list[float]]:
    """Throughput (samples/s), p50 and p99 latency (ms) of each whole window after ``start_ns``.

    Windows are aligned to the common start and only whole windows are kept. Throughput counts
    the work done inside each window: a call that straddles a boundary (or the end of the run)
    adds the fraction of its batch that falls in each window, so slow models give smooth
    series instead of whole-call steps. Latency percentiles take the calls that finished in the
    window; calls that finished after the run are not in any latency figure.
    """
    length_s = window_length_s(duration_s)
    count = max(1, int(math.floor(duration_s / length_s + 1e-9)))
    length_ns = length_s * 1e9
    rel_end = (end_ns - start_ns).astype(np.float64)
    rel_start = rel_end - latency_ns.astype(np.float64)
    end_index = np.floor(rel_end / length_ns).astype(np.int64)
    start_index = np.floor(rel_start / length_ns).astype(np.int64)

    work = np.zeros(count, dtype=np.float64)
    whole = (start_index == end_index) & (end_index >= 0) & (end_index < count)
    work += np.bincount(end_index[whole], minlength=count)[:count] * float(batch_size)
    for s, e in zip(rel_start[~whole], rel_end[~whole], strict=True):
        span = max(e - s, 1.0)
        first = max(int(s // length_ns), 0)
        last = min(int(e // length_ns), count - 1)
        for k in range(first, last + 1):
            overlap = min(e, (k + 1) * length_ns) - max(s, k * length_ns)
            if overlap > 0:
                work[k] += batch_size * overlap / span

    finished = (end_index >= 0) & (end_index < count)
    index, lat = end_index[finished], latency_ns[finished]
    calls = np.bincount(index, minlength=count)
    order = np.argsort(index, kind="stable")
    groups = np.split(lat[order].astype(np.float64) / 1e6, np.cumsum(calls)[:-1])
    p50 = [float(np.percentile(g, 50)) if g.size else math.nan for g in groups]
    p99 = [float(np.percentile(g, 99)) if g.size else math.nan for g in groups]
    return {
        "throughput": [float(w / length_s) for w in work],
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
    }
