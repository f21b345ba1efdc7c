"""Reports as text: NeuronPerf's console table and the session summary."""

from __future__ import annotations

import math
import sys
import unicodedata
from collections.abc import Sequence
from typing import Any, TextIO

from pytest_neuronperf.reports import config_label

DEFAULT_COLUMNS = (
    "n_models", "workers_per_model", "batch_size", "pipeline_size",
    "throughput_avg", "latency_ms_p50", "latency_ms_p99", "status",
)


def printable(text: Any) -> str:
    """``text`` safe to print: control and format characters (terminal escape sequences,
    newlines, bidirectional overrides) shown as ``\\x1b``-style escapes. For text read from
    files (baselines, report files, model indexes) before it reaches a terminal."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(
        ch if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp") else
        (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        for ch in text
    )


def _cell(value: Any) -> str:
    if missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    return printable(value)


def format_table(reports: Sequence[dict[str, Any]], cols: Sequence[str] = DEFAULT_COLUMNS) -> str:
    """Fixed-width text table of ``cols`` for each report."""
    rows = [[_cell(r.get(c)) for c in cols] for r in reports]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def print_reports(
    reports: Sequence[dict[str, Any]],
    cols: Sequence[str] = DEFAULT_COLUMNS,
    sort_by: str | None = "throughput_peak",
    reverse: bool = False,
    file: TextIO | None = None,
) -> None:
    """Print the reports as a table (NeuronPerf's default columns), sorted by ``sort_by``."""
    ordered = report_list(reports)
    columns = [cols] if isinstance(cols, str) else list(cols)
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


def report_list(reports: Any) -> list[dict[str, Any]]:
    """``reports`` as a list of dicts (any iterable of them), or a TypeError saying what it is."""
    if isinstance(reports, dict | str | bytes):
        raise TypeError(f"reports must be a list of report dicts, not a {type(reports).__name__}")
    listed = list(reports)
    for report in listed:
        if not isinstance(report, dict):
            raise TypeError(f"each report must be a dict, got {type(report).__name__}")
    return listed


SUMMARY_WIDTH = 100


def _signed_percent(value: Any) -> str:
    if missing(value):
        return "-"
    return f"{value * 100:+.1f}%"


def _number(value: Any) -> str:
    if missing(value):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 10 else f"{value:.3f}"


def format_summary(results: Sequence[dict[str, Any]]) -> list[str]:
    """The session table: one heading line per test, one line per configuration (100 columns)."""
    head = (f"{'test / configuration':<30} {'throughput/s':>13} {'p50 ms':>9} {'p99 ms':>9} "
            f"{'Δ thr':>8} {'Δ p99':>8}  {'verdict':<12}")
    lines = [head]
    current = None
    for report in sorted(results, key=lambda r: r.get("test", "")):
        test = printable(report.get("test", report.get("model_name", "?")))
        if test != current:
            current = test
            lines.append(test if len(test) <= SUMMARY_WIDTH else "..." + test[-SUMMARY_WIDTH + 3:])
        delta = report.get("delta") or {}
        lines.append(
            f"  {config_label(report):<28} {_number(report.get('throughput_avg')):>13} "
            f"{_number(report.get('latency_ms_p50')):>9} "
            f"{_number(report.get('latency_ms_p99')):>9} "
            f"{_signed_percent(delta.get('throughput')):>8} "
            f"{_signed_percent(delta.get('latency_ms_p99')):>8}  "
            f"{printable(report.get('verdict', report.get('status', ''))):<12}"
        )
    return lines
