"""Reports as a Markdown summary for a CI page (GitHub's ``$GITHUB_STEP_SUMMARY``): verdict
counts, then a table of the configurations that failed or changed (every verdict but PASS),
with the gate's figures; the session's notes under it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_neuronperf import formatting
from pytest_neuronperf.logs import printable
from pytest_neuronperf.metrics import METRICS
from pytest_neuronperf.reporting.tables import (
    Figures,
    compared_metrics,
    shown_metrics,
    verdict_figures,
)
from pytest_neuronperf.reports import config_label

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
ORDER = ("REGRESSED", "OVER_BUDGET", "ERROR", "INCONCLUSIVE", "NEW", "IMPROVED", "PASS")
"""Verdicts from the most to the least urgent: counts and rows follow it."""


def format_markdown(reports: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()) -> str:
    """The summary as Markdown."""
    counts: dict[str, int] = {}
    for report in reports:
        verdict = str(report.get("verdict", report.get("status", "?")))
        counts[verdict] = counts.get(verdict, 0) + 1
    ranked = sorted(counts, key=lambda v: ORDER.index(v) if v in ORDER else len(ORDER))
    lines = ["## neuronperf", "",
             f"{len(reports)} configuration(s): "
             + ", ".join(f"**{counts[v]} {v}**" if v != "PASS" else f"{counts[v]} {v}"
                         for v in ranked), ""]
    changed = [r for r in reports if r.get("verdict", r.get("status")) != "PASS"]
    if changed:
        shown, compared = shown_metrics(changed), compared_metrics(changed)
        header = ["verdict", "test", "configuration"]
        for name in shown:
            header += [METRICS[name].label, *(["base", "Δ"] if name in compared else [])]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for report in sorted(changed, key=_urgency):
            cells = [str(report.get("verdict", report.get("status", "?"))),
                     f"`{report.get('test', report.get('model_name', '?'))}`",
                     config_label(report)]
            for name in shown:
                figures = verdict_figures(report, name) or Figures(None)
                cells.append(formatting.number(figures.now))
                if name in compared:
                    cells += [formatting.number(figures.base), formatting.percent(figures.delta)]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines.append("")
    else:
        lines += ["Every configuration passed.", ""]
    lines += [f"- {_cell(note.removeprefix('neuronperf: '))}" for note in notes]
    return "\n".join(lines).rstrip() + "\n"


def append_step_summary(reports: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()
                        ) -> str | None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY`` if it is set; the line saying so."""
    target = os.environ.get(STEP_SUMMARY)
    if not target:
        return None
    with open(Path(target), "a", encoding="utf-8") as handle:
        handle.write(format_markdown(reports, notes) + "\n")
    return f"neuronperf: summary appended to ${STEP_SUMMARY} ({target})"


def _urgency(report: Mapping[str, Any]) -> tuple[int, str]:
    verdict = str(report.get("verdict", report.get("status", "?")))
    return (ORDER.index(verdict) if verdict in ORDER else len(ORDER), str(report.get("test")))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return printable(text.replace("\n", " ")).replace("|", "\\|")
