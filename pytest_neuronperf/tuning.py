"""``tune``: sweep a configuration grid and pick the configuration to deploy under a p99 budget.

The configurations that meet the budget are ranked by throughput; the throughput/p99 Pareto
front (no other configuration is both faster and has a lower p99) shows the trade-off around
the choice. Pure ranking functions over reports, so they can be checked without measuring.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar, cast

from pytest_neuronperf.reports import Report, config_label

R = TypeVar("R", bound=Mapping[str, Any])
"""A report, or any mapping with a report's keys."""
TUNING_COLUMNS = ("rank", "configuration", "throughput", "latency_ms_p99", "meets", "front")


@dataclass(frozen=True)
class Tuning:
    """What ``tune`` found: every report, those meeting the budget best first, and the front."""

    p99_ms: float
    reports: list[Report]
    ranked: list[Report]
    """The reports that meet the budget, highest throughput first."""
    front: list[Report]
    """The throughput/p99 Pareto front of every measured report, highest throughput first."""

    @property
    def best(self) -> Report | None:
        """The configuration to deploy: the fastest that meets the budget (None: none does)."""
        return self.ranked[0] if self.ranked else None


def served_throughput(report: Mapping[str, Any]) -> float:
    """Samples/s the configuration serves: at ``max_qps`` for a search, else as measured."""
    if report.get("target_qps") == "max":
        per_query = 1 if report.get("max_queue_delay_ms") is not None else report["batch_size"]
        return float(report.get("max_qps") or 0.0) * per_query
    value = report.get("throughput_avg")
    return float(value) if value is not None else math.nan


def meets(report: Mapping[str, Any], p99_ms: float) -> bool:
    """Measured, not overloaded, p99 within the budget (and a search found a rate)."""
    p99 = report.get("latency_ms_p99")
    if report.get("status") != "ok" or report.get("overloaded") or p99 is None:
        return False
    if report.get("target_qps") == "max" and not report.get("max_qps"):
        return False
    return math.isfinite(p99) and p99 <= p99_ms


def rank(reports: Sequence[R], p99_ms: float) -> list[R]:
    """The reports that meet the budget, highest throughput first (lower p99 breaks ties)."""
    fit = [r for r in reports if meets(r, p99_ms)]
    return sorted(fit, key=lambda r: (-served_throughput(r), r["latency_ms_p99"]))


def pareto_front(reports: Sequence[R]) -> list[R]:
    """Measured reports no other beats on both throughput (higher) and p99 (lower)."""
    points = [r for r in reports if r.get("status") == "ok"
              and math.isfinite(served_throughput(r))
              and r.get("latency_ms_p99") is not None and not r.get("overloaded")]

    def dominated(a: R) -> bool:
        ta, pa = served_throughput(a), a["latency_ms_p99"]
        return any(served_throughput(b) >= ta and b["latency_ms_p99"] <= pa
                   and (served_throughput(b) > ta or b["latency_ms_p99"] < pa) for b in points)

    return sorted((r for r in points if not dominated(r)), key=lambda r: -served_throughput(r))


def tuning_of(reports: Sequence[Report], p99_ms: float) -> Tuning:
    """The ranking and front of already measured reports."""
    reports = list(reports)
    return Tuning(p99_ms, reports, rank(reports, p99_ms), pareto_front(reports))


def format_tuning(tuning: Tuning) -> str:
    """A table of every configuration (rank among those meeting the budget, Pareto front) and
    a last line that says which to deploy."""
    ranks = {id(r): i + 1 for i, r in enumerate(tuning.ranked)}
    front = {id(r) for r in tuning.front}
    order = [*tuning.ranked, *(r for r in tuning.reports if id(r) not in ranks)]
    rows = [TUNING_COLUMNS]
    for r in order:
        p99 = r.get("latency_ms_p99")
        rows.append((
            str(ranks.get(id(r), "-")),
            config_label(r),
            _figure(served_throughput(r)) + ("/s at max_qps" if r.get("target_qps") == "max"
                                             else "/s"),
            _figure(p99) + (" overloaded" if r.get("overloaded") else ""),
            "yes" if id(r) in ranks else ("error" if r.get("status") != "ok" else "no"),
            "*" if id(r) in front else "",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(TUNING_COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.append(decision(tuning))
    return "\n".join(lines)


def decision(tuning: Tuning) -> str:
    """One sentence: the configuration to deploy, or why there is none."""
    best = tuning.best
    if best is not None:
        return (f"deploy {config_label(best)}: {_figure(served_throughput(best))} samples/s "
                f"with p99 {_figure(best['latency_ms_p99'])} ms <= {tuning.p99_ms:g} ms "
                f"({len(tuning.ranked)} of {len(tuning.reports)} configurations meet the budget)")
    measured = [r for r in tuning.reports if r.get("status") == "ok"
                and r.get("latency_ms_p99") is not None]
    if not measured:
        return "no configuration could be measured: see the reports' errors"
    lowest = min(measured, key=lambda r: cast(float, r["latency_ms_p99"]))
    return (f"no configuration meets p99 <= {tuning.p99_ms:g} ms; the lowest p99 is "
            f"{_figure(lowest['latency_ms_p99'])} ms ({config_label(lowest)}): relax the "
            f"budget, or try smaller batches or more copies")


def print_tuning(tuning: Tuning, file: TextIO | None = None) -> None:
    """Print :func:`format_tuning` (stdout by default)."""
    print(format_tuning(tuning), file=file or sys.stdout)


def _figure(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
