"""One side's profile windows as a summary: per key, calls and self time per inference.

An inference is one end-to-end call of the copy (a batch). Per table (``operators``,
``python``) the summary keeps, for each key, the calls and the self time (ns) per inference
over all windows of that kind, and the lowest and highest per-window self time per inference
(the spread the diff compares changes with). Python tables also keep their call stacks (self
time per inference per path), for the flame graph. It is plain JSON: it travels in reports,
through xdist, and is stored with a baseline entry (``profile``), where a later run finds its
base.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from pytest_neuronperf.protocol import messages

TABLES = ("operators", "python")
ROW_LIMIT = 150
"""Keys kept per table (by self time); a key the summary left out counts as below
``floor_ns``, never as absent."""
STACK_LIMIT = 250
STORED_ROWS = 60
STORED_STACKS = 80
"""What a baseline entry keeps of a summary (``stored``): the file stays readable in a diff."""
SUMMARY_VERSION = 1
"""History: 1 -- first version: ``{"version", "framework", "tables": {name: {"inferences",
"windows", "seconds", "wall_ns", "rows": {key: [calls, ns, lo_ns, hi_ns]}, "floor_ns",
"note"}},
"stacks": [[path, ns], ...]}`` (per inference)."""


def summarize(windows: Sequence[messages.Profiled], framework: str) -> dict[str, Any]:
    """The summary of one side's windows."""
    tables = {}
    for name in TABLES:
        mine = [w for w in windows if w.window == name]
        if mine:
            tables[name] = table_summary(mine)
    python = [w for w in windows if w.window == "python" and w.calls]
    return {"version": SUMMARY_VERSION, "framework": framework, "tables": tables,
            "stacks": stack_summary(python)}


def table_summary(windows: Sequence[messages.Profiled]) -> dict[str, Any]:
    """Calls per inference (over all windows: counts are exact) and self time per inference
    (the median window's: a window that a busy machine slowed does not move it) of one table,
    with the lowest and highest window."""
    counted = [w for w in windows if w.calls > 0]
    inferences = sum(w.calls for w in counted)
    calls: dict[str, float] = {}
    per_window: dict[str, list[float]] = {}
    for index, window in enumerate(counted):
        for key, count, self_ns, device_ns in window.table:
            calls[str(key)] = calls.get(str(key), 0.0) + float(count)
            values = per_window.setdefault(str(key), [0.0] * len(counted))
            values[index] += (float(self_ns) + float(device_ns)) / window.calls
    rows = {key: [calls[key] / inferences, statistics.median(values), min(values), max(values)]
            for key, values in per_window.items()} if inferences else {}
    ranked = sorted(rows.items(), key=lambda item: -item[1][1])
    kept = dict(ranked[:ROW_LIMIT])
    floor = ranked[ROW_LIMIT][1][1] if len(ranked) > ROW_LIMIT else 0.0
    notes = sorted({w.note for w in windows if w.note})
    seconds = sum(w.seconds for w in counted)
    return {"inferences": inferences, "windows": len(counted), "seconds": seconds,
            "wall_ns": seconds * 1e9 / inferences if inferences else None,
            "rows": kept, "floor_ns": floor, "note": "; ".join(notes) or None}


def stack_summary(windows: Sequence[messages.Profiled]) -> list[list[Any]]:
    """Self time per inference per Python call path, over the windows."""
    inferences = sum(w.calls for w in windows)
    if not inferences:
        return []
    paths: dict[tuple[str, ...], float] = {}
    for window in windows:
        for path, self_ns in window.stacks:
            key = tuple(str(frame) for frame in path)
            paths[key] = paths.get(key, 0.0) + float(self_ns)
    ranked = sorted(paths.items(), key=lambda item: -item[1])[:STACK_LIMIT]
    return [[list(path), ns / inferences] for path, ns in ranked]


def stored(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary cut down for a baseline entry: its largest keys and stacks."""
    tables = {}
    for name, table in summary["tables"].items():
        ranked = sorted(table["rows"].items(), key=lambda item: -item[1][1])
        floor = ranked[STORED_ROWS][1][1] if len(ranked) > STORED_ROWS else table["floor_ns"]
        tables[name] = {**table, "rows": dict(ranked[:STORED_ROWS]),
                        "floor_ns": max(floor, table["floor_ns"])}
    return {**summary, "tables": tables, "stacks": summary["stacks"][:STORED_STACKS]}


def total_ns(table: dict[str, Any] | None) -> float:
    """Self time per inference of every key of a table (what the profile saw of a call)."""
    if not table:
        return 0.0
    return float(sum(row[1] for row in table.get("rows", {}).values()))


def is_summary(value: Any) -> bool:
    """``value`` is a summary this version can read (a stored one may be older or foreign)."""
    return (isinstance(value, dict) and value.get("version") == SUMMARY_VERSION
            and isinstance(value.get("tables"), dict))
