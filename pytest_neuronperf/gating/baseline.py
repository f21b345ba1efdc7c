"""The baseline file: versioned JSON, merged atomically under a lock.

Shape (see DESIGN.md, "Baseline file")::

    {"format": "pytest-neuronperf-baseline", "version": 1,
     "machines": {"<machine id>": {
         "fingerprint": {...},
         "tests": {"<node id>[::name]": {"<config key>": {"metrics": {}, "windows": {}}}}}}}

Saving re-reads the file under an exclusive ``fcntl.flock`` on ``<path>.lock``, replaces only
the configurations that ran, and swaps the result in with a same-directory temp file, ``fsync``
and ``os.replace``: concurrent writers (xdist workers, parallel CI jobs on one disk) never lose
each other's entries, and an interrupted run leaves the previous file whole. A file this version
cannot read (not JSON, another format, a newer version) is an error and is never rewritten.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "pytest-neuronperf-baseline"
FORMAT_VERSION = 1
# Format history (bump FORMAT_VERSION on any change readers must know about, add a line here):
#
# 1. First version. machines -> {fingerprint, tests -> {test key -> {config key ->
#    {"metrics": whole-run report metrics, "windows": {throughput, latency_ms_p50,
#    latency_ms_p99: per-window lists, null for a window without calls}}}}}.

SIGNIFICANT_DIGITS = 6
"""Floats are stored rounded to this many significant digits: small files, readable diffs."""
NEW_FILE_MODE = 0o644


class BaselineError(ValueError):
    """The baseline file cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Baseline:
    """A loaded baseline file."""

    path: Path
    data: dict[str, Any]

    def machines(self) -> dict[str, dict[str, Any]]:
        """Machine id -> the fingerprint stored for it."""
        return {mid: dict(m.get("fingerprint") or {}) for mid, m in self.data["machines"].items()}

    def has_machine(self, machine_id: str) -> bool:
        """True when the file has results for ``machine_id``."""
        return machine_id in self.data["machines"]

    def fingerprint(self, machine_id: str) -> dict[str, Any] | None:
        """The fingerprint stored for ``machine_id``, if the file has that machine."""
        machine = self.data["machines"].get(machine_id)
        return None if machine is None else dict(machine.get("fingerprint") or {})

    def tests(self, machine_id: str) -> dict[str, dict[str, Any]]:
        """Test key -> {config key -> entry} stored for ``machine_id`` (empty if none)."""
        machine = self.data["machines"].get(machine_id) or {}
        return dict(machine.get("tests") or {})

    def lookup(self, machine_id: str, test_key: str, config_key: str) -> dict[str, Any] | None:
        """The stored entry (``metrics`` and ``windows``) of one configuration, or None."""
        return self.tests(machine_id).get(test_key, {}).get(config_key)


def result_key(node_id: str, name: str | None = None) -> str:
    """The key of one recorded benchmark call: the node id, plus ``::name`` when named."""
    return f"{node_id}::{name}" if name else node_id


def empty_baseline_data() -> dict[str, Any]:
    """The content of a baseline file with no machines yet."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "machines": {}}


def load_baseline(path: str | os.PathLike[str]) -> Baseline | None:
    """Read a baseline file; None when it does not exist, ``BaselineError`` when unusable."""
    file = Path(path)
    data = _read(file)
    return None if data is None else Baseline(file, data)


def save_results(
    path: str | os.PathLike[str],
    machine_id: str,
    fingerprint: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> Baseline:
    """Merge ``results`` (test key -> config key -> entry) for one machine into the file.

    Only the configurations in ``results`` are replaced; other configurations, tests and
    machines are kept. The machine's fingerprint is updated. Returns the merged baseline.
    """
    file = Path(os.path.realpath(path))
    file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(file):
        data = _read(file) or empty_baseline_data()
        data["version"] = FORMAT_VERSION
        machine = data["machines"].setdefault(machine_id, {})
        machine["fingerprint"] = dict(fingerprint)
        tests = machine.setdefault("tests", {})
        for test, configs in results.items():
            stored = tests.setdefault(test, {})
            for config, entry in configs.items():
                stored[config] = {
                    "metrics": dict(entry.get("metrics") or {}),
                    "windows": {m: list(v) for m, v in (entry.get("windows") or {}).items()},
                }
        _write_atomic(file, dumps_baseline(data))
    return Baseline(file, data)


def dumps_baseline(data: Mapping[str, Any]) -> str:
    """Serialise baseline data: nested keys sorted, number lists on one line, NaN as null."""
    ordered = {"format": data["format"], "version": data["version"], "machines": data["machines"]}
    return _dumps(ordered, 0, sort=False) + "\n"


# --- Reading ---------------------------------------------------------------------------------


def _read(file: Path) -> dict[str, Any] | None:
    """Parse and validate the file; None when missing."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BaselineError(f"cannot read baseline file {file}: {error.strerror}.") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BaselineError(
            f"baseline file {file} is not valid JSON (not UTF-8 text). It was left untouched; "
            "fix it, or delete it and save a new baseline."
        ) from None
    except json.JSONDecodeError as error:
        raise BaselineError(
            f"baseline file {file} is not valid JSON ({error.msg} at line {error.lineno} "
            f"column {error.colno}). It was left untouched; fix it, or delete it and save a "
            "new baseline."
        ) from None
    _validate(file, data)
    return data


