"""What changed between a base and a head profile summary, ranked by what it costs an inference.

For each key of a table (operators, Python frames) the diff compares calls per inference and
self time per inference. A change is one of: ``new`` (the head calls it, the base did not),
``gone``, ``calls`` (called more or less often per inference), ``per call`` (each call got
slower or faster). Rows are ranked by what a change costs an inference (its change of self time per
inference; for a count change, the calls it adds at the per-call time), which is what it adds
to every end-to-end call; the line shows it per operator call and with counts.

Both sides are profiled by the same profiler the same way (and in paired mode in alternating
windows on the same cores), so a profiler's fixed cost per recorded call appears on both sides
and cancels in the difference; what remains is compared with the noise the windows show:

- a change must move the inference by at least ``FLOOR_SHARE`` of the larger side's profiled
  time per inference (smaller changes cannot explain a slowdown the gate saw);
- counts are exact, so ``new``, ``gone`` and ``calls`` changes above that floor are real, and
  rank first;
- a ``per call`` change must move the inference by ``PER_CALL_FLOOR``, exceed ``REL_CHANGE``
  of its own time and lie outside both sides' window spread (every head window slower than
  every base window, or faster).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from pytest_neuronperf import formatting
from pytest_neuronperf.profiling.summary import TABLES, total_ns

FLOOR_SHARE = 0.02
PER_CALL_FLOOR = 0.05
"""A per-call change must move an inference by this share (times, unlike counts, are noisy)."""
REL_CHANGE = 0.25
COUNT_CHANGE = 0.10
"""Calls per inference must change by this share (and by ``COUNT_STEP`` calls) to count."""
COUNT_STEP = 0.5
TOP_LINES = 3
"""Lines per table in a failure's evidence."""
LISTED = 40
"""Changes kept per table in a report (the HTML table shows them)."""


@dataclass(frozen=True)
class Change:
    """One key's change between base and head (per inference)."""

    table: str
    key: str
    kind: str
    """``new``, ``gone``, ``calls``, ``per call``."""
    base_calls: float
    head_calls: float
    base_ns: float
    head_ns: float
    significant: bool

    @property
    def delta_ns(self) -> float:
        """What the change costs an inference (ns; positive: slower). A count change costs the
        calls it adds at the per-call time of both sides together (the two sides' own times
        differ by noise as well as by the change); other changes cost their measured
        difference."""
        if self.kind == "calls":
            per_call = (self.base_ns + self.head_ns) / (self.base_calls + self.head_calls)
            return (self.head_calls - self.base_calls) * per_call
        return self.head_ns - self.base_ns

    @property
    def structural(self) -> bool:
        """A key that appeared, went, or is called a different number of times: exact evidence
        (a per-call change may also be what a busy machine or the other changes did to it)."""
        return self.kind != "per call"

    def per_call(self, side: str) -> float:
        """Self time per call of the key (ns) on ``side``, NaN when it is not called."""
        calls, ns = ((self.base_calls, self.base_ns) if side == "base"
                     else (self.head_calls, self.head_ns))
        return ns / calls if calls > 0 else math.nan

    def line(self) -> str:
        """``aten::addmm [1x256]: 0.4100 -> 0.5200 ms per call (+26.8%), 3 calls (+0.3300 ms)``."""
        delta = f"{signed_ms(self.delta_ns)} ms per inference"
        if self.kind == "new":
            return (f"{self.key}: new, {ms(self.per_call('head'))} ms per call x "
                    f"{count(self.head_calls)} per inference ({delta})")
        if self.kind == "gone":
            return (f"{self.key}: gone, was {ms(self.per_call('base'))} ms per call x "
                    f"{count(self.base_calls)} per inference ({delta})")
        if self.kind == "calls":
            return (f"{self.key}: {count(self.base_calls)} -> {count(self.head_calls)} calls per "
                    f"inference, {ms(self.per_call('base'))} -> {ms(self.per_call('head'))} ms "
                    f"per call ({delta})")
        before, after = self.per_call("base"), self.per_call("head")
        relative = f" ({formatting.percent(after / before - 1)})" if before > 0 else ""
        return (f"{self.key}: {ms(before)} -> {ms(after)} ms per call{relative}, "
                f"{count(self.head_calls)} calls ({delta})")

    def as_dict(self) -> dict[str, Any]:
        """The change as report data."""
        return {"table": self.table, "key": self.key, "kind": self.kind,
                "base_calls": self.base_calls, "head_calls": self.head_calls,
                "base_ns": self.base_ns, "head_ns": self.head_ns,
                "delta_ns": self.delta_ns, "significant": self.significant,
                "line": self.line()}


