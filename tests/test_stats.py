"""Pure statistics: latency summaries, window series, and the comparisons the gate relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_neuronperf.engine.windows import (
    latency_summary,
    window_length_s,
    window_series,
)
from pytest_neuronperf.gating.stats import (
    bootstrap_ratio_ci,
    drop_hiccups,
    finite_values,
    mann_whitney_p,
    median_ratio,
)


def test_latency_summary_reports_milliseconds() -> None:
    summary = latency_summary(np.array([1_000_000, 2_000_000, 3_000_000], dtype=np.int64))
    assert summary["latency_ms_p0"] == 1.0
    assert summary["latency_ms_p50"] == 2.0
    assert summary["latency_ms_p100"] == 3.0
    assert summary["latency_ms_avg"] == 2.0


def test_latency_summary_of_no_calls_is_nan() -> None:
    assert all(math.isnan(v) for v in latency_summary(np.array([], dtype=np.int64)).values())


def test_short_runs_still_get_ten_windows() -> None:
    assert window_length_s(3.0) == pytest.approx(0.3)
    assert window_length_s(60.0) == 1.0


def test_window_series_counts_calls_per_window() -> None:
    start = 1_000
    ends = start + np.array([0.05e9, 0.15e9, 0.25e9, 0.35e9], dtype=np.int64)
    latencies = np.full(4, 2_000_000, dtype=np.int64)
    series = window_series(ends, latencies, start, duration_s=1.0, batch_size=4)
    assert len(series["throughput"]) == 10
    assert series["throughput"][:4] == [40.0, 40.0, 40.0, 40.0]
    assert series["throughput"][4] == 0.0
    assert math.isnan(series["latency_ms_p50"][4])


def test_finite_values_treats_none_nan_and_inf_as_missing() -> None:
    values = finite_values([1.0, None, math.nan, math.inf, 2.0])
    assert values.tolist() == [1.0, 2.0]


def test_median_ratio() -> None:
    assert median_ratio(np.array([1.0, 2.0, 3.0]), np.array([4.0])) == 2.0
    assert math.isnan(median_ratio(np.array([]), np.array([1.0])))
    assert math.isnan(median_ratio(np.array([0.0]), np.array([1.0])))


def test_bootstrap_interval_is_deterministic_and_brackets_the_ratio() -> None:
    rng = np.random.default_rng(3)
    base = 100 * np.exp(rng.normal(0, 0.05, 10))
    now = 80 * np.exp(rng.normal(0, 0.05, 10))
    low, high = bootstrap_ratio_ci(base, now)
    assert (low, high) == bootstrap_ratio_ci(base, now)
    assert low < median_ratio(base, now) < high
    assert 0.7 < low and high < 0.9


def test_bootstrap_interval_of_nothing_is_nan() -> None:
    low, high = bootstrap_ratio_ci(np.array([]), np.array([1.0]))
    assert math.isnan(low) and math.isnan(high)


def test_mann_whitney_is_one_sided() -> None:
    base = np.arange(10, 20, dtype=float)
    lower = base - 8
    assert mann_whitney_p(lower, base, "less") < 0.001
    assert mann_whitney_p(lower, base, "greater") > 0.99


def test_mann_whitney_of_identical_constants_is_not_significant() -> None:
    same = np.full(10, 5.0)
    assert mann_whitney_p(same, same, "less") == 1.0


def test_mann_whitney_rejects_two_sided() -> None:
    with pytest.raises(ValueError, match="alternative"):
        mann_whitney_p(np.ones(3), np.ones(3), "two-sided")


def test_a_stalled_window_is_a_hiccup_on_the_worse_side_only() -> None:
    throughput = np.array([1000.0, 990, 1010, 1005, 995, 500, 1002, 998, 1500, 1001])
    kept = drop_hiccups(throughput, higher_is_better=True)
    assert 500 not in kept and 1500 in kept and kept.size == 9
    latency = np.array([2.0, 2.1, 1.9, 2.0, 4.0, 2.05, 1.95, 2.0, 1.0, 2.0])
    kept = drop_hiccups(latency, higher_is_better=False)
    assert 4.0 not in kept and 1.0 in kept


def test_steady_or_quantised_windows_have_no_hiccups() -> None:
    steady = np.array([10.0] * 8 + [9.8, 10.2])
    assert drop_hiccups(steady, higher_is_better=True).size == 10


def test_many_slow_windows_are_the_run_not_hiccups() -> None:
    """At most a quarter of the windows (the worst) is left out: systematic stalls stay."""
    throughput = np.array([1000.0] * 6 + [400, 450, 500, 550])
    kept = drop_hiccups(throughput, higher_is_better=True)
    assert sorted(kept.tolist()) == [500, 550] + [1000.0] * 6
