"""Reports as text: NeuronPerf's console table and the session summary."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, cast

from pytest_neuronperf import formatting
from pytest_neuronperf.formatting import finite
from pytest_neuronperf.logs import printable
from pytest_neuronperf.metrics import METRICS, metrics_of
from pytest_neuronperf.reports import Report, config_label

DEFAULT_COLUMNS = (
    "n_models", "workers_per_model", "batch_size", "pipeline_size",
    "throughput_avg", "latency_ms_p50", "latency_ms_p99", "status",
)


def _cell(value: Any) -> str:
    if missing(value):
        return formatting.MISSING
    if isinstance(value, float):
        return formatting.number(value)
    return printable(value)


def format_table(reports: Sequence[Mapping[str, Any]],
                 cols: Sequence[str] = DEFAULT_COLUMNS) -> str:
    """Fixed-width text table of ``cols`` for each report."""
    rows = [[_cell(r.get(c)) for c in cols] for r in reports]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def print_reports(
    reports: Sequence[Mapping[str, Any]],
    cols: Sequence[str] = DEFAULT_COLUMNS,
    sort_by: str | None = "throughput_avg",
    reverse: bool = False,
    file: TextIO | None = None,
) -> None:
    """Print the reports as a table (NeuronPerf's default columns), sorted by ``sort_by``; a
    ``sort_by`` column that ``cols`` does not list is shown too (first), so the order shows."""
    ordered = report_list(reports)
    columns = [cols] if isinstance(cols, str) else list(cols)
    if sort_by and sort_by not in columns:
        columns.insert(0, sort_by)
    if sort_by:
        present = [r for r in ordered if not missing(r.get(sort_by))]
        present.sort(key=lambda r: _sort_key(r.get(sort_by)), reverse=reverse)
        ordered = present + [r for r in ordered if missing(r.get(sort_by))]
    print(format_table(ordered, columns), file=file or sys.stdout)


def missing(value: Any) -> bool:
    """None or NaN: shown as ``-`` and sorted last."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers in order, then text (never a TypeError on mixed types)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def report_list(reports: Any) -> list[Report]:
    """``reports`` as a list of dicts (any iterable of them), or a TypeError saying what it is."""
    if isinstance(reports, dict | str | bytes):
        raise TypeError(f"reports must be a list of report dicts, not a {type(reports).__name__}")
    listed = list(reports)
    for report in listed:
        if not isinstance(report, dict):
            raise TypeError(f"each report must be a dict, got {type(report).__name__}")
    return cast(list[Report], listed)


SUMMARY_WIDTH = 100
"""Test names longer than this are shortened from the left in the summary."""


@dataclass(frozen=True)
class Figures:
    """One gated metric of one configuration as a verdict used it: this run's (head's) figure,
    the baseline's (base's), the change and its interval, and the metric's verdict."""

    now: float | None
    base: float | None = None
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    verdict: str | None = None


def baseline_figures(report: Mapping[str, Any], metric: str) -> Figures | None:
    """The baseline gate's figures of ``metric`` (``report["gate"]``, see
    ``gating.verdicts.gate_figures``), or None when it has none. A report from elsewhere
    (no ``gate``) gives its whole-run value, and its stored baseline and delta if any."""
    if METRICS[metric].windowed and metric not in metrics_of(report):
        return None  # a generate report has no call throughput to show, and back
    gate = (report.get("gate") or {}).get(metric)
    if gate is None:
        if "gate" in report:
            return None
        key = METRICS[metric].report_key
        now = finite(report.get(key))
        base = finite((report.get("baseline") or {}).get(key))
        delta = finite((report.get("delta") or {}).get(metric))
        return None if now is None else Figures(now, base, delta)
    low, high = gate.get("interval") or (None, None)
    return Figures(finite(gate.get("now")), finite(gate.get("baseline")),
                   finite(gate.get("delta")), finite(low), finite(high), gate.get("verdict"))


def paired_figures(report: Mapping[str, Any], metric: str) -> Figures | None:
    """The paired gate's figures of ``metric`` (``report["paired"]``: each side's figure, the
    paired estimate and its interval), or None when it did not compare ``metric``."""
    paired = report.get("paired")
    if not isinstance(paired, Mapping) or metric not in (paired.get("delta") or {}):
        return None
    sides = paired.get("figures") or {}
    low, high = (paired.get("interval") or {}).get(metric) or (None, None)
    return Figures(finite((sides.get("head") or {}).get(metric)),
                   finite((sides.get("base") or {}).get(metric)),
                   finite(paired["delta"][metric]), finite(low), finite(high),
                   (paired.get("verdicts") or {}).get(metric))


def verdict_figures(report: Mapping[str, Any], metric: str) -> Figures | None:
    """The figures of the gate that judged ``metric``: the baseline gate's when it compared it,
    else the paired gate's, else this run's figure alone (None without one). Every table shows
    these, so that what a reader sees is what was judged."""
    stored = baseline_figures(report, metric)
    if stored is not None and stored.base is not None:
        return stored
    return paired_figures(report, metric) or stored


def shown_metrics(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The gated metrics (``metrics.METRICS``, in its order) that any of ``results`` has a figure
    for: a run without accuracy or a ``max_qps`` search shows no empty columns for them."""
    return [name for name in METRICS
            if any(_has(verdict_figures(report, name), "now") for report in results)]


def compared_metrics(results: Sequence[Mapping[str, Any]]) -> set[str]:
    """The metrics that any of ``results`` compared with a baseline or base side: only those
    get ``base`` and change columns (a run without one shows no column of dashes)."""
    return {name for name in METRICS
            if any(_has(verdict_figures(report, name), "base") for report in results)}


def _has(figures: Figures | None, field: str) -> bool:
    return figures is not None and getattr(figures, field) is not None


def summary_rows(results: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the session table: per test a heading row, per configuration the
    figures the verdict used (``verdict_figures``) of every gated metric, and the verdict."""
    shown = shown_metrics(results)
    compared = compared_metrics(results)
    header = ["test / configuration"]
    for name in shown:
        header += [METRICS[name].label, *(["base", "Δ"] if name in compared else [])]
    header.append("verdict")
    rows: list[list[str]] = []
    current = None
    for report in sorted(results, key=lambda r: r.get("test", "")):
        current = _heading(report, current, rows)
        cells = [f"  {config_label(report)}"]
        for name in shown:
            figures = verdict_figures(report, name) or Figures(None)
            cells.append(formatting.number(figures.now))
            if name in compared:
                cells += [formatting.number(figures.base), formatting.percent(figures.delta)]
        cells.append(printable(report.get("verdict", report.get("status", ""))))
        rows.append(cells)
    return header, rows


def _heading(report: Mapping[str, Any], current: str | None, rows: list[list[str]]) -> str:
    """Append a test's heading row when ``report`` starts a new test; the current test."""
    test = printable(report.get("test", report.get("model_name", "?")))
    if test != current:
        rows.append([test if len(test) <= SUMMARY_WIDTH else "..." + test[-SUMMARY_WIDTH + 3:]])
    return test


def format_rows(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A table as aligned lines: the first ``left`` columns left-aligned, the last as it is,
    the rest right-aligned; rows shorter than the header (a test's heading, a note) are
    written as they are."""
    full = [r for r in rows if len(r) == len(header)]
    widths = [max(len(c) for c in column) for column in zip(header, *full, strict=True)]

    def line(cells: list[str]) -> str:
        aligned = [c.ljust(w) if i < left else c.rjust(w)
                   for i, (c, w) in enumerate(zip(cells[:-1], widths[:-1], strict=True))]
        return "  ".join([*aligned, cells[-1]]).rstrip()

    return [line(header), *(line(r) if len(r) == len(header) else "  ".join(r).rstrip()
                            for r in rows)]


def format_summary(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The session table, one line per test heading and per configuration. Its figures are the
    ones the verdict used: window medians now and in the baseline (or head and base of a
    paired run), and their change."""
    header, rows = summary_rows(results)
    return format_rows(header, rows)


def headline_properties(report: Mapping[str, Any], name: str | None = None
                        ) -> list[tuple[str, Any]]:
    """A report's headline figures as JUnit XML properties (``record_property``):
    ``neuronperf[bs=1 n=1 w=1 p=1].throughput`` = the figure the verdict used,
    ``...throughput.delta``, ``...verdict``; ``name`` (a named benchmark call) goes inside the
    brackets first."""
    where = f"neuronperf[{f'{name} ' if name else ''}{config_label(report)}]"
    properties: list[tuple[str, Any]] = [(f"{where}.verdict",
                                          report.get("verdict", report.get("status")))]
    for metric in METRICS:
        figures = verdict_figures(report, metric)
        if figures is not None and figures.now is not None:
            properties.append((f"{where}.{metric}", figures.now))
        if figures is not None and figures.delta is not None:
            properties.append((f"{where}.{metric}.delta", figures.delta))
    return properties


PAIRED_HEADER = ["test / configuration", "metric", "head", "base", "Δ", "95% interval",
                 "verdict"]


def paired_title(results: Sequence[Mapping[str, Any]]) -> str:
    """The paired section's title: the base revision(s) and what Δ is."""
    revisions = sorted({str(r["paired"].get("revision")) for r in results
                        if isinstance(r.get("paired"), Mapping) and r["paired"].get("revision")})
    return ("paired: head vs base" + (f" ({', '.join(revisions)})" if revisions else "")
            + "; Δ is the paired estimate, with its 95% interval")


def paired_rows(results: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The paired section's rows (``PAIRED_HEADER``): per test a heading, per configuration
    one row per metric the paired gate compared (every gated metric), or one row saying why
    nothing was compared."""
    rows: list[list[str]] = []
    current = None
    paired = [r for r in results if isinstance(r.get("paired"), Mapping)]
    for report in sorted(paired, key=lambda r: r.get("test", "")):
        current = _heading(report, current, rows)
        label = f"  {config_label(report)}"
        part = report["paired"]
        metrics = [m for m in METRICS if m in (part.get("delta") or {})]
        if not metrics:
            why = part.get("note") or part.get("base_error") or "not compared"
            verdict = part.get("verdict") or report.get("verdict", "")
            rows.append([label, printable(f"not compared: {why}"), str(verdict)])
        for position, metric in enumerate(metrics):
            figures = paired_figures(report, metric) or Figures(None)
            rows.append([label if position == 0 else "", METRICS[metric].label,
                         formatting.number(figures.now), formatting.number(figures.base),
                         formatting.percent(figures.delta),
                         formatting.interval(figures.low, figures.high),
                         str(figures.verdict or "")])
    return rows


def format_paired_summary(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The paired section of the session summary (empty without paired reports): per
    configuration and gated metric the head's and base's figures, the paired estimate with
    its interval, and the metric's paired verdict."""
    rows = paired_rows(results)
    if not rows:
        return []
    lines = [paired_title(results), *format_rows(PAIRED_HEADER, rows, left=2)]
    paired = [r for r in results if isinstance(r.get("paired"), Mapping)
              and r["paired"].get("launches")]
    if paired:
        ran = ", ".join(f"{config_label(r)} {pairs_text(r['paired'])}" for r in paired)
        stops = sorted({str((r["paired"].get("stop") or {}).get("code")) for r in paired
                        if (r["paired"].get("stop") or {}).get("code")})
        lines.append(f"  launch pairs that ran of those planned: {ran}"
                     + (f" (stopped: {', '.join(stops)}; the failure evidence says why)"
                        if stops else ""))
    return lines


def pairs_text(paired: Mapping[str, Any]) -> str:
    """``4/10``: launch pairs that ran of those planned (``-`` without pairs)."""
    if not paired.get("launches"):
        return "-"
    return f"{len(paired['launches'])}/{paired.get('planned_pairs', '?')}"