def ms(ns: float) -> str:
    """Nanoseconds as milliseconds, by the one rounding rule (``0.05230``, ``1.230``)."""
    return "0" if ns == 0 else formatting.number(ns / 1e6)


def signed_ms(ns: float) -> str:
    """``+0.05200`` / ``-1.200``."""
    text = ms(abs(ns))
    return ("-" if ns < 0 else "+") + text


def count(calls: float) -> str:
    """Calls per inference: ``1``, ``2``, ``0.5``."""
    return f"{calls:.3g}"


def diff_tables(name: str, base: dict[str, Any], head: dict[str, Any]) -> list[Change]:
    """Every key's change in one table, ranked: significant changes first, slowest first."""
    floor = FLOOR_SHARE * max(total_ns(base), total_ns(head))
    base_rows, head_rows = base.get("rows", {}), head.get("rows", {})
    spread = int(base.get("windows", 0)) >= 2 and int(head.get("windows", 0)) >= 2
    changes = []
    for key in set(base_rows) | set(head_rows):
        b, h = base_rows.get(key), head_rows.get(key)
        if b is None and h is not None and h[1] <= float(base.get("floor_ns") or 0.0):
            continue  # below what the base summary listed: unknown, not new
        if h is None and b is not None and b[1] <= float(head.get("floor_ns") or 0.0):
            continue
        changes.append(change(name, key, b, h, floor, spread))
    return sorted(changes, key=lambda c: (not c.significant, not c.structural, -c.delta_ns))


def change(table: str, key: str, base: list[float] | None, head: list[float] | None,
           floor: float, spread: bool) -> Change:
    """The change of one key (rows are ``[calls, ns, lo_ns, hi_ns]`` per inference)."""
    b = base or [0.0, 0.0, 0.0, 0.0]
    h = head or [0.0, 0.0, 0.0, 0.0]
    if base is None or b[0] <= 0:
        kind = "new"
    elif head is None or h[0] <= 0:
        kind = "gone"
    elif (abs(h[0] - b[0]) >= COUNT_STEP
          and abs(h[0] - b[0]) >= COUNT_CHANGE * max(h[0], b[0])):
        kind = "calls"
    else:
        kind = "per call"
    found = Change(table, key, kind, b[0], h[0], b[1], h[1], False)
    delta = found.delta_ns
    significant = abs(delta) >= floor and floor > 0
    if significant and kind == "per call":
        separated = (h[2] > b[3]) if delta > 0 else (h[3] < b[2])
        significant = (abs(delta) >= max(REL_CHANGE * b[1], PER_CALL_FLOOR / FLOOR_SHARE * floor)
                       and (separated or not spread))
    return dataclasses.replace(found, significant=significant)


def diff(base: dict[str, Any], head: dict[str, Any]) -> dict[str, list[Change]]:
    """The ranked changes of every table both summaries have."""
    return {name: diff_tables(name, base["tables"][name], head["tables"][name])
            for name in TABLES
            if name in base.get("tables", {}) and name in head.get("tables", {})}


def slower(changes: list[Change], limit: int = TOP_LINES) -> list[Change]:
    """The significant changes that made inferences slower, largest first."""
    return [c for c in changes if c.significant and c.delta_ns > 0][:limit]


def top_self(table: dict[str, Any], limit: int = TOP_LINES) -> list[str]:
    """A head-only profile's largest keys: ``aten::addmm [..]: 0.41 ms per call x 3``."""
    rows = sorted(table.get("rows", {}).items(), key=lambda item: -item[1][1])[:limit]
    return [f"{key}: {ms(row[1] / row[0] if row[0] else math.nan)} ms per call x "
            f"{count(row[0])} per inference ({ms(row[1])} ms per inference)"
            for key, row in rows]
