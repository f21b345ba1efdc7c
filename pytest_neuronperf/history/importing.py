"""Seeding a history from earlier files: ``--neuronperf-json`` report files (rescue files
included) and baseline files, one file or a folder of them.

A report file written with a ``run`` block keeps its run (commit, branch, time, packages, uid:
a rescued run that was in fact stored is not added twice). An older report file, or a baseline
file (one run per machine in it), becomes a run at the file's modification time, with the
library versions of its fingerprint as its packages and a uid made from its content, so that
importing the same file again adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_neuronperf.gating.baseline import BaselineError, load_baseline
from pytest_neuronperf.history.recording import append_run
from pytest_neuronperf.history.store import Store
from pytest_neuronperf.reporting.files import read_report_file
from pytest_neuronperf.reports import parse_config_key

FINGERPRINT_NOT_PACKAGES = ("cpu", "cores", "device_type", "devices")


class ImportRefused(ValueError):
    """A file given by name that is neither a report file nor a baseline file."""


@dataclass
class Imported:
    """What an import did."""

    added: int = 0
    known: int = 0
    skipped: list[str] = field(default_factory=list)

    def text(self, source: Path) -> str:
        """``imported 3 run(s) from runs/ (1 already stored; skipped a.json: ...)``."""
        extra = [f"{self.known} already stored"] if self.known else []
        extra += [f"skipped {s}" for s in self.skipped]
        return (f"history: imported {self.added} run(s) from {source}"
                + (f" ({'; '.join(extra)})" if extra else ""))


def import_path(store: Store, source: Path) -> Imported:
    """Import one file, or every ``*.json`` file in a folder (oldest first)."""
    imported = Imported()
    if source.is_dir():
        files = sorted(source.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
        for file in files:
            try:
                _import_file(store, file, imported)
            except ImportRefused as exc:
                imported.skipped.append(f"{file.name}: {exc}")
        return imported
    if not source.is_file():
        raise ImportRefused(f"{source} does not exist")
    _import_file(store, source, imported)
    return imported


def _import_file(store: Store, file: Path, imported: Imported) -> None:
    """Add the run(s) of one file."""
    for run, reports in runs_in(file):
        if append_run(store, run, reports):
            imported.added += 1
        else:
            imported.known += 1


def runs_in(file: Path) -> Iterable[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """The (run, reports) pairs a report or baseline file holds."""
    try:
        raw = file.read_bytes()
        document = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ImportRefused(f"{file} cannot be read as JSON ({exc})") from None
    if isinstance(document, dict) and document.get("format") == "pytest-neuronperf-baseline":
        return list(_baseline_runs(file, raw))
    try:
        reports, run = read_report_file(file)
    except ValueError as exc:
        raise ImportRefused(f"{file} is neither a report file nor a baseline file ({exc})"
                            ) from None
    plain = [dict(r) for r in reports if isinstance(r, dict)]
    return [(run or _file_run(file, raw, plain), plain)]


def _file_run(file: Path, raw: bytes, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """A run for a file without a ``run`` block: its time, its fingerprint's versions."""
    fingerprint: dict[str, Any] = next((r["fingerprint"] for r in reports
                        if isinstance(r.get("fingerprint"), dict)), {})
    return {"uid": hashlib.sha256(raw).hexdigest()[:32], "recorded_at": file.stat().st_mtime,
            "commit": None, "commit_time": None, "branch": None, "dirty": None, "host": None,
            "source": f"import:{file.name}", "packages": _packages(fingerprint)}


def _packages(fingerprint: dict[str, Any]) -> dict[str, str]:
    """The library versions a fingerprint records, as packages."""
    return {k: str(v) for k, v in fingerprint.items()
            if k not in FINGERPRINT_NOT_PACKAGES and v is not None}


def _baseline_runs(file: Path, raw: bytes
                   ) -> Iterable[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One run per machine of a baseline file (checked as the gate checks it)."""
    try:
        baseline = load_baseline(file)
    except BaselineError as exc:
        raise ImportRefused(str(exc)) from None
    assert baseline is not None
    for machine, fingerprint in baseline.machines().items():
        reports = [{**parse_config_key(config), **entry.get("metrics", {}),
                    "windows": entry.get("windows") or {}, "test": test, "machine": machine,
                    "fingerprint": fingerprint, "status": "ok"}
                   for test, configs in baseline.tests(machine).items()
                   for config, entry in configs.items()]
        uid = hashlib.sha256(raw + machine.encode()).hexdigest()[:32]
        run = {**_file_run(file, raw, reports), "uid": uid,
               "source": f"import:{file.name} (baseline)"}
        yield run, reports
