"""The plugin's command-line and ini options: declared once, parsed by ``type=`` functions that
raise ``pytest.UsageError`` with a sentence, and checked before anything runs."""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.gating.paired import effective_tolerance
from pytest_neuronperf.gating.verdicts import parse_tolerance
from pytest_neuronperf.plugin.markers import DEVICES
from pytest_neuronperf.profiling.explain import MODES


@dataclass(frozen=True)
class RunOptions:
    """The command-line / ini options of this run, validated."""

    baseline: Path | None = None
    save_baseline: bool = False
    tolerance: dict[str, float] = field(default_factory=dict)
    duration: float | None = None
    """``--neuronperf-duration``: overrides every configuration's duration (smoke runs)."""
    default_duration: float | None = None
    """ini ``neuronperf_duration``: the duration of markers that set none."""
    device: str | None = None
    json_path: Path | None = None
    csv_path: Path | None = None
    html_path: Path | None = None
    skip: bool = False
    only: bool = False
    strict: bool = False
    against: str | None = None
    """``--neuronperf-against``: the git revision every perf test is compared with (paired)."""
    paired_tolerance: dict[str, float] = field(default_factory=dict)
    history: str | None = None
    """``--neuronperf-history``: the history store, a SQLite file path or a postgresql:// URL."""
    history_gate: bool = False
    profile: str = "auto"
    """``--neuronperf-profile``: which configurations are profiled after their measurement
    (``auto``: REGRESSED ones and those saved as a baseline; ``all``; ``off``)."""


# -- option parsers (also applied to ini values) -------------------------------------------------


