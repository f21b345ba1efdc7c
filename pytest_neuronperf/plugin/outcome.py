"""The gate policy: whether a judged configuration fails its test, and the words that say so.

This is the one place that decides a test's outcome. ``gating.verdicts.judge`` gives the
statistical verdict; here a ``pytest_neuronperf_verdict`` hook may replace it, the run's options
decide whether NEW and INCONCLUSIVE count (``--neuronperf-strict``, except in a run that saves
the baseline, which replaces what they compared against), and a failing configuration gets its
one-line headline and its table. A paired run (``--neuronperf-against``, ``compare``) adds a
second judgement, head against base; with a baseline too, the worse of the two verdicts stands.
The history gate (``--neuronperf-history-gate``) adds a third, this run against the runs before
it: its REGRESSED stands like any other. ``plugin.pytest_runtest_call`` only raises what this
decided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_neuronperf.engine.interference import describe as describe_interference
from pytest_neuronperf.gating.paired import PairedJudgement, format_paired_table, interval_text
from pytest_neuronperf.gating.verdicts import (
    Judgement,
    MetricComparison,
    Verdict,
    format_judgement_table,
)
from pytest_neuronperf.metrics import BUDGETS, METRICS, worse_sign
from pytest_neuronperf.plugin.options import RunOptions
from pytest_neuronperf.reports import Report, config_label

if TYPE_CHECKING:
    from pytest_neuronperf.history.gate import HistoryJudgement


@dataclass(frozen=True)
class Outcome:
    """What one configuration means for its test."""

    verdict: Verdict
    failing: bool
    label: str
    """The configuration, ``bs=8 n=2 w=1 p=1``."""
    headline: str
    """One line: ``REGRESSED bs=8 n=2 w=1 p=1: throughput -21% (tolerance -12%)``."""
    details: str = ""
    """The evidence under the headline (the judgement table, or the error)."""


def strict_applies(options: RunOptions) -> bool:
    """NEW and INCONCLUSIVE fail only when strict, and never in the run that saves a baseline."""
    return options.strict and not options.save_baseline


SEVERITY = (Verdict.ERROR, Verdict.OVER_BUDGET, Verdict.REGRESSED, Verdict.INCONCLUSIVE,
            Verdict.NEW, Verdict.IMPROVED, Verdict.PASS)
"""Worst first: when two gates judged a configuration, the earlier verdict stands."""


def merged_verdict(
    judgement: Judgement, paired: PairedJudgement | None, options: RunOptions
) -> Verdict:
    """The verdict of the baseline gate and the paired gate together: the worse one.

    Without a baseline file the baseline gate can only say NEW (or OVER_BUDGET, ERROR), and its
    NEW means nothing in a paired run, so the paired verdict stands."""
    if paired is None:
        return judgement.verdict
    if options.baseline is None and judgement.verdict is Verdict.NEW:
        return paired.verdict
    return min(judgement.verdict, paired.verdict, key=SEVERITY.index)


def with_history(verdict: Verdict, history: HistoryJudgement | None) -> Verdict:
    """The verdict with the history gate's: its REGRESSED stands over anything milder."""
    if history is None or history.verdict is not Verdict.REGRESSED:
        return verdict
    return min(verdict, Verdict.REGRESSED, key=SEVERITY.index)


def decide(
    report: Report, judgement: Judgement, override: Any, options: RunOptions,
    paired: PairedJudgement | None = None, history: HistoryJudgement | None = None,
) -> Outcome:
    """The outcome of one configuration; sets the report's ``verdict`` (and ``error`` when a
    verdict hook answered something that is not a verdict)."""
    merged = with_history(merged_verdict(judgement, paired, options), history)
    verdict = merged if override is None else hook_verdict(override)
    if verdict is Verdict.ERROR and override is not None and report.get("status") == "ok":
        report["error"] = (f"a pytest_neuronperf_verdict hook returned {override!r}, "
                           f"not a verdict ({', '.join(v.value for v in Verdict)})")
    report["verdict"] = verdict.value
    failing = verdict.failing(strict_applies(options))
    label = config_label(report)
    if verdict is Verdict.ERROR:
        error = str(report.get("error") or judgement.error or "no reason given")
        first = error.strip().splitlines()[0] if error.strip() else "no reason given"
        return Outcome(verdict, failing, label, f"ERROR {label}: {first}", error)
    why = reason(verdict, judgement)
    if paired is not None and verdict is not Verdict.OVER_BUDGET and (
            options.baseline is None or verdict is not judgement.verdict):
        why = paired_reason(verdict, paired, report)  # the paired gate made the verdict
    if history is not None and history.verdict is verdict is Verdict.REGRESSED and not (
            judgement.verdict is verdict or (paired is not None and paired.verdict is verdict)):
        why = history.reason()  # the history gate made the verdict
    tables = [format_judgement_table(judgement)] if options.baseline is not None or (
        paired is None or judgement.budget_misses) else []
    if paired is not None:
        tables.append(format_paired_table(paired, (report.get("paired") or {}).get("revision")))
    if history is not None and (history.regressions or history.note):
        tables.append(history.table())
    busy = describe_interference(report.get("interference"))
    if busy:
        tables.append(f"note: {busy}; figures from a busy machine are less reliable")
    return Outcome(verdict, failing, label, f"{verdict.value} {label}: {why}",
                   "\n".join(tables))


