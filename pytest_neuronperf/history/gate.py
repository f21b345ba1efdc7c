"""The history gate (``--neuronperf-history-gate``): does this run, with the runs before it,
end in a change point worse than tolerance?

A configuration's series (its test, configuration and machine, on the run's branch, in commit
order) gets this run as its newest point. When the last change point of a gated metric is at
most ``RECENT_RUNS`` runs old and worse than the metric's tolerance, the verdict is REGRESSED;
otherwise PASS. ``plugin.outcome`` merges it with the other gates (the worst verdict stands):
this module only judges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_neuronperf import formatting
from pytest_neuronperf.gating.verdicts import Verdict, effective_tolerance
from pytest_neuronperf.history.changes import MIN_RUNS
from pytest_neuronperf.history.recording import result_rows
from pytest_neuronperf.history.series import (
    FoundChange,
    SeriesKey,
    changes_in,
    confidence_text,
    current_point,
    series_of,
)
from pytest_neuronperf.history.store import StoredResult, StoredRun

RECENT_RUNS = 10
"""A change point at most this many runs old (this run included) fails the gate; an older one
has had its chance to be seen (and fixed, or accepted)."""


@dataclass(frozen=True)
class HistoryJudgement:
    """The history gate's verdict on one configuration."""

    verdict: Verdict
    runs: int
    """Runs in the series, this one included."""
    regressions: list[FoundChange] = field(default_factory=list)
    tolerance: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def table(self) -> str:
        """The evidence: per change point, the medians around it and what changed."""
        lines = [f"history ({self.runs} runs of this configuration in commit order):"]
        for c in self.regressions:
            lines.append(
                f"  {c.key.metric}: median {formatting.number(c.change.before)} over "
                f"{c.change.runs_before} run(s) -> {formatting.number(c.change.after)} over "
                f"{c.change.runs_after} run(s) ({formatting.percent(c.change.magnitude)}, "
                f"tolerance {formatting.tolerance(c.key.metric, self.tolerance[c.key.metric])}, "
                f"confidence "
                f"{confidence_text(c.change.confidence)})")
            lines.append(f"    first run after: {c.first.run.uid[:8]} commit "
                         f"{c.first.run.commit or '?'}; last run before: "
                         f"{c.before.run.uid[:8]} commit {c.before.run.commit or '?'}")
            versions = c.versions
            lines.append("    package versions changed: "
                         + (", ".join(versions) if versions else "none"))
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)

    def report_field(self) -> dict[str, Any]:
        """What a report carries under ``history``."""
        return {"verdict": self.verdict.value, "runs": self.runs, "note": self.note,
                "changes": [{"metric": c.key.metric, "magnitude": c.change.magnitude,
                             "confidence": c.change.confidence, "commits": c.commits,
                             "first_run": c.first.run.uid, "versions": c.versions,
                             "runs_after": c.change.runs_after} for c in self.regressions]}


def judge_history(
    stored: Sequence[StoredRun], run: Mapping[str, Any], report: Mapping[str, Any],
    tolerance: Mapping[str, float] | None = None,
) -> HistoryJudgement | None:
    """Judge one report as the newest run after ``stored`` (None when it has no results)."""
    rows = result_rows([report])
    if not rows or report.get("status", "ok") != "ok":
        return None
    row = rows[0]
    result = StoredResult(row["test"], row["config"], row["machine"], row["status"],
                          row["verdict"], row["metrics"], row["other_pct"], row["fingerprint"],
                          row["report"])
    series = series_of(stored)
    tolerances = effective_tolerance(tolerance)
    regressions, runs = [], 1
    for metric in result.metrics:
        limit = tolerances.get(metric, math.inf)
        if not math.isfinite(limit):
            continue
        key = SeriesKey(result.test, result.config, result.machine, metric)
        points = [*series.get(key, []), current_point(run, report, metric, result)]
        runs = max(runs, len(points))
        changes = changes_in(key, points)
        if changes:
            last = changes[-1]
            if last.change.runs_after <= RECENT_RUNS and last.worse > limit:
                regressions.append(last)
    note = "" if runs >= 2 * MIN_RUNS else (
        f"{runs} run(s) of this configuration so far; a change point needs at least "
        f"{MIN_RUNS} runs on each side")
    return HistoryJudgement(Verdict.REGRESSED if regressions else Verdict.PASS, runs,
                            regressions, {k: tolerances[k] for k in tolerances}, note)
