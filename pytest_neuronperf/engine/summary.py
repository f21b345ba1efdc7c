"""From one configuration's raw results to its report: the one place both ``benchmark`` and
``get_reports(results)`` (for ``return_timers=True``) make reports, so they are the same.

Raw results are ``(config, results)``: ``config`` holds the identifying keys of the report,
``results`` the per-copy timings (ns, one array per driver thread), load and warm-up times,
resource use and accuracy-metric states, the common start, the measured seconds and the
interference meter's figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from pytest_neuronperf.engine import windows as stats
from pytest_neuronperf.evaluation import aggregate
from pytest_neuronperf.reports import Report

RESOURCE_KEYS = ("cpu_percent_avg", "memory_mb_peak")
METRIC_KEYS = (
    "total_infs", "throughput_avg", "throughput_peak",
    *(f"latency_ms_p{p}" for p in stats.PERCENTILES), "latency_ms_avg",
    "load_avg_ms", "warmup_avg_ms", *RESOURCE_KEYS,
)
"""Metric keys every report has (None when the configuration failed)."""


class NothingMeasured(Exception):
    """No call finished in the window: there is nothing to summarise."""


def error_report(config: Mapping[str, Any], reason: str) -> Report:
    """A report for a configuration that could not be measured: metrics are null."""
    report: dict[str, Any] = dict(config)
    report.update({key: None for key in METRIC_KEYS})
    report.update(status="error", error=reason, windows=None)
    return cast(Report, report)


def summarize(config: Mapping[str, Any], results: Mapping[str, Any]) -> Report:
    """The report of one configuration from its raw results."""
    if results.get("status", "ok") != "ok":
        return error_report(config, str(results.get("error") or "no reason recorded"))
    copies: Sequence[Mapping[str, Any]] = results["copies"]
    batch_size = int(config["batch_size"])
    start_ns = int(results["start_ns"])
    ends = _joined(copies, "end_ns")
    lats = _joined(copies, "latency_ns")
    if results.get("single_pass"):
        if ends.size == 0:
            raise NothingMeasured(
                f"the dataset yields no batch of {batch_size} samples (incomplete batches are "
                f"dropped): use a smaller batch size or more data"
            )
        measured_s = max((int(ends.max()) - start_ns) / 1e9, 1e-9)
        finished = np.ones(ends.size, dtype=bool)
    else:
        measured_s = float(results["measured_s"])
        finished = ends <= start_ns + int(measured_s * 1e9)
    calls = int(finished.sum())
    if calls == 0:
        raise NothingMeasured(
            f"no call finished within the {measured_s} s window: one inference takes longer "
            f"than the duration; raise duration"
        )
    windows = stats.window_series(ends, lats, start_ns, measured_s, batch_size)
    report: dict[str, Any] = dict(config)
    report.update(
        total_infs=calls * batch_size,
        throughput_avg=float(np.mean(windows["throughput"])),
        throughput_peak=max(windows["throughput"]),
        **stats.latency_summary(lats[finished]),
        latency_sketch=stats.latency_sketch(lats[finished]),
        load_avg_ms=float(np.mean([c["load_ms"] for c in copies])),
        warmup_avg_ms=float(np.mean([c["warmup_ms"] for c in copies])),
        **resources(copies),
        status="ok",
        error=None,
        cores=list(results.get("cores") or []),
        windows=windows,
        launch_windows=[len(windows["throughput"])],
        interference=results.get("interference"),
    )
    if results.get("single_pass"):
        report["duration"] = measured_s
    cost = results.get("cost_per_hour")
    if cost is not None:
        report["cost_per_1m_inf"] = cost_per_million(float(cost), report["throughput_avg"])
    report.update(eval_values(copies))
    return cast(Report, report)


def _joined(copies: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    arrays = [np.asarray(a, dtype=np.int64) for c in copies for a in c[key]]
    return np.concatenate(arrays) if arrays else np.empty(0, np.int64)


def resources(copies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean CPU use of the copies and the peak resident memory of the largest, plus per copy."""
    cpu = [_number(c.get("cpu_percent_avg")) for c in copies]
    memory = [_number(c.get("memory_mb_peak")) for c in copies]
    finite_cpu = [v for v in cpu if v is not None]
    finite_memory = [v for v in memory if v is not None]
    return {
        "cpu_percent_avg": float(np.mean(finite_cpu)) if finite_cpu else None,
        "memory_mb_peak": max(finite_memory) if finite_memory else None,
        "cpu_percent_per_copy": cpu,
        "memory_mb_peak_per_copy": memory,
    }


def _number(value: Any) -> float | None:
    """A finite figure, or None (not measured), never NaN (reports round-trip through JSON)."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def cost_per_million(cost_per_hour: float, throughput: float) -> float | None:
    """The cost of a million inferences at ``throughput`` samples/s on a device costing this."""
    if not throughput or not math.isfinite(throughput):
        return None
    return cost_per_hour / 3600.0 / throughput * 1e6


def eval_values(copies: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each accuracy metric over the outputs of every copy (report key = metric name)."""
    names = list(dict.fromkeys(n for c in copies for n in (c.get("eval_states") or {})))
    if not names:
        return {}

    return {name: aggregate(name, [c["eval_states"][name] for c in copies
                                   if name in (c.get("eval_states") or {})])
            for name in names}


def is_raw_results(value: Any) -> bool:
    """True for ``benchmark(..., return_timers=True)``'s list of ``(config, results)``."""
    return isinstance(value, list | tuple) and all(
        isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], Mapping)
        and isinstance(item[1], Mapping) for item in value
    )


def reports_from_results(results: Sequence[Any]) -> list[Report]:
    """``get_reports(results)``: the reports ``benchmark`` would have returned."""
    reports = []
    for config, raw in results:
        try:
            reports.append(summarize(config, raw))
        except NothingMeasured as exc:
            reports.append(error_report(config, str(exc)))
    return reports
