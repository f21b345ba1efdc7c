"""Verdicts: one configuration's report against its baseline entry and its absolute budgets.

A metric *regresses* when the ratio of the window medians (now / baseline) is worse than its
tolerance **and** a one-sided Mann-Whitney U test over the per-window values says the change is
significant at ``ALPHA``. Both are needed: the test alone calls a 3 % whole-run drift
significant (it only sees within-run noise), and the ratio alone trusts a few noisy windows too
much. Hiccup windows (far worse than their own run's median, see ``stats.drop_hiccups``) are
left out first, so one background stall in the baseline cannot hide a slowdown. A change beyond
tolerance that is not significant, fewer than ``MIN_WINDOWS`` windows, or a bootstrap interval
that cannot rule out a change ``NOISE_REACH`` times the tolerance is ``INCONCLUSIVE``.

Defaults, from ``benchmarks/gate_study.py`` (10 windows a run as at ``duration`` 3 s; window CV
3-8 %, whole-run drift N(0, 2-3 %) per run, occasional hiccup windows):

- ``DEFAULT_TOLERANCE`` throughput 12 %, p50 12 %, p99 20 %. A 25 % slowdown moves throughput by
  -20 % and latencies by +25 %; run-to-run drift moves them by a few %. Below ~10 % drift alone
  fails identical code too often (typical noise: 1.8 % of configurations at 10 %, 0.75 % at
  12 %); above ~14 % slowdowns start to slip through (detection 99.6 % at 12 %, 98.8 % at
  14 %). p99 per window is a tail estimate from few calls and drifts more between runs, hence
  20 %; throughput and p50 catch a uniform slowdown on their own.
- ``ALPHA`` 0.01, one-sided: ten windows against ten give p < 0.001 for a real 20 % change,
  while a drift beyond tolerance made of a couple of odd windows stays INCONCLUSIVE.

Simulated at those defaults: identical code is REGRESSED in 0.05-1.5 % of configurations for
window CV 3-8 % with drift 2 % or CV 3-5 % with drift 2.5-3 %, 3.3 % at the corner CV 8 % +
drift 3 %; a 25 % slowdown is REGRESSED in 98-99.95 % (99.6 % at CV 5 %, drift 2.5 %). The
overlap left is drift: two runs that drift 10 % apart look like a change of 10 %, whatever the
statistics, so "every time" needs the baseline and the run to drift less than that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, cast

import numpy as np

from pytest_neuronperf import formatting
from pytest_neuronperf.gating.stats import (
    bootstrap_ratio_ci,
    drop_hiccups,
    finite_values,
    mann_whitney_p,
)
from pytest_neuronperf.metrics import (
    BUDGETS,
    METRICS,
    VALUE_METRICS,
    WINDOW_METRICS,
    gated_metrics,
    metric_named,
    metrics_of,
)
from pytest_neuronperf.reports import GateFigure, Report, Rerun

ALPHA = 0.01
"""One-sided significance level of the Mann-Whitney U test."""
DEFAULT_TOLERANCE: dict[str, float] = {m.name: m.default_tolerance for m in METRICS.values()}
MIN_WINDOWS = 5
"""Fewer finite windows than this on either side cannot decide anything (5 vs 5: p >= 0.004)."""
NOISE_REACH = 3.0
"""Within tolerance, but the CI reaches a change this many tolerances worse: INCONCLUSIVE."""
CONFIDENCE = 0.95
"""Two-sided level of the bootstrap interval shown beside each comparison."""

LATENCY_THROUGHPUT = (
    "throughput_avg",
    "throughput_peak",
    "latency_ms_p0",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p95",
    "latency_ms_p99",
    "latency_ms_p100",
    "latency_ms_avg",
    "achieved_qps",
    "queue_ms_p50",
    "queue_ms_p99",
    "max_qps",
    "duration",
)
TOKEN_KEYS = (
    "ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "itl_ms_p50", "itl_ms_p99",
    "output_tokens_per_s", "requests_per_s", "goodput", "goodput_ratio",
)
"""The generate scenario's headline figures."""
BASELINE_METRICS = (
    *LATENCY_THROUGHPUT,
    "cpu_percent_avg",
    *(METRICS[m].report_key for m in VALUE_METRICS),
    *TOKEN_KEYS,
)
"""Report keys a baseline entry keeps (besides the windows); the latency and throughput keys
always (NaN when missing), the others only when measured. ``duration`` lets a run measured for
another duration say so."""
OFF_WORDS = frozenset({"off", "none"})


