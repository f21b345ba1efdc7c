"""The paired gate: head against base, round by round, with the family of one test controlled.

Each round of a paired run (``engine.paired``) measured both sides on the same cores within a
fraction of a second, so the ratio head / base of a round is free of the machine's drift. Per
gated metric (``metrics.METRICS``):

- the log ratios of the rounds are tested with a one-sided Wilcoxon signed-rank test in the
  worse direction (and, for ``IMPROVED``, in the better one);
- the change is estimated by the Hodges-Lehmann estimator (median of the Walsh averages) of the
  log ratios, with its distribution-free ``CONFIDENCE`` interval, shown as a relative change;
- the p-values of a test's whole family (its configurations x metrics) are adjusted with Holm's
  step-down method, so that identical code fails a *test* (not a configuration) at most
  ``ALPHA`` of the time.

A metric is ``REGRESSED`` when its estimate is worse than its tolerance **and** its adjusted
p-value is below ``ALPHA``; the tolerance keeps tiny real differences (two processes of identical
code can differ by a per cent through memory layout) from failing anything. Worse than
tolerance but not significant is ``INCONCLUSIVE``; fewer than ``MIN_ROUNDS`` usable rounds too.

Defaults from ``benchmarks/paired_study.py`` (README quick start, 4 configurations, 3 s per
side, see docs/paired.md, "Measured", for the recorded figures).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_neuronperf.gating.verdicts import (
    Verdict,
    combine,
    format_number,
    format_p,
    format_percent,
    format_tolerance,
)
from pytest_neuronperf.metrics import METRICS, gated_metrics
from pytest_neuronperf.reports import Paired, Report

PAIRED_TOLERANCE: dict[str, float] = {
    "throughput": 0.03,
    "latency_ms_p50": 0.03,
    "latency_ms_p99": 0.10,
    "output_tokens_per_s": 0.03,
    "ttft_ms_p99": 0.10,
    "tpot_ms_p99": 0.03,
}
"""Default paired tolerances per gated metric (fractions), from the study: the metrics each
slice measures (throughput, p50, p99; tokens/s, TTFT and TPOT p99 in the generate scenario),
the ones the paired gate compares. The generate scenario's follow the closed loop's (tokens/s
and TPOT as throughput and p50: a mean over many tokens; TTFT as p99: one value a request)."""
ALPHA = 0.05
"""Family-wise one-sided level per test (Holm over its configurations x metrics)."""
CONFIDENCE = 0.95
"""Two-sided level of the interval shown beside each paired delta."""
MIN_ROUNDS = 8
"""Fewer usable rounds than this cannot decide anything (8 rounds: smallest p = 1/256)."""


@dataclass(frozen=True)
class PairedComparison:
    """How one metric of one configuration moved from base to head.

    ``delta`` is the estimated relative change head / base - 1 (negative is worse for
    throughput, positive for latencies); ``low``/``high`` bound it; ``p`` is the one-sided
    Wilcoxon p-value in the worse direction and ``p_adjusted`` the same after Holm.
    """

    metric: str
    base: float
    head: float
    delta: float
    low: float
    high: float
    p: float
    p_adjusted: float
    tolerance: float
    rounds: int
    verdict: Verdict
    note: str = ""

    @property
    def worse(self) -> float:
        """The estimated change with the sign flipped so that positive means worse."""
        return -self.delta if METRICS[self.metric].higher_is_better else self.delta


@dataclass(frozen=True)
class PairedJudgement:
    """The paired verdict of one configuration, with its evidence."""

    verdict: Verdict
    comparisons: list[PairedComparison] = field(default_factory=list)
    note: str = ""
    """Why there is no comparison (the model is absent at the base revision, the base failed)."""

    def report_fields(self) -> Paired:
        """What the report's ``paired`` part gains: verdict, delta, interval, p per metric."""
        fields: Paired = {"verdict": self.verdict.value}
        if self.note:
            fields["note"] = self.note
        if self.comparisons:
            fields["delta"] = {c.metric: c.delta for c in self.comparisons}
            fields["interval"] = {c.metric: [c.low, c.high] for c in self.comparisons}
            fields["p"] = {c.metric: c.p for c in self.comparisons}
            fields["p_adjusted"] = {c.metric: c.p_adjusted for c in self.comparisons}
            fields["tolerance"] = {c.metric: c.tolerance for c in self.comparisons}
        return fields


def annotate(report: Report, judgement: PairedJudgement | None) -> None:
    """Write a judgement into ``report["paired"]`` (reports without a paired part: nothing)."""
    if judgement is not None and isinstance(report.get("paired"), dict):
        report["paired"].update(judgement.report_fields())