def paired_reason(verdict: Verdict, paired: PairedJudgement, report: Mapping[str, Any]) -> str:
    """What made a paired verdict: ``paired vs main: throughput -9.8% [-12.0%..-7.5%]``."""
    if not paired.comparisons:
        return paired.note or "no paired comparison"
    behind = [c for c in paired.comparisons if c.verdict is verdict] or paired.comparisons[:1]
    revision = (report.get("paired") or {}).get("revision")
    parts = []
    for c in behind:
        tolerance = (f"{worse_sign(c.metric)}{c.tolerance:.0%}" if math.isfinite(c.tolerance)
                     else "off")
        delta = f"{c.delta:+.1%}" if math.isfinite(c.delta) else "?"
        parts.append(f"{short_name(c.metric)} {delta} [{interval_text(c.low, c.high)}] "
                     f"(tolerance {tolerance})")
    return (f"paired vs {revision}: " if revision else "paired: ") + ", ".join(parts)


def unused_marker_text(nodeid: str) -> str:
    """The warning for a ``neuronperf`` marker on a test that does not use the fixture."""
    return (f"{nodeid} has a neuronperf marker but does not use the neuronperf fixture, so "
            f"nothing is measured: add a neuronperf argument to the test, or remove the marker")


def unused_marker_fails(options: RunOptions) -> bool:
    """Such a marker fails its test under ``--neuronperf-strict`` (a save run included: it
    measured nothing to save)."""
    return options.strict


def hook_verdict(value: Any) -> Verdict:
    """A verdict hook's answer as a Verdict; anything else is an ERROR (said in the report)."""
    try:
        return Verdict(str(value))
    except ValueError:
        return Verdict.ERROR


def reason(verdict: Verdict, judgement: Judgement) -> str:
    """What made the verdict, in a few words: the metrics and changes behind it."""
    if verdict is Verdict.OVER_BUDGET and judgement.budget_misses:
        parts = []
        for miss in judgement.budget_misses:
            relation = "<" if BUDGETS[miss.budget].higher_is_better else ">"
            parts.append(f"{short_name(miss.metric)} {number(miss.actual)} {relation} "
                         f"{miss.budget}={number(miss.limit)}"
                         + (f" ({miss.note})" if miss.note else ""))
        return ", ".join(parts)
    if verdict is Verdict.NEW:
        return "no baseline entry for this configuration"
    behind = [c for c in judgement.comparisons if c.verdict is verdict]
    if not behind:
        return "verdict set by a pytest_neuronperf_verdict hook"
    return ", ".join(change(c) for c in behind)


def change(c: MetricComparison) -> str:
    """``throughput -21% (tolerance -12%)`` or ``p99 +40% (too few windows ...)``."""
    delta = f"{c.delta:+.0%}" if math.isfinite(c.delta) else "?"
    if c.verdict is Verdict.INCONCLUSIVE and c.note:
        return f"{short_name(c.metric)} {delta} ({c.note})"
    tolerance = (f"{worse_sign(c.metric)}{c.tolerance:.0%}" if math.isfinite(c.tolerance)
                 else "off")
    return f"{short_name(c.metric)} {delta} (tolerance {tolerance})"


def short_name(metric_or_key: str) -> str:
    """``throughput``, ``p50``, ``p99``: a metric's shortest name, from its name or report key."""
    for metric in METRICS.values():
        if metric_or_key in (metric.name, metric.report_key):
            return metric.aliases[0]
    return metric_or_key


def number(value: float) -> str:
    """A figure in a headline: ``20``, ``3.5``, ``0.123``, ``1,234``."""
    if not math.isfinite(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def failure_message(outcomes: list[tuple[str, Outcome]]) -> str:
    """The text a failing perf test fails with: headlines first (the first line is what pytest's
    short summary shows), then each configuration's evidence."""
    failing = [(test, o) for test, o in outcomes if o.failing]
    first = failing[0][1].headline
    more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
    lines = [f"neuronperf gate failed: {first}{more}"]
    for test, outcome in failing:
        lines += ["", f"{test} [{outcome.label}]: {outcome.verdict.value}", outcome.details]
    return "\n".join(lines)
