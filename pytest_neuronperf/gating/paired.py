"""The paired gate: head against base, launch pair by launch pair, stopping when it is clear.

A paired configuration is measured as launch pairs (``engine.paired``): fresh copies of both
sides, a few interleaved rounds each. Rounds inside one pair share the pair's processes, and a
process has its own speed for its whole life (allocator layout, alignment, thread placement: a
few per cent), so rounds are not independent replicates of "this code": the pair is the unit.
Per gated metric (``metrics.METRICS``):

- each pair gives one value, the median over its rounds of log(head / base);
- the change is the mean of the pair values with a Student t ``CONFIDENCE`` interval over pairs
  (its spread is the launch-to-launch spread, which ``benchmarks/variance_levels.py`` measured
  to be the larger level), shown as a relative change;
- pairs are added one at a time (sequential): at look ``k`` of ``planned`` pairs a one-sided t
  test in the worse direction may stop the run as ``REGRESSED`` at the share of ``ALPHA`` the
  spending rule gives that look (``alpha_share``: ``INTERIM_SHARE`` spread evenly over the
  interim looks, the rest at the last), and the run stops as clear when no metric can still be
  a regression: each one's one-sided ``1 - BETA`` upper bound of the worse change lies below its
  tolerance (or it is significantly better). A clear stop only ever lowers the false-failure
  rate; what it may cost is power near the tolerance (``benchmarks/stop_rule_study.py``: none
  measurable at +5 % and +10 %). Each look's p-value divided by its share, the smallest over
  the looks, is the sequential p-value (a Bonferroni bound over the looks: valid whatever
  their correlation);
- the sequential p-values of a test's whole family (its configurations x metrics) are adjusted
  with Holm's step-down method, so that identical code fails a *test* (not a configuration) at
  most ``ALPHA`` of the time.

A metric is ``REGRESSED`` when its estimate is worse than its tolerance **and** its adjusted
p-value is below ``ALPHA``; the tolerance keeps tiny real differences from failing anything.
Worse than tolerance but not significant is ``INCONCLUSIVE``; fewer than ``MIN_PAIRS`` pairs too.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_neuronperf import formatting
from pytest_neuronperf.engine import paired as engine_paired
from pytest_neuronperf.gating.verdicts import Verdict, combine, window_median
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
"""Default paired tolerances per gated metric (fractions): the metrics each round measures
(throughput, p50, p99; tokens/s, TTFT and TPOT p99 in the generate scenario), the ones the
paired gate compares (``compared_metrics``: a report's kind picks its three). The generate
scenario's follow the closed loop's (tokens/s and TPOT as throughput and p50: a mean over many
tokens; TTFT as p99: one value a request)."""
ALPHA = 0.05
"""Family-wise one-sided level per test (Holm over its configurations x metrics)."""
BETA = 0.05
"""A look stops as clear when every metric's one-sided ``1 - BETA`` upper bound of the worse
change is below its tolerance (a non-inferiority test at each look: ``stop_rule_study.py``
found that splitting ``BETA`` over the looks, or asking the lower bound inside the band too,
kept unchanged code running to the cap and bought no detection at +5 % or +10 %)."""
INTERIM_SHARE = 0.2
"""Share of ``ALPHA`` spent on the interim looks (evenly); the last planned look gets the rest
(a Bonferroni bound wastes what a continuous spending function gives the last look)."""
CONFIDENCE = 0.95
"""Two-sided level of the interval shown beside each paired delta."""
MIN_PAIRS = engine_paired.MIN_PAIRS
"""The first look: fewer launch pairs give no usable spread (two pairs: one degree of freedom)."""


@dataclass(frozen=True)
class PairedComparison:
    """How one metric of one configuration moved from base to head.

    ``delta`` is the estimated relative change head / base - 1 (negative is worse for
    throughput, positive for latencies); ``low``/``high`` bound it; ``p`` is the sequential
    one-sided p-value in the worse direction and ``p_adjusted`` the same after Holm.
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
    pairs: int
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
        """What the report's ``paired`` part gains: verdict, and per metric the figures the
        verdict used (``figures``: each side's median slice), delta, interval, p, tolerance
        and the metric's verdict."""
        fields: Paired = {"verdict": self.verdict.value}
        if self.note:
            fields["note"] = self.note
        if self.comparisons:
            fields["figures"] = {side: {c.metric: formatting.finite(getattr(c, side))
                                        for c in self.comparisons} for side in ("head", "base")}
            fields["verdicts"] = {c.metric: c.verdict.value for c in self.comparisons}
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


def compared_metrics(report: Mapping[str, Any], tolerances: Mapping[str, float]) -> list[str]:
    """The metrics the paired gate compares for a report of this kind (its
    ``metrics.gated_metrics`` with a paired tolerance that is not off); a mapping without
    ``scenario`` (a ``paired`` part) is the closed loop's."""
    return [m for m in gated_metrics(dict(report))
            if math.isfinite(tolerances.get(m, math.inf))]


def family_size(configurations: int, tolerance: Mapping[str, float] | None,
                report: Mapping[str, Any] | None = None) -> int:
    """Configurations x the metrics the gate compares for reports like ``report``."""
    return configurations * len(compared_metrics(report or {}, effective_tolerance(tolerance)))


# -- statistics -------------------------------------------------------------------------------


def launch_values(paired: Mapping[str, Any], metric: str) -> np.ndarray:
    """One value per launch pair, in the order they ran: the median over the pair's rounds of
    log(head / base) (rounds where both sides have a finite, positive value); NaN for a pair
    without such a round."""
    values = []
    for launch in paired.get("launches") or []:
        series = launch.get("values") or {}
        head = (series.get("head") or {}).get(metric) or []
        base = (series.get("base") or {}).get(metric) or []
        ratios = [math.log(h / b) for h, b in zip(head, base, strict=False)
                  if h is not None and b is not None and h > 0 and b > 0
                  and math.isfinite(h) and math.isfinite(b)]
        # statistics.median: a pair has a few rounds, and np.median costs ~0.1 ms a call
        values.append(statistics.median(ratios) if ratios else math.nan)
    return np.array(values, dtype=np.float64)


def t_interval(y: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of ``y`` with the two-sided Student t interval (NaN below 2 values)."""
    n = y.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(np.mean(y))
    if n < 2:
        return (mean, math.nan, math.nan)
    from scipy.special import stdtrit  # Student t quantile (scipy.stats' t.ppf, without its cost)

    half = float(stdtrit(n - 1, 0.5 + confidence / 2.0)) * float(np.std(y, ddof=1)) / math.sqrt(n)
    return (mean, mean - half, mean + half)


def t_p(y: np.ndarray, alternative: str) -> float:
    """One-sided one-sample t test p-value that the mean of ``y`` is ``less``/``greater`` than
    0 (1.0 when every value is 0, NaN below 2 values)."""
    if y.size < 2:
        return math.nan
    if not np.any(y != 0):
        return 1.0
    sd = float(np.std(y, ddof=1))
    mean = float(np.mean(y))
    if sd == 0:
        return 0.0 if (mean < 0) == (alternative == "less") else 1.0
    from scipy.special import stdtr  # Student t distribution function (scipy.stats' t.cdf)

    statistic = mean / (sd / math.sqrt(y.size))
    return float(stdtr(y.size - 1, statistic if alternative == "less" else -statistic))


def alpha_share(look: int, planned: int) -> float:
    """The share of ``ALPHA`` spent at ``look`` (pairs so far) of ``planned`` pairs: the
    spending function alpha(t) = INTERIM_SHARE * t for t < 1 and 1 at t = 1, over the looks
    ``MIN_PAIRS``..``planned`` (the first look also spends what its earlier pairs would have)."""
    planned = max(planned, MIN_PAIRS)
    if look < MIN_PAIRS or look > planned:
        return 0.0
    before = 0.0 if look == MIN_PAIRS else INTERIM_SHARE * (look - 1) / planned
    now = 1.0 if look == planned else INTERIM_SHARE * look / planned
    return now - before


def sequential_p(y: np.ndarray, planned: int, alternative: str) -> float:
    """The sequential p-value: over the looks taken (``MIN_PAIRS``.. pairs), the smallest
    p-value of the pairs so far divided by its look's ``alpha_share``; capped at 1.
    P(sequential p <= x) <= x for every x (Bonferroni over the looks)."""
    best = math.inf
    for look in range(MIN_PAIRS, min(y.size, max(planned, MIN_PAIRS)) + 1):
        share = alpha_share(look, planned)
        p = t_p(y[:look], alternative)
        if share > 0 and math.isfinite(p):
            best = min(best, p / share)
    return min(1.0, best) if math.isfinite(best) else math.nan


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


# -- stopping ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """What one look at the pairs so far decided: stop or go on, and why."""

    stop: bool
    code: str
    """``regressed``, ``clear`` (no metric can still be worse than its tolerance), ``cap``
    (the planned pairs ran), or ``continue``."""
    reason: str


def look(paired: Mapping[str, Any], tolerances: Mapping[str, float], family_size: int,
         planned: int) -> Look:
    """Whether the pairs so far decide the configuration. The levels are Bonferroni over the
    family (``family_size`` configurations x metrics): Holm at the end can only be kinder."""
    values = {metric: launch_values(paired, metric)
              for metric in compared_metrics(paired, tolerances)}
    pairs = len(paired.get("launches") or [])
    if pairs < MIN_PAIRS:
        return Look(False, "continue", f"{pairs} of at least {MIN_PAIRS} pairs")
    level = ALPHA * alpha_share(pairs, planned) / max(family_size, 1)
    clear = []
    for metric, y in values.items():
        y = y[np.isfinite(y)]
        decided = metric_decision(metric, y, tolerances[metric], level, BETA)
        if decided == "regressed":
            return Look(True, "regressed", f"{METRICS[metric].label} worse than its tolerance "
                        f"and significant after {pairs} pairs")
        clear.append(decided != "open")
    if clear and all(clear):
        return Look(True, "clear", f"no metric worse than its tolerance at "
                    f"{1 - BETA:.0%} confidence after {pairs} pairs")
    if pairs >= planned:
        return Look(True, "cap", f"the {planned} planned pairs ran (duration per side reached)")
    return Look(False, "continue", f"undecided after {pairs} pairs")


def stop_rules(tolerance: Mapping[str, float] | None
               ) -> Callable[[int], Callable[[Mapping[str, Any], int], Look]]:
    """The engine's stopping rule for a call of so many configurations: ``look`` with the
    call's tolerances and its family (configurations x the metrics compared)."""
    tolerances = effective_tolerance(tolerance)

    def for_call(configurations: int) -> Callable[[Mapping[str, Any], int], Look]:
        def rule(paired: Mapping[str, Any], planned: int) -> Look:
            family = family_size(configurations, tolerance, paired)
            return look(paired, tolerances, family, planned)

        return rule

    return for_call


def metric_decision(metric: str, y: np.ndarray, tolerance: float, alpha: float,
                    beta: float) -> str:
    """``regressed``, ``improved``, ``clear`` (the one-sided ``1 - beta`` upper bound of the
    worse change lies below the tolerance) or ``open`` for one metric's pair values."""
    if y.size < MIN_PAIRS:
        return "open"
    higher = METRICS[metric].higher_is_better
    worse_alt, better_alt = ("less", "greater") if higher else ("greater", "less")
    sign = -1.0 if higher else 1.0
    worse = sign * math.expm1(float(np.mean(y)))
    if worse > tolerance and t_p(y, worse_alt) < alpha:
        return "regressed"
    if -worse > tolerance and t_p(y, better_alt) < alpha:
        return "improved"
    if beta > 0:
        _, _, upper = t_interval(sign * y, 1.0 - 2.0 * beta)  # the worse change, log scale
        if math.isfinite(upper) and upper < math.log1p(tolerance):
            return "clear"
    return "open"


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
    pairs: int
    tolerance: float


def _raw(position: int, paired: Mapping[str, Any], metric: str, tolerance: float) -> _Raw:
    y = launch_values(paired, metric)
    y = y[np.isfinite(y)]
    estimate, low, high = t_interval(y)
    higher = METRICS[metric].higher_is_better
    worse_alt, better_alt = ("less", "greater") if higher else ("greater", "less")
    planned = int(paired.get("planned_pairs") or y.size)

    def centre(side: str) -> float:
        values = [v for launch in paired.get("launches") or []
                  for v in ((launch.get("values") or {}).get(side) or {}).get(metric) or []]
        return window_median(values, metric)

    return _Raw(position, metric, centre("base"), centre("head"), estimate, low, high,
                sequential_p(y, planned, worse_alt), sequential_p(y, planned, better_alt),
                int(y.size), tolerance)


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
                     for metric in compared_metrics(report, tolerances)]
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
                                p_worse, raw.tolerance, raw.pairs, verdict, note)

    if raw.pairs < MIN_PAIRS:
        return result(Verdict.INCONCLUSIVE,
                      f"only {raw.pairs} usable launch pairs (at least {MIN_PAIRS} needed)")
    if worse > raw.tolerance:
        if p_worse < ALPHA:
            return result(Verdict.REGRESSED)
        return result(Verdict.INCONCLUSIVE,
                      f"worse than tolerance but p={formatting.p_value(p_worse)} (Holm)")
    if -worse > raw.tolerance:
        if p_better < ALPHA:
            return result(Verdict.IMPROVED)
        return result(Verdict.INCONCLUSIVE,
                      f"better than tolerance but p={formatting.p_value(p_better)} (Holm)")
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