def effective_tolerance(tolerance: Mapping[str, float] | None) -> dict[str, float]:
    """``PAIRED_TOLERANCE`` overridden by parsed fractions (``parse_tolerance``'s)."""
    merged = dict(PAIRED_TOLERANCE)
    for metric, fraction in (tolerance or {}).items():
        if metric not in merged:
            known = ", ".join(METRICS[m].aliases[0] for m in PAIRED_TOLERANCE)
            raise ValueError(
                f"{METRICS[metric].aliases[0] if metric in METRICS else metric!r} is not compared "
                f"by the paired gate, which compares {known} (each slice measures only these): "
                f"leave it out of the paired tolerance")
        merged[metric] = float(fraction)
    return merged


# -- statistics -------------------------------------------------------------------------------


def round_log_ratios(paired: Mapping[str, Any], metric: str) -> np.ndarray:
    """log(head / base) of ``metric`` in each round both sides completed (finite values only)."""
    slices = paired.get("slices") or {}
    rounds = paired.get("slice_rounds") or {}
    head = dict(zip(rounds.get("head", []), (slices.get("head") or {}).get(metric, []),
                    strict=False))
    base = dict(zip(rounds.get("base", []), (slices.get("base") or {}).get(metric, []),
                    strict=False))
    ratios = []
    for index in sorted(set(head) & set(base)):
        h, b = head[index], base[index]
        if h is not None and b is not None and h > 0 and b > 0 and math.isfinite(h / b):
            ratios.append(math.log(h / b))
    return np.array(ratios, dtype=np.float64)


