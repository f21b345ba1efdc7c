"""pytest-xdist glue: the worker's registration (``WorkerHooks``) and the controller's merge
of the workers' results (``ControllerHooks``, registered only when xdist is installed and
on). How workers split cores is ``plugin.shares``."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

import pytest

from pytest_neuronperf.plugin.shares import (
    CoreShare,
    HostRegistry,
    host_share,
    registry_dir,
    this_host,
)

if TYPE_CHECKING:
    from pytest_neuronperf.plugin.session import PerfSession


def plain_nodeid(item: pytest.Item) -> str:
    """The item's node id without the ``@group`` that xdist's ``--dist loadgroup`` appends on
    workers, so a test keeps one baseline key with or without it."""
    groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                     for mark in item.iter_markers("xdist_group")})
    suffix = f"@{'_'.join(groups)}"
    nodeid = item.nodeid
    return nodeid[: -len(suffix)] if groups and nodeid.endswith(suffix) else nodeid


class WorkerHooks:
    """A worker's registration: joined at configure time, left when the worker ends."""

    def __init__(self, registry: HostRegistry, worker: str) -> None:
        self.registry = registry
        self.worker = worker

    def share_for(self, cores: list[int]) -> CoreShare:
        """This worker's share of ``cores`` (its host's device units)."""
        return host_share(cores, self.worker, self.registry)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        self.registry.leave(self.worker)


def configure_worker(config: pytest.Config, worker_input: dict[str, Any]) -> WorkerHooks:
    """Join this host's registry for the run; the hooks that leave it and compute shares."""
    worker = str(worker_input.get("workerid") or os.environ.get("PYTEST_XDIST_WORKER", "gw0"))
    run_id = str(worker_input.get("testrunuid", "run"))
    registry = HostRegistry(registry_dir(run_id), this_host())
    registry.join(worker)
    hooks = WorkerHooks(registry, worker)
    config.pluginmanager.register(hooks, "neuronperf-xdist-worker")
    return hooks


class ControllerHooks:
    """Collects each worker's results when the worker finishes; removes the run's registry;
    pins ``xdist_group``s to the workers named after them."""

    def __init__(self, session: PerfSession) -> None:
        self._session = session
        self._run_ids: set[str] = set()

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        self._run_ids.add(str(getattr(node, "workerinput", {}).get("testrunuid", "")))

    @pytest.hookimpl
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """``--dist loadgroup`` with ``--tx ...//id=NAME``: group NAME runs on worker NAME."""
        from pytest_neuronperf.plugin.xdist_pinning import make_scheduler

        return make_scheduler(config, log)

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self._session.merge(output.get("neuronperf"), str(getattr(node, "gateway", node)))

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        for run_id in self._run_ids - {""}:
            shutil.rmtree(registry_dir(run_id), ignore_errors=True)

