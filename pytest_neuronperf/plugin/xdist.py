"""pytest-xdist: each worker's disjoint share of the cores, and the controller's merge of the
workers' results (registered on the controller only when xdist is installed and active)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_neuronperf.plugin.session import PerfSession


@dataclass(frozen=True)
class CoreShare:
    """This process's share of the device: its cores, and a lock when the share is shared."""

    cores: list[int]
    lock_path: Path | None = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the share exclusively while benchmarking (no-op when not shared)."""
        if self.lock_path is None:
            yield
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def xdist_share(all_cores: list[int], worker: str | None, count: int, run_id: str) -> CoreShare:
    """Worker ``gwN`` of ``count`` gets the N-th disjoint slice; with fewer cores than workers,
    workers that land on the same slice queue on a lock file instead of sharing cores."""
    if worker is None or count <= 1 or not worker.startswith("gw"):
        return CoreShare(all_cores)
    index = int(worker[2:])
    slots = max(1, min(count, len(all_cores)))
    size = len(all_cores) // slots
    slot = index % slots
    cores = all_cores[slot * size : (slot + 1) * size]
    shared = count > slots
    lock = Path(tempfile.gettempdir()) / f"pytest-neuronperf-{run_id}" / f"slot{slot}.lock"
    return CoreShare(cores, lock if shared else None)


def env_worker() -> tuple[str | None, int]:
    """This xdist worker's name and the worker count, from xdist's environment variables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return worker, count


class ControllerHooks:
    """Collects each worker's results when the worker finishes."""

    def __init__(self, session: PerfSession) -> None:
        self._session = session

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self._session.merge(output.get("neuronperf"), str(getattr(node, "gateway", node)))
