"""Which metrics exist, where a report keeps them, and which way is better: the one table that
gating, budgets, marker keywords and reporting read. Plain data; imports nothing heavy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One gated metric."""

    name: str
    """The gate's name, also the key of its window series (``windows[name]``) and of ``delta``."""
    report_key: str
    """The whole-run report key that stands for it (and that budgets limit)."""
    higher_is_better: bool
    aliases: tuple[str, ...]
    """Other names accepted in tolerance specs (``p99:10%``)."""
    label: str
    """Column heading in tables, with the unit."""
    default_tolerance: float
    """Relative tolerance when neither the marker nor the command line sets one."""
    budget: str | None = None
    """The marker keyword of its absolute budget (``p99_ms``), if it has one."""
    budget_label: str = ""
    windowed: bool = True
    """True: measured per window and gated on the window series (``compare_metric``); False:
    one value per run, gated on the value (``compare_value``; see ``gating.verdicts``)."""
    generate: bool = False
    """A token metric of the generate scenario: its reports are gated on these metrics and
    every other report on the others (a request's figures are not a call's)."""
    optional: bool = False
    """Gated only when the report measured it (``goodput`` needs SLOs)."""


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("throughput", "throughput_avg", True, ("throughput",), "throughput /s", 0.12,
               "min_throughput", "min tput /s"),
        Metric("latency_ms_p50", "latency_ms_p50", False, ("p50",), "p50 ms", 0.12,
               "p50_ms", "p50 budget ms"),
        Metric("latency_ms_p99", "latency_ms_p99", False, ("p99",), "p99 ms", 0.20,
               "p99_ms", "p99 budget ms"),
        Metric("memory_mb_peak", "memory_mb_peak", False, ("memory", "mem"), "memory MB", 0.15,
               "max_memory_mb", "mem budget MB", windowed=False),
        Metric("accuracy", "accuracy", True, ("accuracy", "acc"), "accuracy", 0.01,
               "min_accuracy", "min accuracy", windowed=False),
        Metric("max_qps", "max_qps", True, ("max_qps",), "max qps", 0.12),
        Metric("output_tokens_per_s", "output_tokens_per_s", True,
               ("tokens", "tokens_per_s", "output_tokens_per_s"), "tokens /s", 0.12,
               generate=True),
        Metric("ttft_ms_p99", "ttft_ms_p99", False, ("ttft", "ttft_p99"), "TTFT p99 ms", 0.20,
               "ttft_ms_p99", "TTFT budget ms", generate=True),
        Metric("tpot_ms_p99", "tpot_ms_p99", False, ("tpot", "tpot_p99"), "TPOT p99 ms", 0.15,
               "tpot_ms_p99", "TPOT budget ms", generate=True),
        Metric("goodput", "goodput", True, ("goodput",), "goodput /s", 0.12, "min_goodput",
               "min goodput /s", generate=True, optional=True),
    )
}
"""Gated metrics, in the order tables show them."""

WINDOW_METRICS = tuple(name for name, metric in METRICS.items() if metric.windowed)
"""Metrics measured per window (throughput and latencies)."""
VALUE_METRICS = tuple(name for name, metric in METRICS.items() if not metric.windowed)
"""Metrics with one value per run (peak memory, accuracy): a report without one is not gated
on it (e.g. no ``eval_metrics``, or a baseline from before it was measured)."""
SEARCH_METRICS = ("max_qps",)
"""The metrics of a ``target_qps="max"`` search report, and only of those: its throughput and
latencies are those of whatever rate the search settled on, so they are not compared."""

BUDGETS: dict[str, Metric] = {m.budget: m for m in METRICS.values() if m.budget}
"""Budget keyword -> its metric."""


GENERATE_BUDGETS = tuple(budget for budget, m in BUDGETS.items() if m.generate)
"""Budget keywords of the generate scenario (``ttft_ms_p99``, ``tpot_ms_p99``, ``min_goodput``)."""


def metrics_of(report: object) -> tuple[str, ...]:
    """The window metrics a report of its kind has: the token metrics for the generate
    scenario (``goodput`` only when measured), the others for every other scenario."""
    found = report if isinstance(report, dict) else {}
    generate = found.get("scenario") == "generate"
    return tuple(m for m in WINDOW_METRICS if METRICS[m].generate == generate
                 and not (METRICS[m].optional and found.get(METRICS[m].report_key) is None))


def gated_metrics(report: object) -> tuple[str, ...]:
    """The metrics the gate compares for this report (or baseline entry's report)."""
    search = isinstance(report, dict) and report.get("target_qps") == "max"
    return tuple(m for m in metrics_of(report) if (m in SEARCH_METRICS) == search)


def metric_named(name: str) -> Metric | None:
    """The metric a tolerance spec or keyword calls ``name`` (its name or an alias), or None."""
    for metric in METRICS.values():
        if name == metric.name or name in metric.aliases:
            return metric
    return None


def worse_sign(metric_name: str) -> str:
    """``-`` where a fall is worse (throughput), ``+`` where a rise is (latency)."""
    return "-" if METRICS[metric_name].higher_is_better else "+"
