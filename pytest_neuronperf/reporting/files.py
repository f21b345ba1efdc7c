"""Reports as files: CSV and JSON, and reading them back."""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from pytest_neuronperf import safe_files
from pytest_neuronperf.engine.summary import is_raw_results, reports_from_results
from pytest_neuronperf.reporting.tables import report_list

REPORT_FORMAT = "pytest-neuronperf-reports"
REPORT_VERSION = 1


def _default_path(suffix: str) -> Path:
    return Path(f"neuronperf-{time.strftime('%Y%m%d-%H%M%S')}.{suffix}")


def _write(path: Path, text: str) -> None:
    """Write a report file safely (``safe_files``: atomic, special files written into)."""
    if safe_files.special_file(path) is None:
        path.parent.mkdir(parents=True, exist_ok=True)
    safe_files.write_text(path, text)


def atomic_write(path: Path, text: str) -> None:
    """Write a report file (HTML, Markdown) the way CSV and JSON are written."""
    _write(path, text)


def flatten(report: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One report as flat CSV cells: a nested dict becomes dotted columns
    (``delta.throughput``, ``windows.latency_ms_p99``), a list of numbers or words one cell of
    ``;``-joined values, a list of lists groups joined by ``|`` (``timers.latency_ms``: one
    group per copy), None an empty cell. Numbers stay numbers."""
    cells: dict[str, Any] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        value = _json_safe(value)
        if isinstance(value, dict):
            cells.update(flatten(value, f"{name}."))
        elif isinstance(value, list):
            cells[name] = _joined(value)
        else:
            cells[name] = "" if value is None else value
    return cells


def _joined(values: list[Any]) -> str:
    """``1.5;2.0`` for a list, ``1;2|3;4`` for a list of lists, JSON for anything deeper."""
    if all(isinstance(v, list) for v in values) and values:
        return "|".join(_joined(v) for v in values)
    if any(isinstance(v, dict | list) for v in values):
        return json.dumps(values, allow_nan=False, default=str)
    return ";".join("" if v is None else str(v) for v in values)


def write_csv(
    reports: Sequence[dict[str, Any]],
    filename: str | os.PathLike[str] | None = None,
    cols: Sequence[str] | None = None,
) -> str:
    """Write every key of every report (or ``cols``) as CSV, flattened (see :func:`flatten`);
    a column in ``cols`` that names a nested dict (``delta``) gives all its dotted columns.
    Returns the path written."""
    path = Path(filename) if filename is not None else _default_path("csv")
    rows = [flatten(r) for r in report_list(reports)]
    if isinstance(cols, str):
        cols = [cols]
    every = list(dict.fromkeys(k for row in rows for k in row))
    if cols:
        columns = list(dict.fromkeys(
            k for c in cols for k in ([c] if c in every or not any(
                e.startswith(f"{c}.") for e in every) else
                [e for e in every if e.startswith(f"{c}.")])))
    else:
        columns = every

    buffer = StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    _write(path, buffer.getvalue())
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
    _write(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return str(path)


def get_reports(filename: Any) -> list[dict[str, Any]]:
    """Read reports written by :func:`write_json` (or a bare JSON list of reports), or make the
    reports from ``benchmark(..., return_timers=True)``'s results."""
    if not isinstance(filename, str | os.PathLike):
        if is_raw_results(filename):
            return reports_from_results(filename)
        raise TypeError(
            f"get_reports takes a report file path or benchmark(..., return_timers=True)'s "
            f"results, not {type(filename).__name__}"
        )
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


