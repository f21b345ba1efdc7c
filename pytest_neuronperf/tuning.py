"""``tune``: sweep a configuration grid and pick the configuration to deploy under a p99 budget.

The configurations that meet the budget are ranked by throughput; the throughput/p99 Pareto
front (no other configuration is both faster and has a lower p99) shows the trade-off around
the choice. In the generate scenario the ranking is by goodput (requests per second that meet
every SLO), among configurations that are not overloaded (and meet ``p99_ms``, the end-to-end
p99, if given). Pure ranking functions over reports, so they can be checked without measuring.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar, cast

from pytest_neuronperf.formatting import number
from pytest_neuronperf.reports import Report, config_label

R = TypeVar("R", bound=Mapping[str, Any])
"""A report, or any mapping with a report's keys."""
TUNING_COLUMNS = ("rank", "configuration", "throughput", "latency_ms_p99", "meets", "front")


@dataclass(frozen=True)
class Tuning:
    """What ``tune`` found: every report, those meeting the budget best first, and the front."""

    p99_ms: float | None
    """The end-to-end p99 budget (None: the generate scenario without one)."""
    reports: list[Report]
    ranked: list[Report]
    """The reports that meet the budget, highest throughput first."""
    front: list[Report]
    """The throughput/p99 Pareto front of every measured report, highest throughput first."""

    @property
    def best(self) -> Report | None:
        """The configuration to deploy: the fastest that meets the budget (None: none does)."""
        return self.ranked[0] if self.ranked else None


def is_generate(report: Mapping[str, Any]) -> bool:
    """A generate-scenario report (ranked by goodput)."""
    return report.get("scenario") == "generate"


def served_throughput(report: Mapping[str, Any]) -> float:
    """Samples/s the configuration serves: at ``max_qps`` for a search, goodput (requests/s
    within the SLOs) in the generate scenario, else as measured."""
    if is_generate(report):
        goodput = report.get("goodput")
        return float(goodput) if goodput is not None else math.nan
    if report.get("target_qps") == "max":
        per_query = 1 if report.get("max_queue_delay_ms") is not None else report["batch_size"]
        return float(report.get("max_qps") or 0.0) * per_query
    value = report.get("throughput_avg")
    return float(value) if value is not None else math.nan


def meets(report: Mapping[str, Any], p99_ms: float | None) -> bool:
    """Measured, not overloaded, p99 within the budget (and a search found a rate; in the
    generate scenario, some requests met the SLOs)."""
    p99 = report.get("latency_ms_p99")
    if report.get("status") != "ok" or report.get("overloaded") or p99 is None:
        return False
    if report.get("target_qps") == "max" and not report.get("max_qps"):
        return False
    if is_generate(report) and not served_throughput(report) > 0:
        return False
    return math.isfinite(p99) and (p99_ms is None or p99 <= p99_ms)


def rank(reports: Sequence[R], p99_ms: float | None) -> list[R]:
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


def tuning_of(reports: Sequence[Report], p99_ms: float | None) -> Tuning:
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
            number(served_throughput(r)) + ("/s at max_qps" if r.get("target_qps") == "max"
                                            else "/s goodput" if is_generate(r) else "/s"),
            number(p99) + (" overloaded" if r.get("overloaded") else ""),
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
    budget = "" if tuning.p99_ms is None else f" <= {tuning.p99_ms:g} ms"
    if best is not None and is_generate(best):
        return (f"deploy {config_label(best)}: goodput {number(served_throughput(best))} "
                f"requests/s within the SLOs ({number(100 * (best.get('goodput_ratio') or 0))}"
                f"% of its requests), end-to-end p99 {number(best['latency_ms_p99'])} ms"
                f"{budget} ({len(tuning.ranked)} of {len(tuning.reports)} configurations "
                f"qualify)")
    if best is not None:
        return (f"deploy {config_label(best)}: {number(served_throughput(best))} samples/s "
                f"with p99 {number(best['latency_ms_p99'])} ms{budget} "
                f"({len(tuning.ranked)} of {len(tuning.reports)} configurations meet the budget)")
    measured = [r for r in tuning.reports if r.get("status") == "ok"
                and r.get("latency_ms_p99") is not None]
    if not measured:
        return "no configuration could be measured: see the reports' errors"
    if any(is_generate(r) for r in measured):
        return ("no configuration served a request within the SLOs without overload"
                + (f" and p99{budget}" if budget else "") + ": relax the SLOs, lower "
                "target_qps, or try more copies")
    lowest = min(measured, key=lambda r: cast(float, r["latency_ms_p99"]))
    return (f"no configuration meets p99{budget}; the lowest p99 is "
            f"{number(lowest['latency_ms_p99'])} ms ({config_label(lowest)}): relax the "
            f"budget, or try smaller batches or more copies")


def print_tuning(tuning: Tuning, file: TextIO | None = None) -> None:
    """Print :func:`format_tuning` (stdout by default)."""
    print(format_tuning(tuning), file=file or sys.stdout)


