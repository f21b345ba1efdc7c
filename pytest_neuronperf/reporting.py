"""Reports out: NeuronPerf's console table, CSV and JSON files, and reading them back."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

DEFAULT_COLUMNS = (
    "n_models", "workers_per_model", "batch_size", "pipeline_size",
    "throughput_avg", "latency_ms_p50", "latency_ms_p99", "status",
)
REPORT_FORMAT = "pytest-neuronperf-reports"
REPORT_VERSION = 1


def _cell(value: Any) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


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
        present = [r for r in ordered if not _missing(r.get(sort_by))]
        present.sort(key=lambda r: _sort_key(r.get(sort_by)), reverse=reverse)
        ordered = present + [r for r in ordered if _missing(r.get(sort_by))]
    print(format_table(ordered, columns), file=file or sys.stdout)


def _missing(value: Any) -> bool:
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


def _default_path(suffix: str) -> Path:
    return Path(f"neuronperf-{time.strftime('%Y%m%d-%H%M%S')}.{suffix}")


def _atomic_write(path: Path, text: str) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _csv_value(value: Any) -> Any:
    value = _json_safe(value)
    if isinstance(value, dict | list):
        return json.dumps(value, allow_nan=False, default=str)
    return "" if value is None else value


def write_csv(
    reports: Sequence[dict[str, Any]],
    filename: str | os.PathLike[str] | None = None,
    cols: Sequence[str] | None = None,
) -> str:
    """Write every key of every report (or ``cols``) as CSV; returns the path written."""
    path = Path(filename) if filename is not None else _default_path("csv")
    reports = report_list(reports)
    if isinstance(cols, str):
        cols = [cols]
    columns = list(cols) if cols else list(dict.fromkeys(k for r in reports for k in r))
    from io import StringIO

    buffer = StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for report in reports:
        writer.writerow({k: _csv_value(report.get(k)) for k in columns})
    _atomic_write(path, buffer.getvalue())
    return str(path)


def _json_safe(value: Any) -> Any:
    """Plain JSON values: NaN/inf become None, NumPy scalars and arrays plain numbers/lists."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(
    reports: Sequence[dict[str, Any]], filename: str | os.PathLike[str] | None = None
) -> str:
    """Write every report as strict JSON (NaN becomes null); returns the path written."""
    path = Path(filename) if filename is not None else _default_path("json")
    document = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
                "reports": _json_safe(report_list(reports))}
    _atomic_write(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return str(path)


def get_reports(filename: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read reports written by :func:`write_json` (or a bare JSON list of reports)."""
    path = Path(filename)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    if isinstance(document, list):
        if not all(isinstance(report, dict) for report in document):
            raise ValueError(f"{str(path)!r} is a JSON list, but not of report objects")
        return document
    if not isinstance(document, dict) or document.get("format") != REPORT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a pytest-neuronperf report file")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{str(path)!r} has report format version {version!r}, not a number")
    if version > REPORT_VERSION:
        raise ValueError(
            f"{str(path)!r} was written by a newer pytest-neuronperf (report format version "
            f"{version}); upgrade to read it"
        )
    reports = document.get("reports")
    if not isinstance(reports, list):
        raise ValueError(f"{str(path)!r} has no \"reports\" list")
    return reports


SUMMARY_WIDTH = 100


def _signed_percent(value: Any) -> str:
    if _missing(value):
        return "-"
    return f"{value * 100:+.1f}%"


def _number(value: Any) -> str:
    if _missing(value):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 10 else f"{value:.3f}"


def config_label(report: dict[str, Any]) -> str:
    """Compact configuration label: ``bs=1 n=2 w=1 p=1``."""
    return (f"bs={report['batch_size']} n={report['n_models']} "
            f"w={report['workers_per_model']} p={report['pipeline_size']}")


def format_summary(results: Sequence[dict[str, Any]]) -> list[str]:
    """The session table: one heading line per test, one line per configuration (100 columns)."""
    head = (f"{'test / configuration':<30} {'throughput/s':>13} {'p50 ms':>9} {'p99 ms':>9} "
            f"{'Δ thr':>8} {'Δ p99':>8}  {'verdict':<12}")
    lines = [head]
    current = None
    for report in sorted(results, key=lambda r: r.get("test", "")):
        test = report.get("test", report.get("model_name", "?"))
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
            f"{report.get('verdict', report.get('status', '')):<12}"
        )
    return lines
