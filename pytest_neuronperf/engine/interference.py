"""How much of the measured cores' time went to something other than the model copies.

Read from ``/proc/stat`` (per-CPU busy and steal ticks) and ``/proc/<pid>/stat`` (each copy's
own user + system ticks) before a measurement, and again after it, where the copies' CPU time
comes from their last timings message (a copy exits right after sending it). ``other_pct`` is
the share of the
measured CPUs' time that was busy but not spent by the copies (other processes, the kernel on
their behalf, this harness); ``steal_pct`` is the share the hypervisor gave to other guests.
Either one high means the figures were taken on a busy machine. Linux only; elsewhere the
meter reports nothing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_neuronperf.reports import Interference

HIGH_OTHER_PCT = 10.0
"""Above this share of the measured cores' time used by others, a verdict says so."""
HIGH_STEAL_PCT = 5.0
"""Above this share stolen by the hypervisor, a verdict says so."""


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative ticks of one logical CPU."""

    total: int
    idle: int
    """Idle plus iowait."""
    steal: int


@dataclass(frozen=True)
class Sample:
    """One reading of the measured CPUs and of the copies' own CPU time."""

    cpus: dict[int, CpuTimes]
    copy_ticks: int


def parse_proc_stat(text: str) -> dict[int, CpuTimes]:
    """``cpuN`` lines of ``/proc/stat`` -> ticks per CPU (guest time is already in user)."""
    cpus = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        fields = [int(v) for v in rest.split()[:8]]
        fields += [0] * (8 - len(fields))
        user, nice, system, idle, iowait, irq, softirq, steal = fields
        total = user + nice + system + idle + iowait + irq + softirq + steal
        cpus[int(name[3:])] = CpuTimes(total, idle + iowait, steal)
    return cpus


def parse_pid_ticks(text: str) -> int:
    """utime + stime of one ``/proc/<pid>/stat`` line (the command may contain spaces)."""
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def read_sample(cpus: Iterable[int], pids: Iterable[int]) -> Sample | None:
    """The current reading, or None where ``/proc`` cannot be read."""
    try:
        with open("/proc/stat") as stat:
            per_cpu = parse_proc_stat(stat.read())
    except OSError:
        return None
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                ticks += parse_pid_ticks(stat.read())
        except (OSError, IndexError, ValueError):
            continue  # exited: its time is lost, which can only make ``other`` look higher
    wanted = set(cpus)
    return Sample({c: t for c, t in per_cpu.items() if c in wanted}, ticks)


def interference(before: Sample | None, after: Sample | None) -> Interference | None:
    """``{"other_pct", "steal_pct", "cpus"}`` between two readings, or None without data."""
    if before is None or after is None:
        return None
    total = idle = steal = 0
    for cpu, end in after.cpus.items():
        start = before.cpus.get(cpu)
        if start is None:
            continue
        total += end.total - start.total
        idle += end.idle - start.idle
        steal += end.steal - start.steal
    if total <= 0:
        return None
    busy_other = max(0, total - idle - steal - (after.copy_ticks - before.copy_ticks))
    return {"other_pct": round(100.0 * busy_other / total, 1),
            "steal_pct": round(100.0 * steal / total, 1),
            "cpus": len(after.cpus)}


class Meter:
    """Reads the measured CPUs and the copies at :meth:`start` and :meth:`stop`."""

    def __init__(self, cpus: Sequence[int] | None, pids: Sequence[int]) -> None:
        self._cpus = sorted(set(cpus)) if cpus else []
        self._pids = list(pids)
        self._before: Sample | None = None

    def start(self) -> None:
        """Take the first reading."""
        if self._cpus and os.path.exists("/proc/stat"):
            self._before = read_sample(self._cpus, self._pids)

    def stop(self, copies_cpu_s: float = math.nan) -> Interference | None:
        """The interference since :meth:`start` (None when it cannot be known).

        ``copies_cpu_s`` is the copies' CPU time as they last reported it (seconds, summed);
        NaN reads it from ``/proc``, which only works while they still run."""
        if self._before is None:
            return None
        after = read_sample(self._cpus, [] if math.isfinite(copies_cpu_s) else self._pids)
        if after is not None and math.isfinite(copies_cpu_s):
            after = Sample(after.cpus, round(copies_cpu_s * os.sysconf("SC_CLK_TCK")))
        return interference(self._before, after)


def is_high(figures: Interference | None) -> bool:
    """True when other processes or the hypervisor took a notable share of the cores."""
    if not figures:
        return False
    return bool(figures.get("other_pct", 0.0) > HIGH_OTHER_PCT
            or figures.get("steal_pct", 0.0) > HIGH_STEAL_PCT)


def describe(figures: Interference | None) -> str:
    """``busy machine: 23% of the measured cores' time went to other processes, 0% stolen``
    when it was high, else an empty string."""
    if not is_high(figures):
        return ""
    assert figures is not None
    return (f"busy machine: {figures['other_pct']:.0f}% of the measured cores' time went to "
            f"other processes, {figures['steal_pct']:.0f}% was stolen by the hypervisor")