def _validate(file: Path, data: Any) -> None:
    """Raise ``BaselineError`` unless ``data`` is a baseline this version can read."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise BaselineError(
            f"{file} is not a pytest-neuronperf baseline (format {found!r}, expected {FORMAT!r})."
        )
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BaselineError(f"baseline file {file} has an invalid version {version!r}.")
    if version > FORMAT_VERSION:
        raise BaselineError(
            f"baseline file {file} was written by a newer pytest-neuronperf (format version "
            f"{version}; this one reads up to {FORMAT_VERSION}). Upgrade pytest-neuronperf."
        )
    machines = data.get("machines")
    if not isinstance(machines, dict):
        raise BaselineError(f"baseline file {file}: 'machines' is not an object.")
    for mid, machine in machines.items():
        if not isinstance(machine, dict) or not isinstance(machine.get("tests", {}), dict):
            raise BaselineError(f"baseline file {file}: machine {mid!r} is not a valid record.")
        for test, configs in machine.get("tests", {}).items():
            if not isinstance(configs, dict) or not all(
                isinstance(e, dict) for e in configs.values()
            ):
                raise BaselineError(f"baseline file {file}: test {test!r} is not a valid record.")
            for config, entry in configs.items():
                problem = _entry_problem(entry)
                if problem:
                    raise BaselineError(
                        f"baseline file {file}: test {test!r}, configuration {config!r}: "
                        f"{problem}. Fix the entry or delete it and save the baseline again."
                    )


def _entry_problem(entry: dict[str, Any]) -> str | None:
    """What is wrong with one configuration's entry (numbers the gate reads), if anything."""
    metrics, windows = entry.get("metrics", {}), entry.get("windows", {})
    if not isinstance(metrics, dict):
        return "'metrics' is not an object"
    if windows is not None and not isinstance(windows, dict):
        return "'windows' is not an object"
    for name, value in metrics.items():
        if value is not None and not _is_number(value):
            return f"metric {name!r} is {value!r}, not a number"
    for name, series in (windows or {}).items():
        if not isinstance(series, list) or not all(
            v is None or _is_number(v) for v in series
        ):
            return f"windows {name!r} is not a list of numbers"
        if any(v is not None and v < 0 for v in series):
            return f"windows {name!r} has negative values"
    return None


def _is_number(value: Any) -> bool:
    """An int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Writing ---------------------------------------------------------------------------------


@contextmanager
def _locked(file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<file>.lock`` (shared by every process that saves)."""
    fd = os.open(f"{file}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for 10 s, then raises
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _write_atomic(file: Path, text: str) -> None:
    """Replace ``file`` with ``text`` in one step: same-directory temp file, fsync, rename."""
    try:
        mode = file.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = NEW_FILE_MODE
    fd, temp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, mode)
        os.replace(temp, file)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(file.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: not every filesystem allows it)."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _dumps(value: Any, level: int, sort: bool = True) -> str:
    """JSON text of ``value``: objects indented, lists of scalars kept on one line."""
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        keys = sorted(value, key=str) if sort else list(value)
        pad = "  " * (level + 1)
        items = [f"{pad}{json.dumps(str(k))}: {_dumps(value[k], level + 1)}" for k in keys]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return "[" + ", ".join(_scalar(v) for v in value) + "]"
        pad = "  " * (level + 1)
        items = [pad + _dumps(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    """One JSON scalar; non-finite floats become null, floats are rounded for storage."""
    if isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return "null"
        return json.dumps(float(f"{value:.{SIGNIFICANT_DIGITS}g}"))
    if hasattr(value, "item") and not isinstance(value, str):
        return _scalar(value.item())  # numpy scalars
    return json.dumps(value, allow_nan=False)
