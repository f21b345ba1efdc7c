"""Reports as files: CSV and JSON, and reading them back."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from pytest_neuronperf import safe_files
from pytest_neuronperf.engine.summary import is_raw_results, reports_from_results
from pytest_neuronperf.profiling.explain import csv_cells
from pytest_neuronperf.reporting.tables import report_list
from pytest_neuronperf.reports import Report, decode_reports, encode_reports, json_safe


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


def flatten(report: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One report as flat CSV cells: a nested dict becomes dotted columns
    (``delta.throughput``, ``windows.latency_ms_p99``), a list of numbers or words one cell of
    ``;``-joined values, a list of lists groups joined by ``|`` (``timers.latency_ms``: one
    group per copy), None an empty cell. Numbers stay numbers."""
    cells: dict[str, Any] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        value = json_safe(value)
        if name == "profile":  # its tables would be hundreds of columns: its top line instead
            cells.update(csv_cells(value))
        elif isinstance(value, dict):
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
    reports: Sequence[Mapping[str, Any]],
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


def write_json(
    reports: Sequence[Mapping[str, Any]], filename: str | os.PathLike[str] | None = None,
    run: Mapping[str, Any] | None = None,
) -> str:
    """Write every report as strict JSON (NaN becomes null); returns the path written.

    ``run`` (from pytest: commit, branch, time, package versions; see ``history.runinfo``) is
    kept beside the reports, so that the file can seed a history later."""
    path = Path(filename) if filename is not None else _default_path("json")
    document = encode_reports(report_list(reports))
    if run is not None:
        document = {**{k: v for k, v in document.items() if k != "reports"},
                    "run": json_safe(dict(run)), "reports": document["reports"]}
    _write(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return str(path)


def get_reports(filename: Any) -> list[Report]:
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
    except UnicodeDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not a text file (byte {exc.start} is not UTF-8): "
                         f"not a report file") from None
    except RecursionError:
        raise ValueError(f"{str(path)!r} nests brackets too deeply to read: not a report "
                         f"file") from None
    return decode_reports(document, repr(str(path)))


def read_report_file(path: Path) -> tuple[list[Report], dict[str, Any] | None]:
    """The reports of a file :func:`write_json` wrote (or a bare JSON list of reports), and its
    ``run`` block when it has one."""
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not a text file") from None
    reports = decode_reports(document, repr(str(path)))
    run = document.get("run") if isinstance(document, dict) else None
    return reports, run if isinstance(run, dict) else None
