"""Reports as text: NeuronPerf's console table and the session summary."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO, cast

from pytest_neuronperf.logs import printable
from pytest_neuronperf.metrics import METRICS, metrics_of
from pytest_neuronperf.reports import Report, config_label

DEFAULT_COLUMNS = (
    "n_models", "workers_per_model", "batch_size", "pipeline_size",
    "throughput_avg", "latency_ms_p50", "latency_ms_p99", "status",
)


def _cell(value: Any) -> str:
    if missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
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


def percent_text(value: Any) -> str:
    """A relative change as ``+1.5%`` (``-`` when missing)."""
    if missing(value):
        return "-"
    return f"{value * 100:+.1f}%"


def number_text(value: Any) -> str:
    """A figure in a table: ``1,234``, ``12.34``, ``0.123`` (``-`` when missing)."""
    if missing(value) or not isinstance(value, int | float):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def gate_figures(report: Mapping[str, Any], metric: str) -> tuple[Any, Any, Any]:
    """(now, baseline, delta) of one gated metric as the verdict used them: the report's
    ``gate`` figures (window medians), else (a report from elsewhere) its whole-run value."""
    if METRICS[metric].windowed and metric not in metrics_of(report):
        return None, None, None  # a generate report has no call throughput to show, and back
    figures = (report.get("gate") or {}).get(metric)
    if figures is not None:
        return figures.get("now"), figures.get("baseline"), figures.get("delta")
    key = METRICS[metric].report_key
    return (report.get(key), (report.get("baseline") or {}).get(key),
            (report.get("delta") or {}).get(metric))


def shown_metrics(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The gated metrics (``metrics.METRICS``, in its order) that any of ``results`` has a figure
    for: a run without accuracy or a ``max_qps`` search shows no empty columns for them."""
    return [name for name in METRICS
            if any(not missing(gate_figures(report, name)[0]) for report in results)]


def summary_rows(results: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the session table: per test a heading row, per configuration the
    gate's now / baseline / delta of every gated metric (``metrics.METRICS``) and the verdict."""
    shown = shown_metrics(results)
    header = ["test / configuration"]
    for name in shown:
        header += [METRICS[name].label, "base", "Δ"]
    header.append("verdict")
    rows: list[list[str]] = []
    current = None
    for report in sorted(results, key=lambda r: r.get("test", "")):
        test = printable(report.get("test", report.get("model_name", "?")))
        if test != current:
            current = test
            rows.append([test if len(test) <= SUMMARY_WIDTH else "..." + test[-SUMMARY_WIDTH + 3:]])
        cells = [f"  {config_label(report)}"]
        for name in shown:
            now, base, delta = gate_figures(report, name)
            cells += [number_text(now), number_text(base), percent_text(delta)]
        cells.append(printable(report.get("verdict", report.get("status", ""))))
        rows.append(cells)
    return header, rows


def format_summary(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The session table, one line per test heading and per configuration. Its figures are the
    ones the verdict used: window medians now and in the baseline, and their change."""
    header, rows = summary_rows(results)
    full = [r for r in rows if len(r) == len(header)]
    widths = [max(len(c) for c in column) for column in zip(header, *full, strict=True)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        middle = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *middle, cells[-1]]).rstrip()

    return [line(header), *(line(r) if len(r) == len(header) else r[0] for r in rows)]


def headline_properties(report: Mapping[str, Any], name: str | None = None
                        ) -> list[tuple[str, Any]]:
    """A report's headline figures as JUnit XML properties (``record_property``):
    ``neuronperf[bs=1 n=1 w=1 p=1].throughput`` = the gate's median now, ``...throughput.delta``,
    ``...verdict``; ``name`` (a named benchmark call) goes inside the brackets first."""
    where = f"neuronperf[{f'{name} ' if name else ''}{config_label(report)}]"
    properties: list[tuple[str, Any]] = [(f"{where}.verdict",
                                          report.get("verdict", report.get("status")))]
    for metric in METRICS:
        now, _, delta = gate_figures(report, metric)
        if not missing(now):
            properties.append((f"{where}.{metric}", now))
        if not missing(delta):
            properties.append((f"{where}.{metric}.delta", delta))
    return properties


def _interval(report: Mapping[str, Any], metric: str) -> str:
    low, high = ((report.get("paired") or {}).get("interval") or {}).get(metric) or (None, None)
    if low is None or high is None or missing(low) or missing(high):
        return "-"
    return f"{low * 100:+.1f}..{high * 100:+.1f}%"


def format_paired_summary(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The paired section of the session summary (empty without paired reports): per
    configuration the head's and base's throughput and p99, the paired deltas with their
    intervals, and the paired verdict (100 columns)."""
    paired = [r for r in results if isinstance(r.get("paired"), dict)]
    if not paired:
        return []
    revisions = sorted({str(r["paired"].get("revision")) for r in paired
                        if r["paired"].get("revision")})
    title = "paired: head vs base" + (f" ({', '.join(revisions)})" if revisions else "")
    head = (f"{'test / configuration':<24} {'head thr/s':>10} {'base thr/s':>10} "
            f"{'Δ thr [95%]':>21} {'Δ p99 [95%]':>21}  {'paired':<10}")
    lines = [title, head]
    current = None
    for report in sorted(paired, key=lambda r: r.get("test", "")):
        test = report.get("test", report.get("model_name", "?"))
        if test != current:
            current = test
            lines.append(test if len(test) <= SUMMARY_WIDTH else "..." + test[-SUMMARY_WIDTH + 3:])
        part = report["paired"]
        delta = part.get("delta") or {}
        base = part.get("base") or {}
        verdict = part.get("verdict") or part.get("base_status", "")
        thr = f"{percent_text(delta.get('throughput'))} [{_interval(report, 'throughput')}]"
        p99 = (f"{percent_text(delta.get('latency_ms_p99'))} "
               f"[{_interval(report, 'latency_ms_p99')}]")
        lines.append(
            f"  {config_label(report):<22} {number_text(report.get('throughput_avg')):>10} "
            f"{number_text(base.get('throughput_avg')):>10} {thr if delta else '-':>21} "
            f"{p99 if delta else '-':>21}  {verdict:<10}"
        )
    return lines
