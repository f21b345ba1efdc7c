"""When a configuration is profiled, what the profile may cost, and the explanation a report
carries (``report["profile"]``) with the lines its failure shows.

The base of the diff: in paired mode (``--neuronperf-against``, ``compare``) the base side,
profiled in the same run on the same cores. With a stored baseline, the summary saved with the
configuration's baseline entry (a run that saves a baseline profiles every configuration it
saves, unless profiling is off); counts and new operators are then exact, times come from
another run. With neither, the head's profile alone (its largest keys).

Profiling never changes a verdict: it runs after the verdict is decided, and a profile that
fails, or would overrun the configuration's ``timeout``, is one line in the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pytest_neuronperf.profiling import diff as profile_diff
from pytest_neuronperf.profiling.run import profile_seconds
from pytest_neuronperf.profiling.summary import is_summary

MODES = ("auto", "all", "off")
"""``--neuronperf-profile``: ``auto`` profiles REGRESSED configurations and those a run saves
as a baseline; ``all`` every configuration; ``off`` none."""
START_S = 1.0
"""A profile run's fixed cost per side besides load and windows (process start, trace files)."""
WINDOW_COST = 2.5
"""A window takes about this many times its length (profiler start and stop, reading its
trace)."""


def wanted(mode: str, marker: bool | None, verdict: str, saving: bool) -> bool:
    """Whether a configuration with ``verdict`` is profiled: the marker's ``profile=`` wins over
    the run's mode; ``auto`` means REGRESSED, or saved as a baseline."""
    if marker is not None:
        return marker
    if mode == "off":
        return False
    return mode == "all" or verdict == "REGRESSED" or saving


def needed_s(report: Mapping[str, Any], sides: int) -> float:
    """About how long a profile run of ``report``'s configuration takes."""
    load_s = (number(report.get("load_avg_ms")) + number(report.get("warmup_avg_ms"))) / 1000
    windows = profile_seconds() * WINDOW_COST
    return sides * (START_S + load_s + windows)


def budget(report: Mapping[str, Any], timeout_s: float | None,
           sides: int) -> tuple[float | None, str | None]:
    """(seconds the profile run may take, or None for the job's own timeout; the line saying
    why it is skipped, if it is). ``timeout`` bounds a configuration's measurement and its
    profile together."""
    if timeout_s is None:
        return None, None
    load_s = (number(report.get("load_avg_ms")) + number(report.get("warmup_avg_ms"))) / 1000
    measured = sides * (load_s + number(report.get("duration")))
    left = timeout_s - measured
    need = needed_s(report, sides)
    if need > left:
        return None, (f"profile skipped: it needs about {need:.1f} s and timeout={timeout_s:g} s "
                      f"leaves {max(0.0, left):.1f} s after the measurement")
    return left, None


def number(value: Any) -> float:
    """A report figure as a float (0 when missing)."""
    try:
        found = float(value)
    except (TypeError, ValueError):
        return 0.0
    return found if math.isfinite(found) else 0.0


def explanation(result: Mapping[str, Any], stored: Any, base_label: str) -> dict[str, Any]:
    """``report["profile"]`` from a profile run's result and the stored base summary (None when
    there is none); ``base_label`` names the paired base (``paired base (origin/main)``)."""
    if result.get("status") != "ok":
        return {"status": "error", "error": result.get("error"), "detail": result.get("detail"),
                "seconds": result.get("seconds")}
    sides = result["sides"]
    head, base = sides["head"], sides.get("base")
    source = base_label if base is not None else None
    if base is None and is_summary(stored):
        base, source = stored, "the baseline's stored profile"
    changes = profile_diff.diff(base, head) if base is not None else {}
    return {
        "status": "ok", "seconds": result.get("seconds"), "cpu_s": result.get("cpu_s"),
        "directory": result.get("directory"),
        "traces": result.get("traces", []), "base_from": source, "head": head, "base": base,
        "changes": {table: [c.as_dict() for c in found[:profile_diff.LISTED]]
                    for table, found in changes.items()},
    }


def skipped(line: str) -> dict[str, Any]:
    """``report["profile"]`` of a profile that did not run."""
    return {"status": "skipped", "error": line}


def evidence(profile: Mapping[str, Any]) -> list[str]:
    """The lines a failure's evidence shows about the profile."""
    status = profile.get("status")
    if status == "skipped":
        return [str(profile.get("error"))]
    if status != "ok":
        return [f"profile failed (the verdict stands): {profile.get('error')}"]
    seconds = number(profile.get("seconds"))
    lines = []
    if profile.get("base_from") is None:
        lines.append(f"profile ({seconds:.1f} s after the measurement), head only: no base "
                     f"profile to compare with (save the baseline again to store one, or run "
                     f"paired with --neuronperf-against); its largest self times:")
        for name, table in (profile.get("head") or {}).get("tables", {}).items():
            lines += [f"  {name}: {line}" for line in profile_diff.top_self(table)]
    else:
        lines.append(f"what got slower (profiled {seconds:.1f} s after the measurement; head vs "
                     f"{profile['base_from']}; per inference):")
        found = False
        for name, changes in (profile.get("changes") or {}).items():
            top = [c for c in changes if c["significant"] and c["delta_ns"] > 0]
            top = top[:profile_diff.TOP_LINES]
            found = found or bool(top)
            lines += [f"  {name}: {c['line']}" for c in top]
        if not found:
            lines.append("  no operator or Python frame got slower beyond noise (the slowdown "
                         "may come from the machine, or from work no profiler here sees)")
    if profile.get("directory"):
        lines.append(f"  traces: {profile['directory']}")
    return lines


def head_summary(profile: Any) -> dict[str, Any] | None:
    """The head's summary to store with a baseline entry (None when there is none)."""
    if isinstance(profile, Mapping) and profile.get("status") == "ok":
        head = profile.get("head")
        return head if is_summary(head) else None
    return None


def csv_cells(profile: Any) -> dict[str, Any]:
    """A profile as a few CSV cells: its status, the top line and the traces folder."""
    if not isinstance(profile, Mapping):
        return {}
    lines = evidence(profile)
    top = next((line.strip() for line in lines[1:] if line.startswith("  ")
                and not line.strip().startswith("traces:")), "")
    return {"profile.status": profile.get("status"), "profile.top": top,
            "profile.traces": profile.get("directory") or ""}
