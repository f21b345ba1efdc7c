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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_neuronperf import formatting
from pytest_neuronperf.engine.interference import describe as describe_interference
from pytest_neuronperf.gating.paired import PairedJudgement, format_paired_table
from pytest_neuronperf.gating.verdicts import (
    Judgement,
    MetricComparison,
    Verdict,
    format_judgement_table,
)
from pytest_neuronperf.metrics import BUDGETS, METRICS
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
    """One line, what matters first (a CI log cuts it at 80 columns):
    ``REGRESSED throughput -21.0% at bs=8 n=2 w=1 p=1 (tolerance -12%)``."""
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
    if paired is not None and verdict is not Verdict.OVER_BUDGET and (
            options.baseline is None or verdict is not judgement.verdict):
        why = paired_reason(verdict, paired, report, label)  # the paired gate made it
    else:
        why = reason(verdict, judgement, label)
    if history is not None and history.verdict is verdict is Verdict.REGRESSED and not (
            judgement.verdict is verdict or (paired is not None and paired.verdict is verdict)):
        why = history_reason(history, label)  # the history gate made the verdict
    tables = [format_judgement_table(judgement)] if options.baseline is not None or (
        paired is None or judgement.budget_misses) else []
    if paired is not None:
        tables.append(format_paired_table(paired, report.get("paired")))
    if history is not None and (history.regressions or history.note):
        tables.append(history.table())
    busy = describe_interference(report.get("interference"))
    if busy:
        tables.append(f"note: {busy}; figures from a busy machine are less reliable")
    return Outcome(verdict, failing, label, f"{verdict.value} {why}", "\n".join(tables))


def headline(parts: list[tuple[str, str]], label: str) -> str:
    """``throughput -21.0% at bs=8 n=2 w=1 p=1 (tolerance -12%), p50 +30.0% (...)``: each
    metric's change and its detail, the configuration after the first change."""
    (change_text, detail), *rest = parts
    first = f"{change_text} at {label}" + (f" ({detail})" if detail else "")
    return ", ".join([first, *(f"{c} ({d})" if d else c for c, d in rest)])


def paired_reason(verdict: Verdict, paired: PairedJudgement, report: Mapping[str, Any],
                  label: str) -> str:
    """What made a paired verdict:
    ``throughput -9.8% at bs=1 n=1 w=1 p=1 (paired vs main: -12.0%..-7.5%, tolerance -3%)``."""
    if not paired.comparisons:
        return f"{label}: {paired.note or 'no paired comparison'}"
    behind = [c for c in paired.comparisons if c.verdict is verdict] or paired.comparisons[:1]
    revision = (report.get("paired") or {}).get("revision")
    against = f"paired vs {revision}: " if revision else "paired: "
    parts = [(f"{short_name(c.metric)} {formatting.percent(c.delta)}",
              f"{against if position == 0 else ''}{formatting.interval(c.low, c.high)}, "
              f"tolerance {formatting.tolerance(c.metric, c.tolerance)}")
             for position, c in enumerate(behind)]
    return headline(parts, label)


def history_reason(history: HistoryJudgement, label: str) -> str:
    """What made a history verdict: ``throughput -64.8% at bs=1 n=1 w=1 p=1 (history: from the
    run of ... (commits ...), confidence 99.1%, 3 run(s) since, tolerance -12%)``."""
    parts = [(f"{short_name(c.key.metric)} {formatting.percent(c.change.magnitude)}",
              f"{'history: ' if position == 0 else ''}{c.evidence()}, tolerance "
              f"{formatting.tolerance(c.key.metric, history.tolerance[c.key.metric])}")
             for position, c in enumerate(history.regressions)]
    return headline(parts, label)


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


def reason(verdict: Verdict, judgement: Judgement, label: str) -> str:
    """What made the verdict: the metrics and changes behind it (``metrics.METRICS`` order)."""
    if verdict is Verdict.OVER_BUDGET and judgement.budget_misses:
        parts = []
        for miss in judgement.budget_misses:
            relation = "<" if BUDGETS[miss.budget].higher_is_better else ">"
            parts.append((f"{short_name(miss.metric)} {formatting.number(miss.actual)} "
                          f"{relation} {miss.budget}={formatting.number(miss.limit)}",
                          miss.note))
        return headline(parts, label)
    if verdict is Verdict.NEW:
        return f"{label}: no baseline entry for this configuration"
    behind = [c for c in judgement.comparisons if c.verdict is verdict]
    if not behind:
        return f"{label}: verdict set by a pytest_neuronperf_verdict hook"
    return headline([change(c) for c in behind], label)


def change(c: MetricComparison) -> tuple[str, str]:
    """(``throughput -21.0%``, ``tolerance -12%``), or the note of an INCONCLUSIVE metric."""
    text = f"{short_name(c.metric)} {formatting.percent(c.delta)}"
    if c.verdict is Verdict.INCONCLUSIVE and c.note:
        return text, c.note
    return text, f"tolerance {formatting.tolerance(c.metric, c.tolerance)}"


def short_name(metric_or_key: str) -> str:
    """``throughput``, ``p50``, ``p99``: a metric's shortest name, from its name or report key."""
    for metric in METRICS.values():
        if metric_or_key in (metric.name, metric.report_key):
            return metric.aliases[0]
    return metric_or_key


def failure_message(outcomes: list[tuple[str, Outcome]]) -> str:
    """The text a failing perf test fails with: the first failing configuration's headline
    (the first line is what pytest's short summary shows, cut to the terminal's width), then
    each failing configuration's evidence."""
    failing = [(test, o) for test, o in outcomes if o.failing]
    first = failing[0][1].headline
    others = len(failing) - 1
    more = f" (and {others} more configuration{'s' if others > 1 else ''})" if others else ""
    lines = [f"{first}{more}", "",
             f"neuronperf gate failed: {len(failing)} of {len(outcomes)} configuration(s)"]
    for test, outcome in failing:
        lines += ["", f"{test} [{outcome.label}]: {outcome.verdict.value}", outcome.details]
    return "\n".join(lines)
