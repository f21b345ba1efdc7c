"""Per-window series: alignment, whole windows, and fractional work of straddling calls."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_neuronperf.engine.windows import window_length_s, window_series

MS = 1_000_000


def series(calls: list[tuple[float, float]], duration: float = 1.0, batch: int = 1) -> dict:
    """Window series of calls given as (start ms, end ms) after a start at t=1000 ms."""
    start = 1000 * MS
    ends = np.array([start + int(e * MS) for _, e in calls], dtype=np.int64)
    lats = np.array([int((e - s) * MS) for s, e in calls], dtype=np.int64)
    return window_series(ends, lats, start, duration, batch)


def test_window_length_gives_ten_windows_for_short_runs_and_one_second_for_long():
    assert window_length_s(3) == pytest.approx(0.3)
    assert window_length_s(30) == 1.0


def test_calls_inside_windows_count_whole():
    # 1 s run, 100 ms windows; two 10 ms calls in window 0, one in window 3
    out = series([(0, 10), (10, 20), (300, 310)], batch=4)
    assert out["throughput"][:4] == pytest.approx([80.0, 0.0, 0.0, 40.0])
    assert out["latency_ms_p50"][0] == pytest.approx(10.0)
    assert math.isnan(out["latency_ms_p50"][1])


def test_straddling_call_is_split_by_overlap():
    # a 200 ms call from 50 to 250 ms: 1/4 in window 0, 1/2 in window 1, 1/4 in window 2
    out = series([(50, 250)], batch=8)
    assert out["throughput"][:3] == pytest.approx([20.0, 40.0, 20.0])
    assert sum(out["throughput"]) * 0.1 == pytest.approx(8.0)
    assert out["latency_ms_p50"][2] == pytest.approx(200.0)  # finished in window 2


def test_call_overrunning_the_run_counts_its_inside_part_but_no_latency():
    out = series([(900, 1100)], batch=2)  # half of it inside the last window
    assert out["throughput"][9] == pytest.approx(10.0)
    assert all(math.isnan(v) for v in out["latency_ms_p99"])
