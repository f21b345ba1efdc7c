"""Appending a run to the history without ever losing it.

The run's reports are first written to a rescue file, ``neuronperf-unsaved-<time>-<pid>.json``
(a report file with the ``run`` block, written by ``safe_files``), then appended in one
transaction, and the rescue file is removed only after the commit. So a run killed while
saving, a full disk, a lost connection or a refused store leaves the reports in that file;
``pytest-neuronperf history URL --import FILE`` adds it later, and a run that was in fact
committed before the kill is recognised by its ``uid`` and not added twice.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_neuronperf.history.store import HistoryError, Store, shown
from pytest_neuronperf.metrics import METRICS
from pytest_neuronperf.reporting.files import write_json
from pytest_neuronperf.reports import config_key

RUN_FIELDS = ("uid", "recorded_at", "commit", "commit_time", "branch", "dirty", "host",
              "source", "packages")
DROPPED_REPORT_KEYS = ("timers",)
"""Report keys a history does not keep (per-call timings: large, and in the report file)."""


def metric_values(report: Mapping[str, Any]) -> dict[str, float]:
    """The gated metrics a report measured: metric name -> its whole-run value."""
    values = {}
    for metric in METRICS.values():
        value = report.get(metric.report_key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
                value):
            values[metric.name] = float(value)
    return values


def other_pct(report: Mapping[str, Any]) -> float | None:
    """The interference meter's share of the measured cores used by others, if measured."""
    figures = report.get("interference")
    value = figures.get("other_pct") if isinstance(figures, Mapping) else None
    return float(value) if isinstance(value, int | float) else None


def result_rows(reports: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One store row per report (reports without a test or configuration are left out)."""
    rows = []
    for report in reports:
        if not report.get("test") or "batch_size" not in report:
            continue
        rows.append({
            "test": str(report["test"]), "config": config_key(report),
            "machine": str(report.get("machine") or "unknown"),
            "fingerprint": dict(report.get("fingerprint") or {}),
            "status": str(report.get("status") or "ok"), "verdict": report.get("verdict"),
            "metrics": metric_values(report), "other_pct": other_pct(report),
            "report": {k: v for k, v in report.items() if k not in DROPPED_REPORT_KEYS}})
    return rows


def run_row(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The store's row of a run: its fields, plus the worst interference of its results."""
    shares = [r["other_pct"] for r in rows if r["other_pct"] is not None]
    row = {key: run.get(key) for key in RUN_FIELDS}
    row["packages"] = dict(run.get("packages") or {})
    row["source"] = str(run.get("source") or "pytest")
    row["interference"] = max(shares) if shares else None
    return row


def append_run(store: Store, run: Mapping[str, Any], reports: Sequence[Mapping[str, Any]]
               ) -> bool:
    """Append one run (``run_info`` fields) with its reports; False when already stored."""
    rows = result_rows(reports)
    return store.append(run_row(run, rows), rows)


def save_run(
    location: str | os.PathLike[str],
    run: Mapping[str, Any],
    reports: Sequence[Mapping[str, Any]],
    rescue_dir: Path,
) -> str:
    """Append the run to the store at ``location``; the line that says so.

    Raises ``HistoryError`` with the store's sentence and where the reports were kept."""
    rescue = write_rescue(run, reports, rescue_dir)
    try:
        with Store(location) as store:
            added = append_run(store, run, reports)
    except HistoryError as error:
        raise HistoryError(f"{error}; {kept_text(rescue, location)}") from None
    if rescue is not None:
        rescue.unlink(missing_ok=True)
    configurations = len(result_rows(reports))
    return (f"history: run {str(run.get('uid'))[:8]} ({configurations} configuration(s)) "
            f"{'appended to' if added else 'was already in'} {shown(location)}")


def kept_text(rescue: Path | None, location: str | os.PathLike[str]) -> str:
    """Where a run that could not be stored went, and how to add it later."""
    if rescue is None:
        return "this run's reports could not be kept either"
    return (f"this run's reports are in {rescue} (add them later with "
            f"pytest-neuronperf history {shown(location)} --import {rescue})")


def write_rescue(run: Mapping[str, Any], reports: Sequence[Mapping[str, Any]],
                 rescue_dir: Path) -> Path | None:
    """Write the run to ``neuronperf-unsaved-*.json`` in ``rescue_dir`` (else the temp dir);
    None when neither can be written."""
    name = (f"neuronperf-unsaved-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-"
            f"{str(run.get('uid'))[:8]}.json")
    for directory in (rescue_dir, Path(tempfile.gettempdir())):
        try:
            return Path(write_json([dict(r) for r in reports], directory / name, run=dict(run)))
        except (OSError, ValueError):
            continue
    return None