class Verdict(str, Enum):  # noqa: UP042 (StrEnum needs 3.11; setup.cfg allows 3.10)
    """The outcome of gating one configuration."""

    PASS = "PASS"
    IMPROVED = "IMPROVED"
    REGRESSED = "REGRESSED"
    OVER_BUDGET = "OVER_BUDGET"
    NEW = "NEW"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value

    def failing(self, strict: bool = False) -> bool:
        """True when this verdict fails the test (NEW and INCONCLUSIVE only when strict)."""
        if self in (Verdict.REGRESSED, Verdict.OVER_BUDGET, Verdict.ERROR):
            return True
        return strict and self in (Verdict.NEW, Verdict.INCONCLUSIVE)


# --- Tolerance specs -------------------------------------------------------------------------


def parse_tolerance(spec: str | Mapping[str, Any]) -> dict[str, float]:
    """``"p99:10%,throughput:5%"`` or ``{"p99": 0.1}`` -> ``{"latency_ms_p99": 0.1, ...}``.

    Values are percentages (``10%``) or fractions (``0.1``); ``off`` disables a metric's gate.
    """
    if isinstance(spec, str):
        items: list[tuple[str, Any]] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            name, sep, value = part.partition(":")
            if not sep:
                raise ValueError(f"tolerance part {part!r} is not 'metric:value' (e.g. 'p99:10%').")
            items.append((name.strip(), value.strip()))
    elif isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        raise ValueError(f"tolerance must be a string or a dict, not {type(spec).__name__}.")
    return {_metric_name(name): _tolerance_value(name, value) for name, value in items}


def effective_tolerance(tolerance: Mapping[str, float] | None) -> dict[str, float]:
    """``DEFAULT_TOLERANCE`` overridden by already parsed fractions (``parse_tolerance``'s)."""
    merged = dict(DEFAULT_TOLERANCE)
    for metric, fraction in (tolerance or {}).items():
        if metric not in DEFAULT_TOLERANCE:
            raise ValueError(f"tolerance names unknown metric {metric!r}.")
        merged[metric] = float(fraction)
    return merged


def _metric_name(name: object) -> str:
    """The gated metric a tolerance key names."""
    metric = metric_named(str(name).strip().lower())
    if metric is None:
        known = ", ".join(a for m in METRICS.values() for a in m.aliases)
        raise ValueError(f"tolerance names unknown metric {name!r}; use {known}.")
    return metric.name


