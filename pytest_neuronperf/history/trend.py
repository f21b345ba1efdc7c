"""The trend table (text) and the trend page (one self-contained HTML file) of a history.

Per test and configuration (and machine): each gated metric over the runs in commit order, the
change points marked, and for each the commits between which it happened and the package
versions that changed. matplotlib is imported only when a page is written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_neuronperf import formatting
from pytest_neuronperf.history.series import (
    FoundChange,
    Point,
    SeriesKey,
    changes_in,
    confidence_text,
    series_of,
    short,
    short_metric,
)
from pytest_neuronperf.history.store import StoredRun
from pytest_neuronperf.reporting.files import atomic_write
from pytest_neuronperf.reporting.html import STYLE, _e, _img


@dataclass(frozen=True)
class Trend:
    """One series with its change points."""

    key: SeriesKey
    points: list[Point]
    changes: list[FoundChange]


def trends(runs: Sequence[StoredRun]) -> list[Trend]:
    """Every series of ``runs`` with its change points."""
    return [Trend(key, points, changes_in(key, points))
            for key, points in series_of(runs).items()]


def table_lines(found: Sequence[Trend], runs: Sequence[StoredRun]) -> list[str]:
    """The trend table: per test, configuration and machine, the runs, each metric's latest
    value with its count of change points, then each change point with what changed."""
    if not found:
        return [f"no results in the history ({len(runs)} run(s))"]
    groups: dict[tuple[str, str, str], list[Trend]] = {}
    for trend in found:
        groups.setdefault((trend.key.test, trend.key.config, trend.key.machine), []).append(trend)
    lines = [f"{len(runs)} run(s), {len(groups)} configuration(s); per metric its latest value "
             f"[change points], then each change point, oldest first"]
    test = None
    for (name, _, machine), group in groups.items():
        if name != test:
            test = name
            lines.append(test)
        metrics = "  ".join(f"{short_metric(t.key.metric)} {formatting.number(t.points[-1].value)} "
                            f"[{len(t.changes)}]" for t in group)
        runs_seen = max(len(t.points) for t in group)
        lines.append(f"  {group[0].key.label}  machine {machine}  {runs_seen} run(s)  {metrics}")
        lines += [f"      {change.text()}" for t in group for change in t.changes]
    return lines


def write_page(found: Sequence[Trend], runs: Sequence[StoredRun], path: Path,
               title: str) -> str:
    """Write the trend page; returns the path written."""
    atomic_write(path, render(found, runs, title))
    return str(path)


def render(found: Sequence[Trend], runs: Sequence[StoredRun], title: str) -> str:
    """The trend page as a string."""
    import matplotlib

    matplotlib.use("Agg")
    groups: dict[tuple[str, str, str], list[Trend]] = {}
    for trend in found:
        groups.setdefault((trend.key.test, trend.key.config, trend.key.machine), []).append(trend)
    changes = sum(len(t.changes) for t in found)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>",
             f"<p class='note'>{time.strftime('%Y-%m-%d %H:%M:%S')}: {len(runs)} run(s), "
             f"{len(groups)} configuration(s), {changes} change point(s)</p>"]
    for (test, _, machine), group in groups.items():
        parts.append(f"<h2>{_e(test)}</h2><h3>{_e(group[0].key.label)} on machine "
                     f"{_e(machine)}</h3>")
        parts.append(_figure(group))
        parts.append(_change_table(group))
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure(group: Sequence[Trend]) -> str:
    """One figure per configuration: a panel per metric, change points marked."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(group), 1, figsize=(9, 2.4 * len(group)), squeeze=False)
    for axis, trend in zip(axes[:, 0], group, strict=True):
        values = [p.value for p in trend.points]
        axis.plot(range(len(values)), values, "o-", color="#1565c0", markersize=3, linewidth=1)
        busy = [i for i, p in enumerate(trend.points) if (p.result.other_pct or 0) > 10]
        if busy:
            axis.plot(busy, [values[i] for i in busy], "o", color="#ef6c00", markersize=4,
                      label="busy machine")
            axis.legend(loc="best", fontsize=7)
        for change in trend.changes:
            at = change.change.index
            axis.axvline(at - 0.5, color="#c62828", linestyle="--", linewidth=1.2)
            axis.annotate(f"{formatting.percent(change.change.magnitude)} "
                          f"{short(change.first.run.commit)}",
                          (at - 0.5, 0.04), xycoords=("data", "axes fraction"),
                          color="#c62828", fontsize=8, xytext=(3, 0), textcoords="offset points")
        bounds = [0, *(c.change.index for c in trend.changes), len(values)]
        for start, end in zip(bounds, bounds[1:], strict=False):
            level = sorted(values[start:end])[(end - start) // 2]
            axis.hlines(level, start, end - 1, color="#2e7d32", linewidth=2)
        axis.set_ylabel(short_metric(trend.key.metric))
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("run (commit order)")
    figure.tight_layout()
    return _img(figure, f"{group[0].key.test} {group[0].key.label} over runs")


def _change_table(group: Sequence[Trend]) -> str:
    """The change points of a configuration: metric, size, confidence, runs, commits, versions."""
    rows = [c for trend in group for c in trend.changes]
    if not rows:
        return "<p class='note'>no change point</p>"
    head = ("<table><tr><th>metric</th><th>change</th><th>confidence</th><th>first run after"
            "</th><th>commits</th><th>package versions changed</th></tr>")
    body = "".join(
        f"<tr><td class='label'>{_e(short_metric(c.key.metric))}</td>"
        f"<td>{formatting.percent(c.change.magnitude)}</td><td>{confidence_text(c.change.confidence)}</td>"
        f"<td class='label'>{_e(_when(c.first.run.recorded_at))} ({_e(c.first.run.uid[:8])})"
        f"</td><td class='label'>{_e(c.commits)}</td>"
        f"<td class='label'>{_e(', '.join(c.versions) or 'none')}</td></tr>"
        for c in rows)
    return head + body + "</table>"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def page_title(location: str, extra: Any = None) -> str:
    """``pytest-neuronperf history: runs.sqlite``."""
    return f"pytest-neuronperf history: {location}" + (f" ({extra})" if extra else "")
