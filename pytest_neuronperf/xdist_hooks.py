"""pytest-xdist glue, registered on the controller only when xdist is installed and active."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_neuronperf.session import PerfSession


class ControllerHooks:
    """Collects each worker's results when the worker finishes."""

    def __init__(self, session: PerfSession) -> None:
        self._session = session

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", None) or {}
        self._session.merge(output.get("neuronperf"), str(getattr(node, "gateway", node)))