def format_paired_table(judgement: PairedJudgement,
                        paired: Mapping[str, Any] | None = None) -> str:
    """A fixed-width table (under 100 columns): base, head, delta, interval, p per metric, after
    a title with the revision, the launch pairs that ran and why they stopped; then each pair's
    throughput change (the evidence the interval was drawn from)."""
    paired = paired or {}
    revision = paired.get("revision")
    title = f"paired against {revision}" if revision else "paired"
    if not judgement.comparisons:
        return f"{title}: {judgement.note or judgement.verdict.value}"
    header = (f"{'metric':<14} {'base':>10} {'head':>10} {'delta':>8} {'95% interval':>15} "
              f"{'p(Holm)':>8} {'tolerance':>9}  verdict")
    pairs = judgement.comparisons[0].pairs
    stop = paired.get("stop") or {}
    why = f"; stopped: {stop['reason']}" if stop.get("reason") else ""
    lines = [f"{title} ({pairs} launch pairs{why})", header, "-" * len(header)]
    for c in judgement.comparisons:
        lines.append(f"{METRICS[c.metric].label:<14} {formatting.number(c.base):>10} "
                     f"{formatting.number(c.head):>10} {formatting.percent(c.delta):>8} "
                     f"{formatting.interval(c.low, c.high):>15} "
                     f"{formatting.p_value(c.p_adjusted):>8} "
                     f"{formatting.tolerance(c.metric, c.tolerance):>9}  {c.verdict.value}")
        if c.note:
            lines.append(f"{'':<14}   {c.note}")
    per_pair = launch_values(paired, "throughput")
    if per_pair.size:
        orders = [str(launch.get("order", "?"))[0] for launch in paired.get("launches") or []]
        shown = " ".join(f"{formatting.percent(math.expm1(v))}({o})" if math.isfinite(v) else "-"
                         for v, o in zip(per_pair, orders, strict=False))
        lines += textwrap.wrap(f"throughput per pair (launched first: b/h): {shown}", 99,
                               subsequent_indent="  ")
    return "\n".join(lines)