def hodges_lehmann(d: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(estimate, low, high) of the centre of ``d``: the median of the Walsh averages and the
    distribution-free interval from the signed-rank statistic (normal approximation)."""
    n = d.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2.0))
    mean = n * (n + 1) / 4.0
    sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
    k = max(1, int(math.floor(mean - z * sd)))
    low, high = walsh[min(k, walsh.size) - 1], walsh[max(walsh.size - k, 0)]
    return (float(np.median(walsh)), float(low), float(high))


def wilcoxon_p(d: np.ndarray, alternative: str) -> float:
    """One-sided Wilcoxon signed-rank p-value that the log ratios are ``less``/``greater``
    than 0 (1.0 when every ratio is exactly 1)."""
    if d.size == 0:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(d, alternative=alternative).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (NaN stays NaN and does not count in the family)."""
    finite = [(p, i) for i, p in enumerate(p_values) if math.isfinite(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    m = len(finite)
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


# -- verdicts ---------------------------------------------------------------------------------


@dataclass
class _Raw:
    """One (configuration, metric) before the family adjustment."""

    position: int
    metric: str
    base: float
    head: float
    estimate: float
    low: float
    high: float
    p_worse: float
    p_better: float
    rounds: int
    tolerance: float


def _raw(position: int, paired: Mapping[str, Any], metric: str, tolerance: float) -> _Raw:
    d = round_log_ratios(paired, metric)
    estimate, low, high = hodges_lehmann(d)
    higher = METRICS[metric].higher_is_better
    worse_alt, better_alt = ("less", "greater") if higher else ("greater", "less")
    series = paired.get("slices") or {}

    def centre(side: str) -> float:
        values = [v for v in (series.get(side) or {}).get(metric, [])
                  if v is not None and math.isfinite(v)]
        return float(np.median(values)) if values else math.nan

    return _Raw(position, metric, centre("base"), centre("head"), estimate, low, high,
                wilcoxon_p(d, worse_alt), wilcoxon_p(d, better_alt), int(d.size), tolerance)


def judge_family(
    reports: Sequence[Mapping[str, Any]], tolerance: Mapping[str, float] | None = None
) -> list[PairedJudgement | None]:
    """Paired judgements of one test's reports (one family); None for a report that has no
    paired part. ``tolerance`` overrides ``PAIRED_TOLERANCE`` (``inf`` turns a metric off)."""
    tolerances = effective_tolerance(tolerance)
    raws: list[_Raw] = []
    judgements: list[PairedJudgement | None] = [None] * len(reports)
    for position, report in enumerate(reports):
        paired = report.get("paired")
        if not isinstance(paired, Mapping):
            continue
        if report.get("status", "ok") != "ok":
            judgements[position] = PairedJudgement(Verdict.ERROR)
        elif paired.get("base_status") != "ok":
            judgements[position] = PairedJudgement(no_base_verdict(paired),
                                                   note=no_base_note(paired))
        else:
            raws += [_raw(position, paired, metric, tolerances[metric])
                     for metric in gated_metrics(dict(report))
                     if math.isfinite(tolerances.get(metric, math.inf))]
    worse_adjusted = holm([r.p_worse for r in raws])
    better_adjusted = holm([r.p_better for r in raws])
    by_position: dict[int, list[PairedComparison]] = {}
    for raw, p_worse, p_better in zip(raws, worse_adjusted, better_adjusted, strict=True):
        by_position.setdefault(raw.position, []).append(_comparison(raw, p_worse, p_better))
    for position, comparisons in by_position.items():
        judgements[position] = PairedJudgement(combine([c.verdict for c in comparisons]),
                                               comparisons)
    return judgements


def _comparison(raw: _Raw, p_worse: float, p_better: float) -> PairedComparison:
    sign = -1.0 if METRICS[raw.metric].higher_is_better else 1.0
    delta, low, high = (math.expm1(v) for v in (raw.estimate, raw.low, raw.high))
    worse = sign * delta

    def result(verdict: Verdict, note: str = "") -> PairedComparison:
        return PairedComparison(raw.metric, raw.base, raw.head, delta, low, high, raw.p_worse,
                                p_worse, raw.tolerance, raw.rounds, verdict, note)

    if raw.rounds < MIN_ROUNDS:
        return result(Verdict.INCONCLUSIVE,
                      f"only {raw.rounds} usable rounds (at least {MIN_ROUNDS} needed)")
    if worse > raw.tolerance:
        if p_worse < ALPHA:
            return result(Verdict.REGRESSED)
        return result(Verdict.INCONCLUSIVE, f"worse than tolerance but p={p_worse:.2g} (Holm)")
    if -worse > raw.tolerance:
        if p_better < ALPHA:
            return result(Verdict.IMPROVED)
        return result(Verdict.INCONCLUSIVE, f"better than tolerance but p={p_better:.2g} (Holm)")
    return result(Verdict.PASS)


def no_base_verdict(paired: Mapping[str, Any]) -> Verdict:
    """NEW when a revision has no usable base (``--neuronperf-against``: the model is absent
    there, or that old code fails to run); ERROR when ``compare()``'s explicitly given base
    could not run (no revision: a broken reference must not turn the gate off) and when base
    isolation refused (``child.isolation``: what would be compared is not the revision)."""
    status = paired.get("base_status")
    if status == "refused" or (status not in ("absent", "unpaired")
                               and not paired.get("revision")):
        return Verdict.ERROR
    return Verdict.NEW


def no_base_note(paired: Mapping[str, Any]) -> str:
    """Why a configuration has no paired comparison, in a sentence."""
    revision = paired.get("revision")
    at = f" at {revision}" if revision else ""
    if paired.get("base_status") == "absent":
        return f"the model does not exist{at}: {paired.get('base_error')}"
    if paired.get("base_status") == "unpaired":
        return f"not paired: {paired.get('base_error')}"
    if paired.get("base_status") == "refused":
        return f"the base side{at} was refused, so nothing was compared: {paired.get('base_error')}"
    reason = str(paired.get("base_error") or "no reason given").strip()
    return f"the base side{at} failed, so nothing was compared: {reason}"


# -- failure message --------------------------------------------------------------------------


def format_paired_table(judgement: PairedJudgement, revision: str | None = None) -> str:
    """A fixed-width table (under 100 columns): base, head, delta, interval, p per metric."""
    title = f"paired against {revision}" if revision else "paired"
    if not judgement.comparisons:
        return f"{title}: {judgement.note or judgement.verdict.value}"
    header = (f"{'metric':<14} {'base':>10} {'head':>10} {'delta':>8} {'95% interval':>15} "
              f"{'p(Holm)':>8} {'tolerance':>9}  verdict")
    lines = [f"{title} ({judgement.comparisons[0].rounds} rounds)", header, "-" * len(header)]
    for c in judgement.comparisons:
        lines.append(f"{METRICS[c.metric].label:<14} {format_number(c.base):>10} "
                     f"{format_number(c.head):>10} {format_percent(c.delta):>8} "
                     f"{interval_text(c.low, c.high):>15} {format_p(c.p_adjusted):>8} "
                     f"{format_tolerance(c.metric, c.tolerance):>9}  {c.verdict.value}")
        if c.note:
            lines.append(f"{'':<14}   {c.note}")
    return "\n".join(lines)


def interval_text(low: float, high: float) -> str:
    """``-12.1%..-8.0%``: an interval of relative changes."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "-"
    return f"{low:+.1%}..{high:+.1%}"
