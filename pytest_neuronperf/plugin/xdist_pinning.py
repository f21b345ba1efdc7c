"""``--dist loadgroup`` that pins a group to the workers named after it (imports pytest-xdist).

xdist's own ``loadgroup`` keeps every test of one ``@pytest.mark.xdist_group(name)`` on one
worker, but any worker: in a fleet of an inf2 host and a CPU host, the ``inf2`` group could land
on the CPU host. Here a group runs only on workers whose ``--tx`` spec id is the group's name or
starts with it and a dash (``--tx ssh=ci@inf2-a//id=inf2``, or ``id=inf2-a``, ``id=inf2-b`` for
two of them). A group that names no worker, and every test outside a group, runs anywhere, as
under xdist's ``loadgroup``. Used only when ``--dist loadgroup`` is on and a ``--tx`` spec has
an ``id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import execnet
import pytest
from xdist.scheduler import LoadGroupScheduling


def spec_ids(config: pytest.Config) -> list[str]:
    """The ``id=`` of every ``--tx`` spec that has one."""
    specs = [execnet.XSpec(spec) for spec in config.getoption("tx", None) or []]
    return [str(spec.id) for spec in specs if spec.id]


def runs_on(group: str, worker: str) -> bool:
    """Whether ``worker`` (a spec id) is one of the workers named after ``group``."""
    return worker == group or worker.startswith(f"{group}-")


def allowed(scope: str, worker: str, workers: Iterable[str]) -> bool:
    """Whether the work unit ``scope`` (a group name, or a test's node id) may run on
    ``worker``: a group named after some worker runs only on such workers."""
    named = [w for w in workers if runs_on(scope, w)]
    return not named or worker in named


class PinnedGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]  # xdist has no types
    """xdist's loadgroup, except that each node takes only the work units it may run."""

    def _ids(self) -> list[str]:
        return [str(node.gateway.id) for node in self.nodes]

    def _assign_work_unit(self, node: Any) -> None:
        workers = self._ids()
        for scope in self.workqueue:
            if allowed(scope, str(node.gateway.id), workers):
                self.workqueue.move_to_end(scope, last=False)  # xdist assigns the first unit
                super()._assign_work_unit(node)
                return

    def schedule(self) -> None:
        if self.collection is None:
            # xdist shuts down the last-added nodes when there are more nodes than work units:
            # let those be nodes that no group is pinned to
            groups = {self._split_scope(nodeid) for nodeid in self.collection_ids()}
            pinned = [n for n in self.nodes if any(runs_on(g, str(n.gateway.id))
                                                   for g in groups)]
            for node in pinned + [n for n in self.nodes if n not in pinned]:
                self.assigned_work[node] = self.assigned_work.pop(node)
        super().schedule()

    def collection_ids(self) -> list[str]:
        """The node ids the first node collected (every node collects the same)."""
        collections = list(self.registered_collections.values())
        return list(collections[0]) if collections else []


def make_scheduler(config: pytest.Config, log: Any) -> PinnedGroupScheduling | None:
    """The pinning scheduler when ``--dist loadgroup`` meets ``--tx`` specs with ids."""
    if config.getvalue("dist") != "loadgroup" or not spec_ids(config):
        return None
    return PinnedGroupScheduling(config, log)
