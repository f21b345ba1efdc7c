"""The baseline file: versioned JSON, merged atomically under a lock.

Shape (see DESIGN.md, "Baseline file")::

    {"format": "pytest-neuronperf-baseline", "version": 1,
     "machines": {"<machine id>": {
         "fingerprint": {...},
         "tests": {"<node id>[::name]": {"<config key>": {"metrics": {}, "windows": {}}}}}}}

Saving re-reads the file under an exclusive lock, replaces only the configurations that ran,
and swaps the result in atomically (``pytest_neuronperf.safe_files``: same-directory temp file,
``fsync``, ``os.replace``; the lock file is ``.neuronperf-locks/<name>.lock`` beside the
baseline): concurrent writers (xdist workers, parallel CI jobs on one disk) never lose each
other's entries, and an interrupted or killed run leaves the previous file whole. A file this
version cannot read (not JSON, another format, a newer version, a nesting deeper than
``MAX_DEPTH``) is an error and is never rewritten; nor is a read-only file, nor a symbolic link
whose target's folder is missing (see ``check_saveable``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pytest_neuronperf import safe_files

FORMAT = "pytest-neuronperf-baseline"
FORMAT_VERSION = 1
# Format history (bump FORMAT_VERSION on any change readers must know about, add a line here):
#
# 1. First version. machines -> {fingerprint, tests -> {test key -> {config key ->
#    {"metrics": whole-run report metrics, "windows": {throughput, latency_ms_p50,
#    latency_ms_p99: per-window lists, null for a window without calls}}}}}.
#    Later in version 1 (readers ignore what they do not know, so no new number): an optional
#    "launch_windows" per entry, the number of windows each launch (fresh copies) contributed,
#    in order; the gate compares launches with launches where both sides have it.
#    Later, without a bump (readers that do not know it ignore it): an entry may carry
#    "profile", the configuration's profile summary (pytest_neuronperf.profiling.summary),
#    the base an explanation of a later regression is diffed against.

SIGNIFICANT_DIGITS = 6
"""Floats are stored rounded to this many significant digits: small files, readable diffs."""
NEW_FILE_MODE = 0o644
MAX_DEPTH = 32
"""Deepest nesting of objects and lists a baseline may have (its own entries need 8)."""


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
    *,
    on_wait: Callable[[str], None] | None = None,
    lock_notice_s: float | None = None,
    lock_limit_s: float | None = None,
) -> Baseline:
    """Merge ``results`` (test key -> config key -> entry) for one machine into the file.

    Only the configurations in ``results`` are replaced; other configurations, tests and
    machines are kept. The machine's fingerprint is updated. Returns the merged baseline.
    When another process holds the file's lock, ``on_wait`` is told who after
    ``lock_notice_s``; after ``lock_limit_s`` the save fails with ``safe_files.LockTimeout``
    (defaults: ``safe_files.NOTICE_AFTER_S`` and ``GIVE_UP_AFTER_S``).
    """
    Path(os.path.abspath(path)).parent.mkdir(parents=True, exist_ok=True)
    file = check_saveable(path)
    notice = safe_files.NOTICE_AFTER_S if lock_notice_s is None else lock_notice_s
    limit = safe_files.GIVE_UP_AFTER_S if lock_limit_s is None else lock_limit_s
    with safe_files.locked(file, notice_after=notice, give_up_after=limit, on_wait=on_wait):
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
                    **({"launch_windows": list(entry["launch_windows"])}
                       if entry.get("launch_windows") else {}),
                    **({"profile": entry["profile"]} if entry.get("profile") else {}),
                }
        safe_files.remove_leftovers(file)  # of writers killed mid-save
        _write(file, dumps_baseline(data))
    return Baseline(file, data)


def check_saveable(path: str | os.PathLike[str]) -> Path:
    """The real file a save to ``path`` writes, or ``BaselineError`` saying why it must not.

    A symbolic link is followed only when its target's folder exists (the link stays a link);
    a link into a missing folder, a read-only file and a special file are refused.
    """
    try:
        if safe_files.special_file(path) is not None:
            raise safe_files.RefusedWrite(
                f"{path} is not a regular file: a baseline must be one (it is read back).")
        return safe_files.check_replaceable(path)
    except safe_files.RefusedWrite as error:
        raise BaselineError(f"cannot save the baseline: {error}") from None


def link_target(path: str | os.PathLike[str]) -> Path | None:
    """The file a symbolic-link baseline path points to (None when ``path`` is no link)."""
    real = Path(os.path.realpath(path))
    return real if real != Path(os.path.abspath(path)) else None


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
    except RecursionError:
        raise BaselineError(_too_deep(file)) from None
    except json.JSONDecodeError as error:
        raise BaselineError(
            f"baseline file {file} is not valid JSON ({error.msg} at line {error.lineno} "
            f"column {error.colno}). It was left untouched; fix it, or delete it and save a "
            "new baseline."
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise BaselineError(_too_deep(file))
    _validate(file, data)
    return cast(dict[str, Any] | None, data)


def _too_deep(file: Path) -> str:
    return (f"baseline file {file} nests objects or lists deeper than {MAX_DEPTH} levels, which "
            "no baseline does. It was left untouched; fix it, or delete it and save a new "
            "baseline.")


def _depth(value: Any) -> int:
    """How deeply objects and lists nest in ``value`` (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, level + 1) for child in children)
    return deepest


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
        if not isinstance(machine.get("fingerprint", {}), dict | None):
            raise BaselineError(
                f"baseline file {file}: machine {mid!r} has a 'fingerprint' that is not an "
                "object. It was left untouched; fix it, or delete that machine and save again."
            )
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
    sizes = entry.get("launch_windows")
    if sizes is not None and not (isinstance(sizes, list) and all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes)):
        return "'launch_windows' is not a list of positive integers"
    return None


def _is_number(value: Any) -> bool:
    """An int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- Writing ---------------------------------------------------------------------------------


def _write(file: Path, text: str) -> None:
    """Replace the baseline file in one step; a refusal (read-only, ...) is a BaselineError."""
    try:
        safe_files.write_text(file, text, new_mode=NEW_FILE_MODE)
    except safe_files.RefusedWrite as error:
        raise BaselineError(f"cannot save the baseline: {error}") from None


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