def _tolerance_value(name: object, value: object) -> float:
    """A tolerance value as a fraction (inf for ``off``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in OFF_WORDS):
        return math.inf
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1] if percent else text)
    except ValueError:
        raise ValueError(
            f"tolerance for {name!r} is {value!r}; expected a percentage like '10%' or a "
            "fraction like 0.1."
        ) from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ValueError(f"tolerance for {name!r} is {value!r}; it must be 0 or more.")
    if not percent and number > 1:
        raise ValueError(
            f"tolerance for {name!r} is {value!r}, which reads as {number:.0%}; "
            f"write '{number:g}%' for a percentage or a fraction like 0.1."
        )
    return number / 100 if percent else number


# --- One metric ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricComparison:
    """How one gated metric moved between the baseline run and this run.

    ``delta`` is the signed relative change of the metric's window median, (now - base) / base:
    negative is worse for throughput, positive is worse for latencies. ``ci_low``/``ci_high``
    bound the ratio now / base (``CONFIDENCE`` bootstrap). ``p_value`` is the one-sided
    Mann-Whitney U p-value in the direction the median moved.
    """

    metric: str
    baseline: float
    current: float
    delta: float
    tolerance: float
    p_value: float
    ci_low: float
    ci_high: float
    verdict: Verdict
    note: str = ""

    @property
    def worse(self) -> float:
        """The relative change with the sign flipped so that positive always means worse."""
        return -self.delta if METRICS[self.metric].higher_is_better else self.delta


def launch_medians(windows: Sequence[float | None], sizes: Sequence[int] | None) -> np.ndarray:
    """One value per launch (fresh copies): the median of that launch's finite windows, given
    how many windows each launch contributed, in order; empty when the sizes do not fit the
    windows (an entry from before launches were recorded: one launch cut into windows)."""
    if not sizes or sum(sizes) != len(windows):
        return np.empty(0)
    values, start = [], 0
    for size in sizes:
        part = finite_values(windows[start:start + size])
        start += size
        if part.size:
            values.append(float(np.median(part)))
    return np.array(values, dtype=np.float64)


def compare_metric(
    metric: str,
    baseline_windows: Sequence[float | None],
    current_windows: Sequence[float | None],
    tolerance: float,
    baseline_launches: Sequence[int] | None = None,
    current_launches: Sequence[int] | None = None,
) -> MetricComparison:
    """Verdict for one metric's per-window values: PASS, IMPROVED, REGRESSED or INCONCLUSIVE.

    With the windows each launch (fresh copies) of the baseline contributed
    (``baseline_launches``), the change is also held against the launches: a baseline whose own
    launches differ by more than the tolerance cannot decide a change smaller than that
    difference (INCONCLUSIVE), whatever the windows say (windows of one launch share its
    speed, so their test alone would call a launch's offset significant). The estimate stays
    the ratio of the window medians: robust to one disturbed launch among two, which a mean of
    launches is not."""
    higher_is_better = METRICS[metric].higher_is_better
    all_base = finite_values(baseline_windows)
    all_cur = finite_values(current_windows)
    if all_base.size < MIN_WINDOWS or all_cur.size < MIN_WINDOWS:
        base, cur = all_base, all_cur
    else:
        base = drop_hiccups(all_base, higher_is_better)
        cur = drop_hiccups(all_cur, higher_is_better)
    dropped = all_base.size - base.size + all_cur.size - cur.size
    base_median = float(np.median(base)) if base.size else math.nan
    cur_median = float(np.median(cur)) if cur.size else math.nan
    base_runs = launch_medians(baseline_windows, baseline_launches)
    delta = cur_median / base_median - 1.0 if base_median else math.nan
    notes = [f"{dropped} hiccup window{'s' if dropped > 1 else ''} left out"] if dropped else []

    def result(
        verdict: Verdict,
        note: str = "",
        p: float = math.nan,
        ci: tuple[float, float] = (math.nan, math.nan),
    ) -> MetricComparison:
        text = "; ".join([note, *notes] if note else notes)
        return MetricComparison(
            metric, base_median, cur_median, delta, tolerance, p, ci[0], ci[1], verdict, text
        )

    if not math.isfinite(tolerance):
        return result(Verdict.PASS, "not gated (tolerance off)")
    if base.size < MIN_WINDOWS or cur.size < MIN_WINDOWS:
        return result(
            Verdict.INCONCLUSIVE,
            f"too few windows to decide ({base.size} in the baseline, {cur.size} now)",
        )
    if not math.isfinite(delta):
        return result(Verdict.INCONCLUSIVE, "the baseline median is 0")

    sign = -1.0 if higher_is_better else 1.0
    worse = sign * delta
    spread = launch_spread(base_runs)
    if spread > tolerance and abs(worse) <= spread:
        return result(
            Verdict.INCONCLUSIVE,
            f"the baseline's {base_runs.size} launches differ by {spread:.0%}, more than the "
            f"tolerance and the change: save the baseline again on a quieter machine",
        )
    worse_alternative = "less" if higher_is_better else "greater"
    better_alternative = "greater" if higher_is_better else "less"
    p = mann_whitney_p(cur, base, worse_alternative if worse >= 0 else better_alternative)
    ci = bootstrap_ratio_ci(base, cur, CONFIDENCE)
    significant = p < ALPHA
    if worse > tolerance:
        if significant:
            return result(Verdict.REGRESSED, "", p, ci)
        return result(Verdict.INCONCLUSIVE,
                      f"worse than tolerance but p={formatting.p_value(p)}", p, ci)
    if -worse > tolerance:
        if significant:
            return result(Verdict.IMPROVED, "", p, ci)
        return result(Verdict.INCONCLUSIVE,
                      f"better than tolerance but p={formatting.p_value(p)}", p, ci)
    worst_end = max(sign * (ci[0] - 1.0), sign * (ci[1] - 1.0))
    if worst_end > NOISE_REACH * tolerance:
        return result(
            Verdict.INCONCLUSIVE,
            f"too noisy: {formatting.percent(worst_end)} worse cannot be ruled out",
            p,
            ci,
        )
    return result(Verdict.PASS, "", p, ci)


def launch_spread(values: np.ndarray) -> float:
    """How far apart a baseline's launches are: largest / smallest - 1 (0 below 2 launches)."""
    if values.size < 2 or not np.all(values > 0):
        return 0.0
    return float(np.max(values) / np.min(values) - 1.0)


def compare_value(
    metric: str, baseline: float | None, current: float | None, tolerance: float
) -> MetricComparison | None:
    """Verdict for a metric with one value per run (peak memory, accuracy); None when either
    side lacks it.

    There is no per-window series to test, and no test is needed: both are near-deterministic
    for one model, data and machine. Accuracy over a fixed dataset only moves when the outputs
    do (thread scheduling cannot change an arg-max except at exact ties), so any change beyond
    the tolerance is real. Peak resident memory of a copy varies by allocator timing by a few
    per cent, far below the 15 % default; it is the largest copy's peak, so one copy that grows
    is caught. So: worse than the tolerance is REGRESSED, better is IMPROVED, else PASS; the
    p-value and interval are left empty. A recheck measures again but keeps the first value
    (pooling two maxima or two accuracies would not change the decision).
    """
    base, cur = _as_float(baseline), _as_float(current)
    if not (math.isfinite(base) and math.isfinite(cur)):
        return None
    delta = cur / base - 1.0 if base else (0.0 if cur == base else math.inf)

    def result(verdict: Verdict, note: str = "") -> MetricComparison:
        return MetricComparison(metric, base, cur, delta, tolerance, math.nan, math.nan,
                                math.nan, verdict, note)

    if not math.isfinite(tolerance):
        return result(Verdict.PASS, "not gated (tolerance off)")
    worse = -delta if METRICS[metric].higher_is_better else delta
    if worse > tolerance:
        return result(Verdict.REGRESSED)
    if -worse > tolerance:
        return result(Verdict.IMPROVED)
    return result(Verdict.PASS)


# --- One configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetMiss:
    """An absolute budget this run missed."""

    budget: str
    metric: str
    limit: float
    actual: float
    note: str = ""
    """Why a value within the limit still missed it (``overloaded``)."""


@dataclass(frozen=True)
class Judgement:
    """The verdict for one configuration, with the evidence a failure message shows."""

    verdict: Verdict
    comparisons: list[MetricComparison] = field(default_factory=list)
    budget_misses: list[BudgetMiss] = field(default_factory=list)
    delta: dict[str, float] = field(default_factory=dict)
    """Gated metric -> relative change of its window median, (now - base) / base."""
    baseline: dict[str, float] = field(default_factory=dict)
    """Gated metric -> the baseline's window median (or stored value without windows)."""
    baseline_metrics: dict[str, Any] | None = None
    """The baseline entry's stored whole-run metrics; None without a baseline entry."""
    strict: bool = False
    error: str | None = None

    @property
    def failing(self) -> bool:
        """True when this judgement fails the test."""
        return self.verdict.failing(self.strict)

    def report_fields(self, report: Mapping[str, Any] | None = None) -> Report:
        """The keys a gated report carries: ``verdict``, ``gate`` (the figures the verdict
        used, see :func:`gate_figures`), and ``baseline``/``delta`` if any."""
        fields: Report = {"verdict": self.verdict.value}
        if report is not None:
            fields["gate"] = gate_figures(self, report)
        if self.baseline_metrics is not None:
            fields["baseline"] = dict(self.baseline_metrics)
            fields["delta"] = dict(self.delta)
        return fields


def gate_figures(judgement: Judgement, report: Mapping[str, Any]) -> dict[str, GateFigure]:
    """Per gated metric, the numbers behind the verdict: ``now`` and ``baseline`` (window
    medians, hiccups left out as the gate did), ``delta``, ``tolerance``, ``p``, ``interval``
    (of the change, as ``delta`` is) and the metric's ``verdict``. Without a baseline entry
    only ``now`` (the median of this run's windows, hiccups left out: what a later run's gate
    will call this run's median once it is the baseline). Tables, files and the HTML report
    show these, so that what a reader sees is what was judged."""
    figures: dict[str, GateFigure] = {}
    for c in judgement.comparisons:
        figures[c.metric] = {
            "now": formatting.finite(c.current), "baseline": formatting.finite(c.baseline),
            "delta": formatting.finite(c.delta), "tolerance": formatting.finite(c.tolerance),
            "p": formatting.finite(c.p_value),
            "interval": [formatting.finite(c.ci_low - 1.0), formatting.finite(c.ci_high - 1.0)],
            "verdict": c.verdict.value,
        }
    for metric in metrics_of(dict(report)):
        if metric not in figures and report.get("status", "ok") == "ok":
            median = window_median(_windows(report, metric), metric)
            figures[metric] = {"now": formatting.finite(median)}
    return figures


def window_median(windows: Sequence[float | None], metric: str) -> float:
    """The median of a run's windows with hiccups left out as ``compare_metric`` leaves them
    out (NaN without a window): the figure that stands for a run, or one side of a paired
    run, in every table."""
    values = finite_values(windows)
    if values.size >= MIN_WINDOWS:
        values = drop_hiccups(values, METRICS[metric].higher_is_better)
    return float(np.median(values)) if values.size else math.nan


def judge(
    report: Mapping[str, Any],
    baseline_entry: Mapping[str, Any] | None,
    tolerance: Mapping[str, float] | None = None,
    budgets: Mapping[str, float | None] | None = None,
    strict: bool = False,
) -> Judgement:
    """Gate one report: ERROR, then OVER_BUDGET, then NEW, else the metric comparisons.

    ``tolerance`` overrides ``DEFAULT_TOLERANCE`` per metric with fractions as
    ``parse_tolerance`` returns them (``inf`` disables one); values are not parsed again, so a
    parsed 300 % stays 3.0 and is not mistaken for an unmarked percentage.
    """
    if report.get("status", "ok") != "ok":
        return Judgement(Verdict.ERROR, strict=strict, error=str(report.get("error") or ""))
    tolerances = effective_tolerance(tolerance)
    misses = budget_misses(report, budgets or {})
    if baseline_entry is None:
        verdict = Verdict.OVER_BUDGET if misses else Verdict.NEW
        return Judgement(verdict, budget_misses=misses, strict=strict)

    comparisons = [
        compare_metric(
            metric,
            _windows(baseline_entry, metric),
            _windows(report, metric),
            tolerances[metric],
            baseline_entry.get("launch_windows"),
            report.get("launch_windows"),
        )
        for metric in gated_metrics(dict(report))
        if metric in tolerances
    ]
    for metric in VALUE_METRICS:
        value = compare_value(metric, _value(baseline_entry, metric), _value(report, metric),
                              tolerances[metric])
        if value is not None:
            comparisons.append(value)
    verdict = Verdict.OVER_BUDGET if misses else combine([c.verdict for c in comparisons])
    return Judgement(
        verdict,
        comparisons=comparisons,
        budget_misses=misses,
        delta={c.metric: c.delta for c in comparisons},
        baseline={c.metric: c.baseline for c in comparisons},
        baseline_metrics=dict(baseline_entry.get("metrics") or {}),
        strict=strict,
    )


JudgementKey = Literal["verdict", "gate", "baseline", "delta", "baseline_windows"]
JUDGEMENT_KEYS: tuple[JudgementKey, ...] = ("verdict", "gate", "baseline", "delta",
                                            "baseline_windows")
"""The report keys a judgement writes (:func:`gate_report`)."""


def gate_report(
    report: Report,
    baseline_entry: Mapping[str, Any] | None,
    tolerance: Mapping[str, float] | None = None,
    budgets: Mapping[str, float | None] | None = None,
    strict: bool = False,
) -> Judgement:
    """Judge ``report`` (see :func:`judge`) and write the judgement into it: ``verdict``,
    ``gate``, and ``baseline``, ``delta``, ``baseline_windows`` when there is a baseline entry
    (a key an earlier judgement wrote that this one does not is removed). The plugin and the
    ``compare`` command both gate a report with this."""
    judgement = judge(report, baseline_entry, tolerance, budgets, strict)
    fields = judgement.report_fields(report)
    if baseline_entry is not None:
        fields["baseline_windows"] = dict(baseline_entry.get("windows") or {})
    for key in JUDGEMENT_KEYS:
        if key not in fields:
            report.pop(key, None)
    report.update(fields)
    return judgement


def combine(verdicts: Sequence[Verdict]) -> Verdict:
    """One configuration's verdict from its metrics': the worst one wins."""
    for verdict in (Verdict.REGRESSED, Verdict.INCONCLUSIVE, Verdict.IMPROVED):
        if verdict in verdicts:
            return verdict
    return Verdict.PASS


def budget_misses(
    report: Mapping[str, Any], budgets: Mapping[str, float | None]
) -> list[BudgetMiss]:
    """The absolute budgets (``p50_ms``, ``p99_ms``, ``min_throughput``, ``max_memory_mb``,
    ``min_accuracy``) this report misses; a report without the metric misses its budget."""
    misses = []
    for budget, limit in budgets.items():
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; use one of {', '.join(BUDGETS)}.")
        if limit is None:
            continue
        metric = BUDGETS[budget].report_key
        actual = _as_float(report.get(metric))
        if BUDGETS[budget].higher_is_better:
            missed = not actual >= limit
        else:  # an overloaded rate's latency grows with the duration: it meets no budget
            missed = not actual <= limit or bool(report.get("overloaded"))
        if missed:
            note = "overloaded" if report.get("overloaded") else ""
            misses.append(BudgetMiss(budget, metric, float(limit), actual, note))
    return misses


RECHECK_VERDICTS = frozenset({Verdict.REGRESSED, Verdict.INCONCLUSIVE})
"""Verdicts worth one more measurement before they stand: a regression must show twice."""


def needs_recheck(judgement: Judgement) -> bool:
    """True when a configuration should be measured once more and judged on both runs.

    On a noisy machine the speed of a whole run drifts by several per cent, and one unlucky run
    can look like a regression. A second run, pooled with the first, halves the drift's weight:
    a false alarm then needs two unlucky runs, while a real slowdown shows in both.
    """
    return judgement.verdict in RECHECK_VERDICTS and not judgement.budget_misses


def pool_reports(
    first: Report, second: Mapping[str, Any], label: Literal["recheck", "repeat"] = "recheck"
) -> Report:
    """``first`` with the windows of both runs (the gate then decides on both), and the second
    run's headline figures under ``label`` (``recheck``, or ``repeat`` for a saved baseline)."""
    pooled = first.copy()
    if second.get("status", "ok") != "ok":
        pooled[label] = {"status": second.get("status"), "error": second.get("error")}
        return pooled
    windows_a, windows_b = first.get("windows") or {}, second.get("windows") or {}
    pooled["windows"] = {m: [*windows_a.get(m, []), *windows_b.get(m, [])]
                         for m in set(windows_a) | set(windows_b)}
    if first.get("launch_windows") and second.get("launch_windows"):
        pooled["launch_windows"] = [*first["launch_windows"], *second["launch_windows"]]
    else:
        pooled.pop("launch_windows", None)
    pooled[label] = cast(Rerun, {k: second.get(k) for k in (
        "status", "throughput_avg", "throughput_peak", "latency_ms_p50", "latency_ms_p99")})
    return pooled


def entry_from_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline entry that stores this report: whole-run metrics plus the window series."""
    if report.get("status", "ok") != "ok":
        raise ValueError("a configuration that ended in an error has no results to store.")
    windows = report.get("windows") or {}
    entry = {
        "metrics": {k: _as_float(report[k]) for k in BASELINE_METRICS
                    if k in report and (k in LATENCY_THROUGHPUT or report[k] is not None)},
        "windows": {m: [_as_float(v) for v in windows[m]] for m in WINDOW_METRICS if m in windows},
    }
    if report.get("launch_windows"):
        entry["launch_windows"] = [int(n) for n in report["launch_windows"]]
    return entry


def _windows(source: Mapping[str, Any], metric: str) -> list[float | None]:
    """A metric's window series from a report or entry, or its whole-run value as one sample."""
    windows = (source.get("windows") or {}).get(metric)
    if windows:
        return list(windows)
    metrics = source.get("metrics") or source
    stored = metrics.get(METRICS[metric].report_key)
    return [] if stored is None else [stored]


def _value(source: Mapping[str, Any], metric: str) -> Any:
    """A one-value metric from a report, or from a baseline entry's stored metrics."""
    key = METRICS[metric].report_key
    if key in source:
        return source[key]
    return (source.get("metrics") or {}).get(key)


def _as_float(value: Any) -> float:
    """A number as float; None and anything unreadable become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# --- Failure message -------------------------------------------------------------------------

def format_judgement_table(judgement: Judgement) -> str:
    """A fixed-width table (under 100 columns) of baseline, now, delta and tolerance per metric."""
    header = (
        f"{'metric':<14} {'baseline':>10} {'now':>10} {'delta':>8} {'tolerance':>9} "
        f"{'p':>7} {'95% interval':>16}  verdict"
    )
    lines = [header, "-" * len(header)]
    for c in judgement.comparisons:
        lines.append(
            f"{METRICS[c.metric].label:<14} {formatting.number(c.baseline):>10} "
            f"{formatting.number(c.current):>10} {formatting.percent(c.delta):>8} "
            f"{formatting.tolerance(c.metric, c.tolerance):>9} "
            f"{formatting.p_value(c.p_value):>7} "
            f"{formatting.interval(c.ci_low - 1.0, c.ci_high - 1.0):>16}  {c.verdict.value}"
        )
        if c.note:
            lines.append(f"{'':<14}   {c.note}")
    for miss in judgement.budget_misses:
        relation = ">=" if BUDGETS[miss.budget].higher_is_better else "<="
        lines.append(
            f"{BUDGETS[miss.budget].budget_label:<14} "
            f"{relation + ' ' + formatting.number(miss.limit):>10} "
            f"{formatting.number(miss.actual):>10} {'':>8} {'':>9} {'':>7} {'':>16}  OVER_BUDGET"
        )
        if miss.note:
            lines.append(f"{'':<14}   {miss.note}: the queue kept growing at this rate")
    if judgement.verdict is Verdict.NEW and not judgement.budget_misses:
        lines.append("no baseline entry for this configuration: NEW")
    if judgement.verdict is Verdict.ERROR:
        lines = [f"benchmark failed: {judgement.error or 'no reason given'}"]
    return "\n".join(lines)