def parse_duration(value: str) -> float:
    """``--neuronperf-duration``: a positive number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise pytest.UsageError(
            f"--neuronperf-duration / neuronperf_duration must be a positive number of seconds, "
            f"got {value!r}"
        )
    return seconds


def parse_tolerance_option(value: str) -> dict[str, float]:
    """``--neuronperf-tolerance``: ``p99:10%,p50:10%,throughput:5%``."""
    try:
        return parse_tolerance(value)
    except ValueError as exc:
        raise pytest.UsageError(f"--neuronperf-tolerance / neuronperf_tolerance: {exc}") from None


def parse_against(value: str) -> str:
    """``--neuronperf-against``: a git revision (resolved in the rootdir's repository later)."""
    if not value.strip() or value.startswith("-"):
        raise pytest.UsageError(
            f"--neuronperf-against / neuronperf_against must name a git revision "
            f"(origin/main, HEAD~1, a commit), got {value!r}")
    return value.strip()


def parse_paired_tolerance_option(value: str) -> dict[str, float]:
    """``--neuronperf-paired-tolerance``: tolerances of the paired gate, ``throughput:3%``
    (only the metrics the paired gate compares, checked here rather than after measuring)."""
    try:
        parsed = parse_tolerance(value)
        effective_tolerance(parsed)
        return parsed
    except ValueError as exc:
        raise pytest.UsageError(
            f"--neuronperf-paired-tolerance / neuronperf_paired_tolerance: {exc}") from None


def parse_history(value: str) -> str:
    """``--neuronperf-history``: a SQLite file path or a ``postgresql://`` URL, checked now."""
    if importlib.util.find_spec("sqlalchemy") is None:
        raise pytest.UsageError("--neuronperf-history needs SQLAlchemy: pip install "
                                "'pytest-neuronperf[history]'")
    from pytest_neuronperf.history.store import HistoryError, store_url

    if not value.strip():
        raise pytest.UsageError("--neuronperf-history / neuronperf_history needs a SQLite file "
                                "path or a postgresql:// URL")
    try:
        store_url(value.strip())
    except HistoryError as exc:
        raise pytest.UsageError(f"--neuronperf-history / neuronperf_history: {exc}") from None
    return value.strip()


def parse_profile(value: str) -> str:
    """``--neuronperf-profile``: ``all`` (the bare flag), ``auto`` or ``off``."""
    if value not in MODES:
        raise pytest.UsageError(
            f"--neuronperf-profile / neuronperf_profile must be one of {', '.join(MODES)}, got "
            f"{value!r} (the bare flag means all, but it takes the next word as its value: "
            f"write --neuronperf-profile=all before a path)")
    return value


def parse_device(value: str) -> str:
    """``--neuronperf-device``: a device name (checked against registered backends later)."""
    if not value or not value.replace("_", "").replace("-", "").isalnum():
        raise pytest.UsageError(f"--neuronperf-device must be a device name, got {value!r}")
    return value


OPTIONS: list[tuple[str, str, str, Callable[[str], Any] | None, str]] = [
    # (flag, ini name, value, parser, help). value: "bool" for a switch, else the name --help
    # shows for the value (PATH: an ini value is relative to the rootdir; [MODE]: the value may
    # be left out, as in a bare --neuronperf-profile). help is plain text
    # ("%" needs no escaping: see argparse_help)
    ("--neuronperf-baseline", "neuronperf_baseline", "PATH", Path,
     "compare every configuration against this baseline file (JSON)"),
    ("--neuronperf-save-baseline", "neuronperf_save_baseline", "bool", None,
     "merge this run's results into the baseline file (created if missing)"),
    ("--neuronperf-tolerance", "neuronperf_tolerance", "SPEC", parse_tolerance_option,
     "default relative tolerances, e.g. p99:10%,p50:10%,throughput:5%"),
    ("--neuronperf-duration", "neuronperf_duration", "S", parse_duration,
     "on the command line: override every configuration's measured duration (seconds); "
     "in ini: the duration of markers that set none"),
    ("--neuronperf-device", "neuronperf_device", "NAME", parse_device,
     "force a device backend: cpu, cuda, neuron, neuronx or a registered one"),
    ("--neuronperf-json", "neuronperf_json", "PATH", Path, "write all reports to this JSON file"),
    ("--neuronperf-csv", "neuronperf_csv", "PATH", Path, "write all reports to this CSV file"),
    ("--neuronperf-html", "neuronperf_html", "PATH", Path,
     "write one self-contained HTML report with plots to this file"),
    ("--neuronperf-skip", "neuronperf_skip", "bool", None, "skip all performance tests"),
    ("--neuronperf-only", "neuronperf_only", "bool", None, "run only performance tests"),
    ("--neuronperf-strict", "neuronperf_strict", "bool", None,
     "NEW, INCONCLUSIVE and machine mismatch fail instead of warn"),
    ("--neuronperf-against", "neuronperf_against", "REV", parse_against,
     "paired mode: measure each perf test's model as it is at this git revision (base) "
     "against the working tree (head), interleaved on the same cores"),
    ("--neuronperf-paired-tolerance", "neuronperf_paired_tolerance", "SPEC",
     parse_paired_tolerance_option,
     "tolerances of the paired gate (default throughput:3%,p50:3%,p99:10%)"),
    ("--neuronperf-history", "neuronperf_history", "PATH_OR_URL", parse_history,
     "append every run's reports (with commit, branch, package versions) to this history: a "
     "SQLite file path or a postgresql:// URL"),
    ("--neuronperf-history-gate", "neuronperf_history_gate", "bool", None,
     "fail a test whose latest runs in the history form a change point worse than tolerance"),
    ("--neuronperf-profile", "neuronperf_profile", "[MODE]", parse_profile,
     "after the measurement, profile configurations (operators and Python frames, head and "
     "base) and show what got slower: all (the bare flag), auto (the default: REGRESSED "
     "configurations and those saved as a baseline) or off"),
]


def argparse_help(help_text: str) -> str:
    """An option's help as argparse wants it: it %-formats help, so a literal ``%`` is ``%%``."""
    return help_text.replace("%", "%%")


def read_option(config: pytest.Config, flag: str) -> Any:
    """A flag's value, else its ini value parsed the same way, else None."""
    value = config.getoption(flag)
    if value is not None:
        return value
    return read_ini(config, flag)


def read_ini(config: pytest.Config, flag: str) -> Any:
    """The ini value of a flag's option, parsed as the flag is, or None when unset."""
    _, ini, value, parse, _ = next(o for o in OPTIONS if o[0] == flag)
    raw = config.getini(ini)
    if value == "bool":
        return bool(raw)
    if not raw:
        return None
    if value == "PATH":
        return config.rootpath / str(raw)
    assert parse is not None
    return parse(str(raw))


def run_options(config: pytest.Config) -> RunOptions:
    """Every option of this run, from the command line or ini."""
    options = RunOptions(
        baseline=read_option(config, "--neuronperf-baseline"),
        save_baseline=read_option(config, "--neuronperf-save-baseline"),
        tolerance=read_option(config, "--neuronperf-tolerance") or {},
        duration=config.getoption("--neuronperf-duration"),
        default_duration=read_ini(config, "--neuronperf-duration"),
        device=read_option(config, "--neuronperf-device"),
        json_path=read_option(config, "--neuronperf-json"),
        csv_path=read_option(config, "--neuronperf-csv"),
        html_path=read_option(config, "--neuronperf-html"),
        skip=read_option(config, "--neuronperf-skip"),
        only=read_option(config, "--neuronperf-only"),
        strict=read_option(config, "--neuronperf-strict"),
        against=read_option(config, "--neuronperf-against"),
        paired_tolerance=read_option(config, "--neuronperf-paired-tolerance") or {},
        history=history_location(config),
        history_gate=read_option(config, "--neuronperf-history-gate"),
        profile=read_option(config, "--neuronperf-profile") or "auto",
    )
    if options.save_baseline and options.baseline is None:
        raise pytest.UsageError(
            "--neuronperf-save-baseline needs a file: add --neuronperf-baseline=PATH "
            "(or set neuronperf_baseline in the ini file)")
    if options.html_path is not None and importlib.util.find_spec("matplotlib") is None:
        raise pytest.UsageError(
            "--neuronperf-html needs matplotlib: pip install 'pytest-neuronperf[html]' "
            "(or pip install matplotlib)")
    if options.history_gate and options.history is None:
        raise pytest.UsageError(
            "--neuronperf-history-gate needs a history: add --neuronperf-history=PATH_OR_URL "
            "(or set neuronperf_history in the ini file)")
    if options.history is not None:
        check_history(options.history)
    if options.history_gate and importlib.util.find_spec("ruptures") is None:
        raise pytest.UsageError("--neuronperf-history-gate needs ruptures (change points): "
                                "pip install 'pytest-neuronperf[history]'")
    if options.skip and options.only:
        raise pytest.UsageError("--neuronperf-skip and --neuronperf-only exclude each other")
    for flag, path in (("--neuronperf-baseline", options.baseline),
                       ("--neuronperf-json", options.json_path),
                       ("--neuronperf-csv", options.csv_path),
                       ("--neuronperf-html", options.html_path)):
        if path is not None:
            check_writable_file(flag, path, must_write=flag != "--neuronperf-baseline"
                                or bool(options.save_baseline))
    return options


def history_location(config: pytest.Config) -> str | None:
    """``--neuronperf-history``, or the ini value with a relative path taken from the rootdir."""
    value = config.getoption("--neuronperf-history")
    if value is not None:
        return str(value)
    value = read_ini(config, "--neuronperf-history")
    if value is None:
        return None
    if "://" in str(value) or Path(str(value)).is_absolute():
        return str(value)
    return str(config.rootpath / str(value))


def check_history(location: str) -> None:
    """Refuse now a history the run could not write at its end: SQLAlchemy or psycopg missing,
    a SQLite path that is a folder or in a folder that cannot be written."""
    from pytest_neuronperf.history.store import sqlite_path, store_url

    flag = "--neuronperf-history"
    if importlib.util.find_spec("sqlalchemy") is None:
        raise pytest.UsageError(f"{flag} needs SQLAlchemy: pip install "
                                "'pytest-neuronperf[history]'")
    url = store_url(location)
    if url.startswith("postgresql") and importlib.util.find_spec("psycopg") is None:
        raise pytest.UsageError(f"{flag}: a PostgreSQL history needs psycopg 3: pip install "
                                "'pytest-neuronperf[postgresql]'")
    path = sqlite_path(url)
    if path is not None:
        check_writable_file(flag, path, must_write=True)


def check_writable_file(flag: str, path: Path, must_write: bool) -> None:
    """Refuse, before anything runs, a file path the run could not write at its end.

    Files are replaced through a temp file (and the baseline's lock file) in their directory,
    so it is the directory, or the nearest one that exists, that must be writable.
    """
    if path.is_dir():
        raise pytest.UsageError(f"{flag}={path} is a directory; give a file path")
    if not must_write:
        return
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise pytest.UsageError(f"{flag}={path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise pytest.UsageError(f"{flag}={path}: the directory {existing} is not writable")


def check_device_name(name: str | None, devices: dict[str, Any]) -> None:
    """``--neuronperf-device`` must name a built-in or a registered backend."""
    if name is not None and name not in (*DEVICES, *devices):
        raise pytest.UsageError(
            f"--neuronperf-device / neuronperf_device: unknown device {name!r}; choose one of "
            f"{', '.join((*DEVICES, *devices))}")
