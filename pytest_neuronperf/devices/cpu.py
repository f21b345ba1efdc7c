"""CPU backend: each model copy owns a slice of logical CPUs."""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

from pytest_neuronperf.devices.base import Placement, slice_cores

CGROUP_ROOT = Path("/sys/fs/cgroup")


def thread_env(threads: int) -> dict[str, str]:
    """Environment that caps every common intra-op thread pool at ``threads``."""
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
    }


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """Whole CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 ``cfs_quota``), if any."""
    v2 = root / "cpu.max"
    try:
        quota, period = v2.read_text().split()[:2]
        if quota != "max":
            return max(1, math.floor(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.floor(quota_us / period_us))


def usable_cpus() -> list[int]:
    """Logical CPUs this process may run on, trimmed to what the cgroup quota pays for."""
    cpus = sorted(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit()
    if limit is not None and limit < len(cpus):
        cpus = cpus[:limit]
    return cpus


def cpu_model_name() -> str:
    """The CPU model string from /proc/cpuinfo, or the platform's processor name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class CpuBackend:
    """Pins each copy to its own logical CPUs and sizes thread pools to match."""

    name = "cpu"

    def is_available(self) -> bool:
        return True

    def cores(self) -> list[int]:
        return usable_cpus()

    def placements(self, cores: list[int], n_models: int, pipeline_size: int) -> list[Placement]:
        return [
            Placement(
                device_type=self.name,
                copy_index=index,
                cores=cpus,
                env=thread_env(len(cpus)),
                cpu_affinity=cpus,
                intra_op_threads=len(cpus),
            )
            for index, cpus in enumerate(slice_cores(cores, n_models, pipeline_size))
        ]

    def fingerprint(self) -> dict[str, Any]:
        return {"device_type": self.name, "devices": []}
